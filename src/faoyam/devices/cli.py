"""``faoyam devices …``: simulated devices, the RTSP bridge, and a Mosquitto configuration.

    faoyam devices simulate --cameras 3 --nvr-channels 4 --doorbells 1
    faoyam devices bridge --url rtsp://user:pass@192.168.1.30/stream1 --name Porch
    faoyam devices push-url --serial FYC0000001X    # an RTMP URL for ffmpeg, OBS, a camera
    faoyam devices broker-config --dir /etc/mosquitto/faoyam --port 1883

``simulate`` and ``bridge`` make their devices "at the factory" in the configured
database (and, with an external broker, in Mosquitto's dynamic security), print the serial
and safety code to add each one in the app, then run until Ctrl-C against the broker of a
running ``faoyam serve`` (``mqtt_host``/``mqtt_port``). Their identities and credentials
are kept in a state file so the same devices come back next time. Each command that needs
the database takes ``--data-dir`` and refuses a directory with no faoyam database in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from faoyam.core.commands import DataDirOption, FriendlyGroup, state_settings

# Commands import what they use inside their own body, so that ``faoyam --help`` and a
# light command start fast (importing the whole app takes about 2 s). Start-up speed is
# the only reason for a function-local import of a faoyam module, and only in CLI modules
# (docs/decisions/layers.md; tests/test_layers.py checks it).

app = typer.Typer(help="Simulated devices, the RTSP bridge, the device broker.", no_args_is_help=True,
                  cls=FriendlyGroup, pretty_exceptions_enable=False)
console = Console(stderr=True, soft_wrap=True)


async def _register(settings, identities) -> None:
    """Factory step for devices made outside the service process: the registry, and the
    external broker's dynamic security (over a connection of our own)."""
    from faoyam.core.context import Context
    from faoyam.devices import service

    ctx = Context.build(settings)
    try:
        for ident in identities:
            await service.factory_register(ctx, ident.factory_device())
    finally:
        await ctx.close()
    if settings.mqtt_mode != "external":
        return
    import aiomqtt

    from faoyam.devices.gateway.mosquitto import DynsecAdmin

    async with aiomqtt.Client(settings.mqtt_host, settings.mqtt_port, username=settings.mqtt_username,
                              password=settings.mqtt_password, identifier=f"faoyam-cli-{secrets.token_hex(4)}") as c:
        admin = DynsecAdmin(lambda t, b: c.publish(t, b, qos=1))
        await c.subscribe(admin.response_topic, qos=1)

        async def feed():
            async for msg in c.messages:
                admin.feed(bytes(msg.payload))

        feeder = asyncio.create_task(feed())
        try:
            for ident in identities:
                await admin.provision_factory(ident.serial, ident.factory_secret)
        finally:
            feeder.cancel()


def _table(identities) -> Table:
    t = Table("kind", "model", "serial", "safety code", "channels", "paired with")
    for i in identities:
        t.add_row(i.kind, i.model, i.serial, i.safety_code, str(i.channels), i.paired_with or "")
    return t


def _host(settings) -> str:
    return "127.0.0.1" if settings.mqtt_host in ("0.0.0.0", "") else settings.mqtt_host


@app.command()
def simulate(cameras: int = typer.Option(3, help="IP cameras (the first one with PTZ)"),
             nvr_channels: int = typer.Option(4, help="channels of the simulated NVR (0: no NVR)"),
             doorbells: int = typer.Option(1, help="doorbells, each with a paired chime"),
             state: Path = typer.Option(None, help="identities and credentials (default: data_dir/simulator.json)"),
             port: int = typer.Option(None, help="broker port (default: mqtt_port)"),
             alarm_every: float = typer.Option(60.0, help="seconds between alarms, fleet-wide on average"),
             flap_every: float = typer.Option(0.0, help="seconds between a device dropping off and coming back (0: never)"),
             mqtt5: bool = typer.Option(False, "--mqtt5", help="speak MQTT 5 (Mosquitto only)"),
             new: bool = typer.Option(False, "--new", help="make a new fleet even if the state file exists"),
             talk_dir: Path = typer.Option(None, help="doorbells write what they hear through talk-back here (WAV)"),
             data_dir: DataDirOption = None):
    """Run simulated cameras, an NVR and doorbells with chimes against the service's broker."""
    from faoyam.agent.simulator import Simulator, load_state, make_fleet, save_state

    s = state_settings(data_dir)
    state = state or s.data_dir / "simulator.json"
    if state.exists() and not new:
        fleet = load_state(state)
    else:
        fleet = make_fleet(cameras, nvr_channels, doorbells)
        save_state(state, fleet)
        asyncio.run(_register(s, fleet))
    Console().print(_table(fleet))
    console.print("Add a device in the app with its serial and safety code (a chime comes with its doorbell).")

    async def run():
        sim = Simulator(fleet, _host(s), port or s.mqtt_port, protocol=5 if mqtt5 else 4, state_file=state,
                        talk_dir=talk_dir).start()
        life = asyncio.create_task(sim.life(alarm_every=alarm_every, flap_every=flap_every))
        try:
            await sim.wait_connected(60)
            console.print(f"[green]{len(fleet)} devices online[/] (Ctrl-C to stop)")
            await asyncio.Event().wait()
        finally:
            life.cancel()
            await sim.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command()
