"""Commands through the gateway: reboot, snapshot, PTZ, configuration ("control")."""

from __future__ import annotations

import pytest

from faoyam.devices import service
from faoyam.devices.models import Device
from faoyam.devices.ports import CommandTimeout
from tests.devices.conftest import activation, owned, person

D = "/api/v1/devices"


@pytest.mark.req("B6")
async def test_commands_reach_the_device(ctx, client, gw):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner, kind="nvr", channels=2, abilities=("PTZ",))
    gw.connected.add(fd.serial)
    gw.replies["snapshot"] = {"url": "pending"}
    assert (await client.post(f"{D}/{device_id}/reboot", headers=owner.h)).json() == {"ok": True}
    assert (await client.post(f"{D}/{device_id}/snapshot", json={"channel": 1}, headers=owner.h)).json() == {"url": "pending"}
    r = await client.post(f"{D}/{device_id}/ptz/move", json={"channel": 0, "pan": 0.5, "tilt": -0.25}, headers=owner.h)
    assert r.status_code == 200
    r = await client.post(f"{D}/{device_id}/ptz/locate", json={"channel": 0, "x": 0.1, "y": 0.2}, headers=owner.h)
    assert r.status_code == 200
    assert gw.calls == [
        (fd.serial, "reboot", {}),
        (fd.serial, "snapshot", {"channel": 1}),
        (fd.serial, "ptz_move", {"channel": 0, "pan": 0.5, "tilt": -0.25, "zoom": 0.0, "duration_ms": 500}),
        (fd.serial, "ptz_locate", {"channel": 0, "x": 0.1, "y": 0.2, "zoom": 0.0}),
    ]


@pytest.mark.req("B6")
async def test_set_config_is_sent_then_merged_into_the_stored_copy(ctx, client, gw):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner)
    await service.activate(ctx, fd.serial, activation(fd, config={"motion": {"enabled": True}, "led": "on"}), "8.8.8.8")
    gw.connected.add(fd.serial)
    r = await client.put(f"{D}/{device_id}/config", json={"config": {"led": "off"}}, headers=owner.h)
    assert r.status_code == 200 and gw.calls[-1] == (fd.serial, "set_config", {"led": "off"})
    async with ctx.db.session() as s:
        assert (await s.get(Device, device_id)).config == {"motion": {"enabled": True}, "led": "off"}
    for body in [{"config": {}}, {"config": "led=off"}, {"config": {"x": "y" * 70_000}}, {"led": "off"}]:
        r = await client.put(f"{D}/{device_id}/config", json=body, headers=owner.h)
        assert r.status_code == 422, body
    # A device that does not answer: 504, and the stored copy stays as it was.
    gw.replies["set_config"] = CommandTimeout()
    r = await client.put(f"{D}/{device_id}/config", json={"config": {"led": "blink"}}, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (504, "device-timeout")
    async with ctx.db.session() as s:
        assert (await s.get(Device, device_id)).config["led"] == "off"


async def test_offline_device_and_missing_gateway_answer_device_offline(ctx, client):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner)
    assert ctx.gateway is None
    r = await client.post(f"{D}/{device_id}/reboot", headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (409, "device-offline")
    from tests.devices.conftest import FakeGateway

    ctx.gateway = FakeGateway()  # present, but this device is not connected
    try:
        r = await client.post(f"{D}/{device_id}/reboot", headers=owner.h)
        assert (r.status_code, r.json()["code"]) == (409, "device-offline")
    finally:
        ctx.gateway = None


async def test_ptz_needs_the_ability_and_a_real_channel(ctx, client, gw):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner)  # a fixed camera
    gw.connected.add(fd.serial)
    r = await client.post(f"{D}/{device_id}/ptz/move", json={"pan": 1}, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (422, "not-supported")
    r = await client.post(f"{D}/{device_id}/snapshot", json={"channel": 3}, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (404, "channel-not-found")
    r = await client.post(f"{D}/{device_id}/ptz/move", json={"pan": 2}, headers=owner.h)
    assert r.status_code == 422
    assert gw.calls == []
