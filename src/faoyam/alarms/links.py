"""Links a notification carries: a short-lived signed link to the alarm's snapshot (a push
or an email is read outside the signed-in app), and the event clip's playback page."""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.parse

SNAPSHOT_LINK_SECONDS = 900  # long enough to open the notification, short enough to leak little
PRE_ROLL_SECONDS = 10  # the clip starts a little before the alarm


def _mac(key: bytes, alarm_id: str, user_id: str, expires: int) -> str:
    msg = f"alarm-snapshot|{alarm_id}|{user_id}|{expires}".encode()
    return hmac.new(key, msg, hashlib.sha256).hexdigest()[:32]


def snapshot_link(key: bytes, base_url: str, alarm_id: str, user_id: str, *,
                  ttl: float = SNAPSHOT_LINK_SECONDS, now: float | None = None) -> str:
    """``/api/v1/alarms/{id}/snapshot?u=…&exp=…&sig=…``: opens the picture without a
    session until it expires, and only while ``user_id`` may still see the device's alarms."""
    expires = int((time.time() if now is None else now) + ttl)
    q = urllib.parse.urlencode({"u": user_id, "exp": expires, "sig": _mac(key, alarm_id, user_id, expires)})
    return f"{base_url.rstrip('/')}/api/v1/alarms/{alarm_id}/snapshot?{q}"


def check_snapshot_link(key: bytes, alarm_id: str, user_id: str, expires: int, sig: str,
                        now: float | None = None) -> bool:
    if expires < (time.time() if now is None else now):
        return False
    return hmac.compare_digest(_mac(key, alarm_id, user_id, expires), sig)


def clip_link(device_id: str, channel: int, at_iso: str) -> str:
    """The playback page of the recording around the alarm (the recordings' player)."""
    return f"/devices/{device_id}/channels/{channel}/playback?" + urllib.parse.urlencode({"at": at_iso})
