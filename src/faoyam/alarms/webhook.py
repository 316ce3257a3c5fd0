"""The message callback in the Imou format (``setMessageCallback``): the service POSTs one
JSON event per alarm to the account's ``callbackUrl``.

Fields as Imou sends them — ``msgType`` (videoMotion, human, alarmLocal, online, offline,
...), ``did``, ``cid``, ``dname``, ``cname``, ``time`` (Unix seconds), ``id``, ``token`` —
plus ``picurlArray`` with the short-lived snapshot link (empty without a picture).
``token`` is the callback's own secret, so the receiver can tell our calls from others.
"""

from __future__ import annotations

import datetime as dt


def body(*, kind: str, device_id: str, channel: int, device_name: str, channel_name: str | None,
         at: dt.datetime, alarm_id: str, token: str, snapshot_url: str | None) -> dict:
    return {"msgType": kind, "did": device_id, "cid": str(channel), "dname": device_name,
            "cname": channel_name or f"#{channel + 1}", "time": int(at.timestamp()), "id": alarm_id,
            "token": token, "picurlArray": [snapshot_url] if snapshot_url else []}


async def send(http, url: str, payload: dict) -> int:
    r = await http.post(url, json=payload, headers={"User-Agent": "faoyam-callback/1"})
    return r.status_code
