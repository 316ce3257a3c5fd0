"""A configuration change cannot grow the stored configuration past what the device may
report back (8 KiB of JSON, 4 levels, docs/device-protocol.md): otherwise every later
``up/config`` of the device would be dropped as oversized."""

from __future__ import annotations

import json

import pytest

from faoyam.devices import service
from faoyam.devices.gateway import protocol as p
from faoyam.devices.gateway.messages import parse
from faoyam.devices.models import Device
from faoyam.devices.validation import CONFIG_MAX_BYTES
from tests.devices.conftest import activation, owned, person

D = "/api/v1/devices"


async def _stored(ctx, device_id: str) -> dict:
    async with ctx.db.session() as s:
        return (await s.get(Device, device_id)).config


@pytest.mark.req("B6", "SEC1")
async def test_merged_configuration_stays_within_what_the_device_can_report(ctx, client, gw):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner)
    await service.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    gw.connected.add(fd.serial)
    statuses = []
    for i in range(5):  # each change alone is small; together they would not fit
        r = await client.put(f"{D}/{device_id}/config", json={"config": {f"osd_{i}": "x" * 2500}}, headers=owner.h)
        statuses.append(r.status_code)
        if r.status_code == 422:
            assert r.json()["code"] == "config-too-large"
    assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) == {422}
    # A refused change reached no device, and the stored copy is still one the device may report.
    assert [name for _, name, _ in gw.calls].count("set_config") == 3
    stored = await _stored(ctx, device_id)
    assert len(json.dumps(stored)) <= CONFIG_MAX_BYTES
    report = json.dumps({"v": 1, "id": "cfg-0001", "ts": 1, "config": stored}).encode()
    assert parse(p.CONFIG, report).config == stored
    # Too deep is refused as well.
    deep = {"a": {"b": {"c": {"d": {"e": 1}}}}}
    r = await client.put(f"{D}/{device_id}/config", json={"config": deep}, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (422, "config-too-large")