def bridge(url: str = typer.Option(..., help="the camera's rtsp:// URL (credentials allowed; never stored)"),
           name: str = typer.Option("RTSP camera", help="the channel name shown in the app"),
           state: Path = typer.Option(None, help="the bridge's identity (default: data_dir/bridge-<name>.json)"),
           port: int = typer.Option(None, help="broker port (default: mqtt_port)"),
           data_dir: DataDirOption = None):
    """Put a camera reachable by RTSP on the platform as a cloud camera."""
    from faoyam.agent import bridge as b

    s = state_settings(data_dir)
    state = state or s.data_dir / f"bridge-{''.join(ch for ch in name if ch.isalnum()) or 'camera'}.json"
    ident, new = b.load_or_create(state, name)
    if new:
        asyncio.run(_register(s, [ident]))
    Console().print(_table([ident]))

    async def run():
        agent = b.RtspBridge(ident, url, _host(s), port or s.mqtt_port, on_change=lambda a: b.save(state, a.id)).start()
        try:
            await asyncio.wait_for(agent.connected.wait(), 60)
            console.print(f"[green]bridging {b.redact_url(url)}[/] (Ctrl-C to stop)")
            await asyncio.Event().wait()
        finally:
            await agent.stop()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


@app.command("push-url")
def push_url(serial: str = typer.Option(..., help="the serial number of a device bound to an account"),
             channel: int = typer.Option(0, help="the channel the pushed video is for"),
             stream: str = typer.Option("main", help="main or sub"),
             days: float = typer.Option(30, help="how long the URL may start a push (a running push is never cut)"),
             data_dir: DataDirOption = None):
    """Print an RTMP URL an encoder can push to by itself (a camera's RTMP setting, OBS, ffmpeg).

    The URL holds a key for this one device channel; re-activating or deleting the device
    revokes it. Example: ffmpeg -re -stream_loop -1 -i clip.mp4 -c copy -f flv "<URL>"
    """
    from faoyam.core.context import Context
    from faoyam.core.errors import Problem
    from faoyam.devices.streaming import encoder_stream_key
    from faoyam.media.lifecycle import public_rtmp_url

    settings = state_settings(data_dir)

    async def run():
        ctx = Context.build(settings)
        try:
            key = await encoder_stream_key(ctx, serial.strip().upper(), channel, stream, ttl_s=days * 86400)
            return f"{public_rtmp_url(ctx, settings.media_rtmp_port)}/{key}"
        finally:
            await ctx.close()

    try:
        url = asyncio.run(run())
    except Problem as exc:
        console.print(f"[red]{exc.detail}[/]")
        raise typer.Exit(1) from None
    print(url)


@app.command("broker-config")
def broker_config(directory: Path = typer.Option(Path("mosquitto"), "--dir", help="where to write the files"),
                  port: int = typer.Option(1883, help="the port Mosquitto listens on"),
                  host: str = typer.Option("127.0.0.1", help="the address Mosquitto listens on"),
                  user: str = typer.Option("faoyam-gateway", help="the gateway's broker account")):
    """Write a Mosquitto 2 configuration (dynamic security, limits) for mqtt_mode=external."""
    from faoyam.devices.gateway.mosquitto import write_config

    password = secrets.token_urlsafe(24)
    if (Path(directory) / "dynamic-security.json").exists():
        console.print("[yellow]dynamic-security.json exists; its accounts are kept (the password below is unused)[/]")
    conf = write_config(directory, port=port, host=host, service_user=user, service_password=password)
    console.print(f"[green]wrote {conf}[/]; run: mosquitto -c {conf}")
    print(json.dumps({"FAOYAM_MQTT_MODE": "external", "FAOYAM_MQTT_HOST": host, "FAOYAM_MQTT_PORT": str(port),
                      "FAOYAM_MQTT_USERNAME": user, "FAOYAM_MQTT_PASSWORD": password}, indent=1))


@app.command("rotate-keys")
def rotate_keys(data_dir: DataDirOption = None):
    """Re-encrypt stored device passwords with the newest key of FAOYAM_DEVICE_KEYS.

    Put the new key first in FAOYAM_DEVICE_KEYS, run this, and remove the old key once
    it reports no unreadable secrets.
    """
    from faoyam.core.context import Context
    from faoyam.devices.service import rotate_device_secrets

    settings = state_settings(data_dir)

    async def run():
        ctx = Context.build(settings)
        try:
            return await rotate_device_secrets(ctx)
        finally:
            await ctx.close()

    with console.status("Re-encrypting device secrets…"):
        out = asyncio.run(run())
    console.print(f"[green]rotated {out['rotated']}[/], unreadable {out['unreadable']}")
    if out["unreadable"]:
        raise typer.Exit(1)
