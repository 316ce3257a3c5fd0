"""The device list runs a fixed number of SQL statements, however many devices, channels
and sharers an account has: an N+1 (a query or a session per device or per person) fails here."""

from __future__ import annotations

import pytest
from sqlalchemy import event

from faoyam.devices import service
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
    assert n == 1 + 4 + 1 + 2 + 4
    # Devices, channels, doorbell/chime pairs, sharers: bounded, and the same with 1 or 12 devices
    # (the pairs and sharers queries run only when there are some).
    assert large <= 4
    assert large <= small + 2


@pytest.mark.req("B6", "B11")
async def test_device_page_and_alarms_take_a_fixed_number_of_statements(ctx, client):
    me = await person(ctx)
    device_id, fd = await owned(ctx, client, me, kind="nvr", channels=16)
    await service.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    page, _ = await _statements(ctx, client, me, f"{D}/{device_id}")
    alarms, _ = await _statements(ctx, client, me, f"{D}/{device_id}/alarms")
    assert page <= 3 and alarms <= 2
