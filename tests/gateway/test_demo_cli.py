"""The demo's simulated devices (bound through the registry's add_device) and the CLI."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from faoyam.agent.demo import start_demo_devices
from faoyam.devices import service
from faoyam.devices.cli import app
from tests.gateway.conftest import device_row, make_user


@pytest.mark.req("B3", "B6", "B11")
async def test_demo_devices_are_bound_online_and_raise_alarms(service_factory):
    svc = await service_factory("embedded")
    user = await make_user(svc)
    handle = await start_demo_devices(svc, user, cameras=1, nvr_channels=2, doorbells=1, life=False)
    try:
        listed = await service.list_devices(svc, user)
        # camera, NVR, doorbell and the chime that came with it
        assert sorted(d.kind for d in listed) == ["camera", "chime", "doorbell", "nvr"]
        assert all(d.online for d in listed)
        for ident in handle.identities:
            assert (await device_row(svc, ident.serial)).online is True
        cam = next(a for a in handle.simulator.agents if a.id.kind == "camera")
        assert await cam.raise_alarm("human")
    finally:
        await handle.stop()


def test_broker_config_command_writes_a_mosquitto_configuration(tmp_path):
    r = CliRunner().invoke(app, ["broker-config", "--dir", str(tmp_path / "m"), "--port", "18999"])
    assert r.exit_code == 0, r.output
    env = json.loads(r.stdout[r.stdout.index("{"):])
    assert env["FAOYAM_MQTT_MODE"] == "external" and env["FAOYAM_MQTT_PORT"] == "18999"
    conf = (tmp_path / "m" / "mosquitto.conf").read_text()
    assert "listener 18999 127.0.0.1" in conf and "allow_anonymous false" in conf and "max_packet_size" in conf
    dyn = json.loads((tmp_path / "m" / "dynamic-security.json").read_text())
    assert dyn["clients"][0]["username"] == "faoyam-gateway" and env["FAOYAM_MQTT_PASSWORD"] not in json.dumps(dyn)


async def test_the_application_starts_and_stops_the_gateway(settings):
    from faoyam.app import create_app
    from faoyam.core.context import Context

    ctx = Context.build(settings.model_copy(update={"mqtt_mode": "embedded", "mqtt_port": 0}))
    await ctx.db.create_all()
    application = create_app(ctx=ctx)
    async with application.router.lifespan_context(application):
        gw = ctx.gateway
        assert ctx.mqtt_port > 0 and not gw.online()
    assert ctx.gateway is None and ctx.broker is None and ctx.mqtt_port is None
    await ctx.close()
