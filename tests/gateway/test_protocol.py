"""The device protocol end to end, on the embedded broker and on Mosquitto, against the
real registry: activation, online/offline, heartbeats, configuration, alarms with JPEG
snapshots, commands with correlated replies."""

from __future__ import annotations

import asyncio
import base64
import io

import pytest
from PIL import Image

from faoyam.devices import ports
from tests.gateway.conftest import agent, bind, device_row, eventually, make_user, new_device, online


@pytest.mark.req("B6")
async def test_activation_issues_credentials_and_stores_the_report(svc):
    ident = await new_device(svc, "camera")
    a = await online(svc, ident)
    try:
        assert a.stats.activations == 1
        assert ident.username == ident.serial and ident.password and ident.password != ident.factory_secret
        row = await device_row(svc, ident.serial)
        assert row.activated_at is not None and row.mac == ident.mac and row.firmware == ident.firmware
        assert row.online is True
        # the broker's view of the address was recorded (127.0.0.1 on this machine)
        from sqlalchemy import select

        from faoyam.devices.models import DeviceAddress

        async with svc.db.session() as s:
            ip = await s.scalar(select(DeviceAddress.ip).where(DeviceAddress.device_id == row.id))
        assert ip == "127.0.0.1"
        # the configuration report arrived
        await eventually(lambda: _config_of(svc, ident.serial))
    finally:
        await a.stop()


async def _config_of(ctx, serial):
    row = await device_row(ctx, serial)
    return row.config and row.config.get("timezone") == "Asia/Bangkok"


@pytest.mark.req("B6")
async def test_factory_credentials_reach_only_activation(svc):
    """Wrong factory secret: refused; factory credentials cannot publish device topics."""
    import aiomqtt

    from faoyam.devices.gateway import protocol as p

    ident = await new_device(svc)
    port = svc.mqtt_port
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", port, username=f"factory:{ident.serial}", password="wrong-secret-123",
                                  identifier=f"factory:{ident.serial}"):
            pass
    gw = svc.gateway
    before = gw.stats["received"]
    async with aiomqtt.Client("127.0.0.1", port, username=f"factory:{ident.serial}", password=ident.factory_secret,
                              identifier=f"factory:{ident.serial}") as c:
        granted = await c.subscribe(f"faoyam/d/{ident.serial}/down/#", qos=1)
        assert _refused(granted)
        await c.publish(p.up(ident.serial, p.HEARTBEAT), p.dumps(p.envelope(status={})), qos=1)
        await c.publish(p.up(ident.serial, "probe"), b"{}", qos=1)  # nothing published by the factory client
    # the refused publishes never reached the gateway: a later legit message is the next it sees
    a = await online(svc, ident)
    await a.stop()
    assert gw.stats["received"] >= before + 1
    assert gw.stats["dropped.unknown-kind"] == 0


def _refused(granted) -> bool:
    code = granted[0]
    value = getattr(code, "value", code)
    return value >= 0x80


@pytest.mark.req("B6")
async def test_heartbeat_and_status_reach_the_registry(svc):
    ident = await new_device(svc)
    a = await online(svc, ident)
    try:
        await eventually(lambda: _has_status(svc, ident.serial), 10)
    finally:
        await a.stop()


async def _has_status(ctx, serial):
    row = await device_row(ctx, serial)
    return row.status and "uptime_s" in row.status and "rssi" in row.status


@pytest.mark.req("B6")
async def test_graceful_stop_and_last_will_mark_offline(svc):
    gw = svc.gateway
    ident = await new_device(svc)
    a = await online(svc, ident)
    await a.stop()  # says offline, then DISCONNECT
    await gw.wait_until(lambda: not gw.is_connected(ident.serial), 10)
    assert (await device_row(svc, ident.serial)).online is False

    b = await online(svc, ident)  # back, with the credentials it got
    assert b.stats.activations == 0
    b.drop()  # connection lost without DISCONNECT: the broker publishes the last will
    await gw.wait_until(lambda: not gw.is_connected(ident.serial), 10)
    assert (await device_row(svc, ident.serial)).online is False
    await gw.wait_until(lambda: gw.is_connected(ident.serial), 15)  # it reconnects by itself
    assert (await device_row(svc, ident.serial)).online is True
    await b.stop()


@pytest.mark.req("B11")
async def test_alarm_with_jpeg_snapshot_is_recorded(svc):
    user = await make_user(svc)
    ident = await new_device(svc, "doorbell")
    await bind(svc, ident, user)
    a = await online(svc, ident)
    try:
        alarm_id = await a.raise_alarm("doorbell", 0)
        assert alarm_id
        from faoyam.alarms.models import AlarmEvent as Alarm

        async with svc.db.session() as s:
            row = await s.get(Alarm, alarm_id)
        assert row.kind == "doorbell" and row.snapshot_key
        jpeg = await svc.blobs.read(row.snapshot_key)
        assert Image.open(io.BytesIO(jpeg)).format == "JPEG"
    finally:
        await a.stop()


