"""The device list runs a fixed number of SQL statements, however many devices, channels
and sharers an account has: an N+1 (a query or a session per device or per person) fails here.
The counts are the read paths' design (``faoyam.devices.views``): the access decision is
joined into the row query, and a doorbell's chime among one's own devices needs no query."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from faoyam.alarms import service as alarms
from faoyam.core.database import utcnow
from faoyam.devices import service
from faoyam.devices.ports import AlarmReport
from tests.devices.conftest import activation, grant, owned, person

D = "/api/v1/devices"


async def _statements(ctx, client, who, path: str = D) -> tuple[int, int]:
    """(statements, devices listed) of one GET, after a first one (which may look the session up)."""
    assert (await client.get(path, headers=who.h)).status_code == 200
    seen: list[str] = []

    def count(conn, cursor, statement, *args):
        seen.append(statement)

    event.listen(ctx.db.engine.sync_engine, "before_cursor_execute", count)
    try:
        r = await client.get(path, headers=who.h)
    finally:
        event.remove(ctx.db.engine.sync_engine, "before_cursor_execute", count)
    assert r.status_code == 200
    return len(seen), len(r.json()) if isinstance(r.json(), list) else 1


@pytest.mark.req("B6", "B9")
async def test_device_list_statements_do_not_grow_with_the_devices(ctx, client):
    me = await person(ctx)
    device_id, fd = await owned(ctx, client, me)
    await service.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    small, n = await _statements(ctx, client, me)
    assert n == 1

    # Many more: cameras, an NVR, a doorbell with its chime, devices of two other people shared with me.
    for _ in range(4):
        _, f = await owned(ctx, client, me)
        await service.activate(ctx, f.serial, activation(f), "8.8.8.8")
    await owned(ctx, client, me, kind="nvr", channels=8)
    from tests.devices.conftest import make_device

    bell = await make_device(ctx, kind="doorbell")
    await make_device(ctx, kind="chime", paired_with=bell.serial)
    r = await client.post(D, json={"serial": bell.serial, "safety_code": bell.safety_code}, headers=me.h)
    assert r.status_code == 201
    for _ in range(2):
        friend = await person(ctx)
        for _ in range(2):
            theirs, _f = await owned(ctx, client, friend)
            await grant(ctx, theirs, me, ["live"])
    large, n = await _statements(ctx, client, me)
    assert small == 1  # the devices, their shares, addresses and channels joined in
    assert n == 1 + 4 + 1 + 2 + 4
    # The devices, then the sharers' nicknames: the same with 1 or 12 devices; the owned
    # doorbell's chime is found among the rows already read (no pairs query).
    assert large == 2


@pytest.mark.req("B3", "B9")
async def test_a_shared_doorbell_and_its_chime_take_one_pairs_query(ctx, client):
    from tests.devices.conftest import make_device

    owner, me = await person(ctx), await person(ctx)
    bell = await make_device(ctx, kind="doorbell")
    await make_device(ctx, kind="chime", paired_with=bell.serial)
    r = await client.post(D, json={"serial": bell.serial, "safety_code": bell.safety_code}, headers=owner.h)
    bell_id = r.json()["id"]
    theirs = {d["kind"]: d for d in (await client.get(D, headers=owner.h)).json()}
    await grant(ctx, bell_id, me, ["live"])
    count, n = await _statements(ctx, client, me)
    assert n == 1 and count == 3  # devices, pairs (the owner's chime is not in my list), sharer
    (mine,) = (await client.get(D, headers=me.h)).json()
    assert mine["shared"] and mine["accessory_ids"] == [theirs["chime"]["id"]]
    page = (await client.get(f"{D}/{bell_id}", headers=me.h)).json()
    assert page["accessory_ids"] == [theirs["chime"]["id"]] and page["shared_by"]
    # The owner's device page of the chime finds its doorbell (one device: the pairs query runs).
    chime = (await client.get(f"{D}/{theirs['chime']['id']}", headers=owner.h)).json()
    assert chime["parent_id"] == bell_id


@pytest.mark.req("B6", "B11")
async def test_device_page_and_alarms_take_a_fixed_number_of_statements(ctx, client):
    me = await person(ctx)
    device_id, fd = await owned(ctx, client, me, kind="nvr", channels=16)
    await service.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    page, _ = await _statements(ctx, client, me, f"{D}/{device_id}")
    alarms, _ = await _statements(ctx, client, me, f"{D}/{device_id}/alarms")
    # The page: the device with the caller's share (the access decision) and channels joined.
    # The alarms (the alarms domain's table): the access decision (devices.authz), then the
    # alarms filtered by the channels it allows.
    assert page == 1 and alarms == 2


@pytest.mark.req("B9")
async def test_the_folded_access_check_still_refuses_strangers_and_missing_permissions(ctx, client):
    owner, guest, stranger = await person(ctx), await person(ctx), await person(ctx)
    device_id, fd = await owned(ctx, client, owner, kind="nvr", channels=4)
    await service.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    await grant(ctx, device_id, guest, ["live"], channels=[1])
    for path in (f"{D}/{device_id}", f"{D}/{device_id}/alarms", f"{D}/{'0' * 32}", f"{D}/not-an-id"):
        assert (await client.get(path, headers=stranger.h)).status_code == 404, path
    page = (await client.get(f"{D}/{device_id}", headers=guest.h)).json()
    assert page["shared"] and [c["index"] for c in page["channels"]] == [1] and page.get("serial") is None
    assert (await client.get(f"{D}/{device_id}/alarms", headers=guest.h)).json()["code"] == "permission-missing"
    # A share of some channels with the alarms permission: the alarm list is filtered by
    # those channels, so the limit counts only alarms of those channels.
    viewer = await person(ctx)
    await grant(ctx, device_id, viewer, ["alarms"], channels=[2])
    for i in range(6):
        await alarms.record_device_alarm(ctx, fd.serial, AlarmReport(channel=i % 3, type="human", at=utcnow()))
    r = await client.get(f"{D}/{device_id}/alarms?limit=2", headers=viewer.h)
    assert [a["channel"] for a in r.json()] == [2, 2]
    count, _ = await _statements(ctx, client, viewer, f"{D}/{device_id}/alarms?limit=2")
    assert count == 2
    mine = (await client.get(f"{D}/{device_id}/alarms?limit=5", headers=owner.h)).json()
    assert len(mine) == 5 and {a["channel"] for a in mine} == {0, 1, 2}
    assert (await client.get(f"{D}/{device_id}/alarms", headers=stranger.h)).status_code == 404
    assert [d["id"] for d in (await client.get(D, headers=stranger.h)).json()] == []
