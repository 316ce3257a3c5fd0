"""Process roles: ``faoyam serve`` runs web, gateway and media as child processes, notices
a dead one, and the web side reaches devices served by the gateway process."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from faoyam import roles
from faoyam.core.context import Context
from faoyam.devices.gateway.core import DeviceGateway, GatewayOptions
from faoyam.devices.lifecycle import SERVICE_USER, embedded_service_password
from tests.gateway.conftest import agent, bind, eventually, make_user, new_device


def test_roles_are_repeatable_or_a_comma_list_and_default_to_all():
    assert roles.parse_roles(None) == ["gateway", "media", "web"]
    assert roles.parse_roles(["web"]) == ["web"]
    assert roles.parse_roles(["web,gateway"]) == roles.parse_roles(["gateway", "web"]) == ["gateway", "web"]
    with pytest.raises(ValueError, match="unknown role"):
        roles.parse_roles(["web,camera"])


def test_the_media_role_has_a_plug_point():
    assert roles.MEDIA_LIFECYCLE == "faoyam.media.lifecycle"
    mod = roles.media_lifecycle()  # None until the media engine is installed
    assert mod is None or (hasattr(mod, "start") and hasattr(mod, "stop"))


def _sleeper(role: str) -> list[str]:
    return [sys.executable, "-c", "import time; time.sleep(120)"]


def test_a_killed_child_is_started_again_and_one_that_keeps_dying_stops_the_service():
    out = io.StringIO()
    sup = roles.Supervisor(["gateway", "web"], _sleeper, dict(os.environ), out=out, restart_delay_s=0.05)
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(sup.run(0.05, signals=False)))
    t.start()
    try:
        deadline = time.monotonic() + 20
        while len(sup.children) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        first = sup.children["gateway"].proc
        first.kill()
        while (sup.children["gateway"].proc is first or sup.children["gateway"].proc.poll() is not None) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sup.children["gateway"].proc is not first and sup.children["gateway"].proc.poll() is None
        assert "the gateway role exited with code -9; starting it again" in out.getvalue()
        assert sup.children["web"].proc.poll() is None  # the other role was not disturbed
    finally:
        sup.request_stop()
        t.join(30)
    assert result == [0]
    assert all(c.proc.poll() is not None for c in sup.children.values())  # stopped with the service

    out = io.StringIO()
    dying = roles.Supervisor(["media"], lambda role: [sys.executable, "-c", "raise SystemExit(3)"], dict(os.environ),
                             out=out, restart_delay_s=0.01)
    assert dying.run(0.02, signals=False) == 1
    assert "the media role exited with code 3 5 times in 60 s; stopping the service" in out.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.req("B6")
async def test_serve_runs_the_roles_as_processes_and_the_web_side_reaches_the_gateways_devices(settings, tmp_path):
    """The whole service as ``faoyam serve`` starts it (embedded broker, SQLite). This test
    process plays a web node: its gateway client sends the commands."""
    settings = settings.model_copy(update={"database_url": None, "data_dir": tmp_path / "served",
                                           "mqtt_mode": "embedded", "mqtt_port": _free_port(), "port": _free_port()})
    settings.ensure_dirs()
    env = {**os.environ, "FAOYAM_DATA_DIR": str(settings.data_dir), "FAOYAM_MQTT_MODE": "embedded",
           "FAOYAM_MQTT_PORT": str(settings.mqtt_port), "FAOYAM_PORT": str(settings.port), "FAOYAM_JOBS_ENABLED": "false",
           "FAOYAM_MEDIA_RTMP_PORT": "0", "FAOYAM_MEDIA_HTTP_PORT": "0"}
    env.pop("FAOYAM_DATABASE_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "faoyam", "serve"], env=env, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True).start()
    ctx = Context.build(settings, roles=frozenset({"web"}))
    client = DeviceGateway(ctx, host="127.0.0.1", port=settings.mqtt_port, username=SERVICE_USER,
                           password=embedded_service_password(ctx), options=GatewayOptions(), uplink=False)
    dev = None
    try:
        async def up():
            try:
                async with httpx.AsyncClient() as h:
                    return (await h.get(f"http://127.0.0.1:{settings.port}/healthz")).status_code == 200
            except httpx.HTTPError:
                return False

        await eventually(up, 60, 0.2)
        pids = {m.group(1): int(m.group(2)) for line in list(lines)
                if (m := re.search(r"started the (\w+) role \(pid (\d+)\)", line))}
        assert set(pids) == {"web", "gateway", "media"}
        await client.start()
        ctx.gateway = client
        ident = await new_device(ctx)
        await bind(ctx, ident, await make_user(ctx))
        ctx.mqtt_port = settings.mqtt_port
        dev = agent(ctx, ident).start()
        await eventually(lambda: client.is_online(ident.serial), 30)  # the gateway process saw it
        assert (await client.command(ident.serial, "snapshot", {"channel": 0}))["jpeg"]

        os.kill(pids["gateway"], signal.SIGKILL)  # the supervisor notices and starts it again
        await eventually(lambda: any("the gateway role exited with code -9; starting it again" in x for x in lines), 30)

        async def answered():
            try:
                return (await client.command(ident.serial, "snapshot", {"channel": 0}, timeout=2))["jpeg"]
            except Exception:  # noqa: BLE001 - not yet: the device reconnects to the new broker
                return False

        await eventually(answered, 60, 0.5)
    finally:
        if dev is not None:
            await dev.stop()
        await client.stop()
        await ctx.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