@pytest.mark.req("B4", "B8")
async def test_commands_have_correlated_replies(svc):
    gw = svc.gateway
    ident = await new_device(svc, "camera", ptz=True)
    a = await online(svc, ident)
    try:
        snap = await gw.command(ident.serial, "snapshot", {"channel": 0})
        assert Image.open(io.BytesIO(base64.b64decode(snap["jpeg"]))).format == "JPEG"
        # concurrent commands get their own answers
        moved, located, cfg = await asyncio.gather(
            gw.command(ident.serial, "ptz_move", {"channel": 0, "pan": 1, "tilt": 0, "zoom": 0, "duration_ms": 1000}),
            gw.command(ident.serial, "ptz_locate", {"channel": 0, "x": -0.5, "y": 0.25, "zoom": 0.5}),
            gw.command(ident.serial, "set_config", {"motionDetect": False}),
        )
        assert moved["channel"] == 0 and "h" in moved
        assert cfg["config"]["motionDetect"] is False
        for name, params in [("start_stream", {"channel": 0, "stream": 1}), ("stop_stream", {"channel": 0, "stream": 1}),
                             ("provision_wifi", {"ssid": "home", "password": "correct horse"}),
                             ("set_password", {"password": "Sunrise-2024!"}), ("reset_password", {})]:
            assert isinstance(await gw.command(ident.serial, name, params), dict)
        with pytest.raises(ports.NotSupported):
            await gw.command(ident.serial, "self_destruct", {})
        other = await new_device(svc, "camera")  # no PTZ
        b = await online(svc, other)
        with pytest.raises(ports.NotSupported):
            await gw.command(other.serial, "ptz_move", {"channel": 0, "pan": 1})
        await b.stop()
        # reboot: the device answers, goes away and comes back
        connects = a.stats.connects
        assert (await gw.command(ident.serial, "reboot", {}))["rebooting"] is True
        await eventually(lambda: a.stats.connects > connects and gw.is_connected(ident.serial), 15)
        fw = await gw.command(ident.serial, "firmware_update", {"version": "2.900.0", "url": "https://fw.example/x.bin"})
        assert fw["accepted"] is True
    finally:
        await a.stop()


@pytest.mark.req("B4")
async def test_offline_and_silent_devices(service_factory):
    from tests.gateway.conftest import options

    svc = await service_factory("embedded", options(command_timeout_s=0.5))
    gw = svc.gateway
    ident = await new_device(svc)
    with pytest.raises(ports.DeviceOffline):
        await gw.command(ident.serial, "reboot", {})
    a = await online(svc, ident)

    async def silent(name, params):
        await asyncio.sleep(5)
        return {}

    a.handle = silent
    with pytest.raises(ports.CommandTimeout):
        await gw.command(ident.serial, "reboot", {}, timeout=0.3)
    await a.stop()


@pytest.mark.req("B6")
async def test_simulated_fleet_nvr_doorbell_and_chime(svc):
    """The simulator's fleet (cameras, an NVR with 4 channels, a doorbell and its chime)."""
    from faoyam.agent.simulator import Simulator, make_fleet
    from faoyam.devices.gateway import factory_register

    fleet = make_fleet(cameras=1, nvr_channels=4, doorbells=1)
    for ident in fleet:
        await factory_register(svc, ident.factory_device())
    user = await make_user(svc)
    bell = next(i for i in fleet if i.kind == "doorbell")
    await bind(svc, bell, user)
    sim = Simulator(fleet, "127.0.0.1", svc.mqtt_port).start()
    gw = svc.gateway
    try:
        await gw.wait_until(lambda: all(gw.is_connected(i.serial) for i in fleet), 20)
        nvr = next(i for i in fleet if i.kind == "nvr")
        snap = await gw.command(nvr.serial, "snapshot", {"channel": 3})
        assert snap["channel"] == 3
        assert await sim.ring(sim.by_serial[bell.serial])
        chime = next(i for i in fleet if i.kind == "chime")
        await eventually(lambda: _rang(svc, chime.serial), 10)
        assert len((await device_row(svc, nvr.serial)).config or {}) > 0
    finally:
        await sim.stop()


async def _rang(ctx, serial):
    row = await device_row(ctx, serial)
    return (row.status or {}).get("rang") is True


@pytest.mark.req("B6")
async def test_mqtt5_device_on_mosquitto(service_factory):
    svc = await service_factory("mosquitto")
    ident = await new_device(svc)
    a = agent(svc, ident, protocol=5).start()
    gw = svc.gateway
    try:
        await gw.wait_until(lambda: gw.is_connected(ident.serial), 15)
        assert (await gw.command(ident.serial, "snapshot", {"channel": 0}))["jpeg"]
    finally:
        await a.stop()
