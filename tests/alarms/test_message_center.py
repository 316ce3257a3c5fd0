"""The message center (B11): list, filter by device/type/date, mark read, delete one or
all; snapshots only while the reader may see the device's alarms; the page."""

from __future__ import annotations

import datetime as dt
import re
import urllib.parse

import pytest

from faoyam.alarms import links
from faoyam.core.database import utcnow
from tests.alarms.conftest import grant, jpeg, person, raise_one

M = "/api/v1/alarms/messages"


def _local(url: str) -> str:
    u = urllib.parse.urlsplit(url)
    return f"{u.path}?{u.query}"


@pytest.mark.req("B11")
async def test_list_filter_read_and_delete(ctx, client, cam):
    h = cam.owner.h
    now = utcnow()
    a = await raise_one(ctx, cam, channel=0, kind="videoMotion", at=now - dt.timedelta(days=2))
    b = await raise_one(ctx, cam, channel=1, kind="human", snapshot=jpeg(), at=now - dt.timedelta(minutes=1))
    c = await raise_one(ctx, cam, channel=0, kind="human", at=now)
    body = (await client.get(M, headers=h)).json()
    assert [m["alarm_id"] for m in body["messages"]] == [c, b, a] and body["unread"] == 3
    first = body["messages"][1]
    assert first["has_snapshot"] and first["snapshot_url"] and first["device_id"] == cam.device_id
    assert first["clip_url"] == links.clip_link(cam.device_id, 1, first["at"])
    assert [m["alarm_id"] for m in (await client.get(M, params={"kind": "human"}, headers=h)).json()["messages"]] == [c, b]
    day = (now - dt.timedelta(days=2)).date().isoformat()
    since = f"{day}T00:00:00Z"
    until = (dt.datetime.fromisoformat(since.replace("Z", "+00:00")) + dt.timedelta(days=1)).isoformat()
    got = (await client.get(M, params={"since": since, "until": until}, headers=h)).json()["messages"]
    assert [m["alarm_id"] for m in got] == [a]
    assert (await client.get(M, params={"device_id": "0" * 32}, headers=h)).json()["messages"] == []
    assert (await client.get(M, params={"since": "2026-01-01T00:00:00"}, headers=h)).status_code == 422
    # Read one, then all.
    r = await client.post(f"{M}/read", json={"ids": [first["id"]]}, headers=h)
    assert r.json() == {"changed": 1}
    body = (await client.get(M, params={"unread": "true"}, headers=h)).json()
    assert [m["alarm_id"] for m in body["messages"]] == [c, a] and body["unread"] == 2
    assert (await client.post(f"{M}/read", json={"ids": None}, headers=h)).json() == {"changed": 2}
    # Delete one, then all.
    one = body["messages"][0]["id"]
    assert (await client.delete(f"{M}/{one}", headers=h)).status_code == 204
    assert (await client.delete(f"{M}/{one}", headers=h)).status_code == 404
    assert [m["alarm_id"] for m in (await client.get(M, headers=h)).json()["messages"]] == [b, a]
    assert (await client.delete(M, headers=h)).json() == {"deleted": 2}
    assert (await client.get(M, headers=h)).json() == {"messages": [], "unread": 0}
    # The events stay on the device's own list until they expire.
    assert len((await client.get(f"/api/v1/devices/{cam.device_id}/alarms", headers=h)).json()) == 3


@pytest.mark.req("B11", "B9")
async def test_a_revoked_share_hides_its_messages_and_snapshots(ctx, client, cam):
    friend = await person(ctx)
    share_id = await grant(ctx, cam.device_id, friend, ["alarms"])
    alarm_id = await raise_one(ctx, cam, snapshot=jpeg())
    other = await person(ctx)
    assert (await client.get(M, headers=other.h)).json()["messages"] == []
    msgs = (await client.get(M, headers=friend.h)).json()["messages"]
    assert [m["alarm_id"] for m in msgs] == [alarm_id]
    link = _local(msgs[0]["snapshot_url"])
    assert (await client.get(link)).status_code == 200
    # Someone else's message cannot be deleted or read.
    assert (await client.delete(f"{M}/{msgs[0]['id']}", headers=other.h)).status_code == 404
    r = await client.delete(f"/api/v1/devices/{cam.device_id}/shares/{share_id}", headers=cam.owner.h)
    assert r.status_code == 204, r.text
    assert (await client.get(M, headers=friend.h)).json()["messages"] == []
    assert (await client.get(link)).status_code == 404  # the signed link follows the share
    # An expired link does not open either.
    old = links.snapshot_link(ctx.key, "http://x", alarm_id, cam.owner.user_id, ttl=-1)
    assert (await client.get(_local(old))).status_code == 404


@pytest.mark.req("B11")
async def test_the_messages_page_lists_filters_and_links_the_clip(ctx, client, cam):
    a = await raise_one(ctx, cam, channel=0, kind="videoMotion")
    b = await raise_one(ctx, cam, channel=1, kind="human", snapshot=jpeg())
    client.cookies.set("faoyam_session", cam.owner.token)
    html = (await client.get("/messages")).text
    assert re.findall(r'data-alarm="([0-9a-f]+)"', html) == [b, a]
    assert f'src="/api/v1/devices/{cam.device_id}/alarms/{b}/snapshot"' in html
    assert f"/devices/{cam.device_id}/channels/1/playback?at=" in html and "Play the clip" in html
    html = (await client.get("/messages", params={"kind": "videoMotion"})).text
    assert re.findall(r'data-alarm="([0-9a-f]+)"', html) == [a]
    html = (await client.get("/messages", params={"device": cam.device_id, "day": "2020-01-01"})).text
    assert "data-alarm=" not in html and "No messages" in html
    client.cookies.clear()
