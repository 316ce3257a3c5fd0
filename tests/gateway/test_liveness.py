"""Online/offline: last wills when a device process is killed, heartbeat timeouts when a
connection goes silent, and the gateway learning the state again after a restart."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiomqtt
import pytest

from faoyam.agent.simulator import make_cameras, save_state
from faoyam.devices import lifecycle
from faoyam.devices.gateway import factory_register
from faoyam.devices.gateway import protocol as p
from tests.gateway.conftest import device_row, eventually, new_device, online, options


@pytest.mark.req("B6")
async def test_killed_device_process_goes_offline_by_last_will(service_factory, broker, tmp_path):
    # long heartbeats: only the last will can make these devices offline within the test
    svc = await service_factory(broker, options(heartbeat_s=60))
    gw = svc.gateway
    fleet = make_cameras(3)
    for ident in fleet:
        await factory_register(svc, ident.factory_device())
    state = tmp_path / "devices.json"
    save_state(state, fleet)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "faoyam.agent.simulator", "--state", str(state), "--port", str(svc.mqtt_port),
        "--save", stdout=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line.decode().startswith("ready 3")
        await gw.wait_until(lambda: all(gw.is_connected(i.serial) for i in fleet), 15)
        for ident in fleet:
            assert (await device_row(svc, ident.serial)).online is True
        proc.send_signal(signal.SIGKILL)  # no DISCONNECT, no goodbye
        await proc.wait()
        await gw.wait_until(lambda: not any(gw.is_connected(i.serial) for i in fleet), 15)
        for ident in fleet:
            assert (await device_row(svc, ident.serial)).online is False
        assert gw.stats["stale-will"] == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.req("B6")
async def test_silent_connection_times_out_and_a_heartbeat_brings_it_back(service_factory, broker):
    svc = await service_factory(broker, options(heartbeat_s=0.2, heartbeat_timeout_s=0.6))
    gw = svc.gateway
    ident = await new_device(svc)
    a = await online(svc, ident)
    await a.stop()
    await gw.wait_until(lambda: not gw.is_connected(ident.serial))
    # a device whose connection stays up but which stops sending (hung firmware)
    async with aiomqtt.Client("127.0.0.1", svc.mqtt_port, username=ident.username, password=ident.password,
                              identifier=ident.username, keepalive=60) as c:
        await c.publish(p.up(ident.serial, p.STATE), p.dumps(p.envelope(online=True, conn="hung01")), qos=1)
        await gw.wait_until(lambda: gw.is_connected(ident.serial), 10)
        await gw.wait_until(lambda: not gw.is_connected(ident.serial), 10)  # no heartbeat: timed out
        assert (await device_row(svc, ident.serial)).online is False
        await c.publish(p.up(ident.serial, p.HEARTBEAT), p.dumps(p.envelope(status={"uptime_s": 5})), qos=1)
        await gw.wait_until(lambda: gw.is_connected(ident.serial), 10)
        assert (await device_row(svc, ident.serial)).online is True


@pytest.mark.req("B6")
async def test_a_late_will_of_an_old_connection_does_not_mark_offline(svc):
    gw = svc.gateway
    ident = await new_device(svc)
    a = await online(svc, ident)
    try:
        old_will = p.dumps({"v": 1, "online": False, "conn": "oldconn1"})
        gw._receive(p.up(ident.serial, p.STATE), old_will)
        await eventually(lambda: gw.stats["stale-will"] >= 1)
        assert gw.is_connected(ident.serial)
    finally:
        await a.stop()


@pytest.mark.req("B6")
async def test_gateway_restart_learns_who_is_online(service_factory, broker):
    svc = await service_factory(broker)
    ident = await new_device(svc)
    a = await online(svc, ident)
    try:
        gw, svc.gateway = svc.gateway, None
        await gw.stop()
        from faoyam.devices.gateway.core import DeviceGateway

        fresh = DeviceGateway(svc, host="127.0.0.1", port=svc.mqtt_port, username=gw.username,
                              password=gw.password, options=gw.o, external=gw.external, admin=gw.admin)
        if hasattr(gw.admin, "feed"):
            gw.admin._publish = fresh.publish_raw
        await fresh.start()
        svc.gateway = fresh
        await fresh.wait_until(lambda: fresh.is_connected(ident.serial), 10)  # from the retained state
        assert (await fresh.command(ident.serial, "snapshot", {"channel": 0}))["jpeg"]
    finally:
        await a.stop()


async def test_lifecycle_without_a_broker_is_off(ctx):
    await lifecycle.start(ctx)  # mqtt_mode "off" in the test settings
    assert ctx.gateway is None and ctx.mqtt_port is None
    await lifecycle.stop(ctx)
