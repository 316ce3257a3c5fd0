"""The device simulator: a fleet of cameras, an NVR with channels, doorbells with paired
chimes — each a ``DeviceAgent`` with realistic identity, heartbeats, alarms with real JPEG
snapshots, command replies, and going offline and back.

    fleet = make_fleet(cameras=3, nvr_channels=4, doorbells=1)
    sim = Simulator(fleet, host, port).start()
    await sim.wait_connected()
    await sim.agents[0].raise_alarm("human")

``python -m faoyam.agent.simulator --state devices.json --host H --port P`` runs the
devices of a state file in their own process (the benchmark and the kill tests use it:
SIGKILL drops every connection without DISCONNECT, so the broker fires the last wills).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import string
import sys
from pathlib import Path

from faoyam.agent.device import DeviceAgent, Identity
from faoyam.agent.media import SyntheticSource
from faoyam.devices.gateway import protocol as p

_ALNUM = string.ascii_uppercase + string.digits
# (kind, model, serial prefix, channels, abilities)
MODELS = {
    "camera": [("IPC-C22EP", "7B0"), ("IPC-F42", "7F0"), ("IPC-GS7EP-5M0WE", "8C0")],
    "nvr": [("NVR1104HS-W-S2", "5H0")],
    "doorbell": [("DB61i", "9D0")],
    "chime": [("DS21", "9E0")],
}
ABILITIES = {  # Imou-style ability names
    "camera": ("WLAN", "AlarmMD", "HeaderDetect", "AudioTalk", "LocalStorage", "NVM", "Siren"),
    "ptz": ("PTZ",),
    "nvr": ("AlarmMD", "LocalStorage", "HSEncrypt"),
    "doorbell": ("WLAN", "AlarmMD", "HeaderDetect", "AudioTalk", "Doorbell", "Battery"),
    "chime": ("Chime",),
}
ROOMS = ["Front door", "Garage", "Living room", "Back yard", "Driveway", "Kitchen", "Gate", "Office"]


def make_serial(prefix: str, rng: random.Random) -> str:
    """15 characters like the labels of real cameras: model prefix, factory/batch, unit."""
    year = "ABCDEFGHJK"[rng.randrange(10)]
    week = f"{rng.randrange(1, 53):02d}"
    return prefix + rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") + year + week + "".join(rng.choice(_ALNUM) for _ in range(8))


def make_identity(kind: str, rng: random.Random, *, channels: int = 1, ptz: bool = False,
                  paired_with: str | None = None, name: str | None = None,
                  channel_names: list[str] | None = None) -> Identity:
    """One device. Its channels are named ``channel_names``, else all ``name``, else rooms."""
    model, prefix = rng.choice(MODELS[kind])
    abilities = ABILITIES[kind] + (ABILITIES["ptz"] if ptz else ())
    if channel_names is not None:
        names = tuple(channel_names[:channels])
    elif kind == "nvr":
        names = tuple(ROOMS[i % len(ROOMS)] for i in range(channels))
    else:
        names = tuple(name or ROOMS[(i + rng.randrange(len(ROOMS))) % len(ROOMS)] for i in range(channels))
    mac = "3c:ef:8c:" + ":".join(f"{rng.randrange(256):02x}" for _ in range(3))
    return Identity(serial=make_serial(prefix, rng), kind=kind, model=model, channels=channels,
                    safety_code="".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(6)),
                    factory_secret=secrets.token_urlsafe(24), mac=mac, abilities=abilities,
                    channel_names=names, paired_with=paired_with)


def _room_names(rng: random.Random, taken: set[str]):
    """Room names in a random order, none of ``taken``, then "Room 9", "Room 10", …"""
    rooms = [r for r in ROOMS if r not in taken]
    rng.shuffle(rooms)
    yield from rooms
    n = len(ROOMS) + 1
    while True:
        yield f"Room {n}"
        n += 1


def make_fleet(cameras: int = 2, nvr_channels: int = 4, doorbells: int = 1, *, seed: int | None = None) -> list[Identity]:
    """Cameras (the first one with PTZ), one NVR with ``nvr_channels`` channels (0: none),
    and doorbells, each with a chime paired to it.

    Every camera, NVR channel, doorbell and chime has a name of its own, so a person tells
    them apart in the app (two "Garage" cameras would not do)."""
    rng = random.Random(seed)
    bells = ["Front door"] + [f"Door {i}" for i in range(2, doorbells + 1)]
    chimes = ["Hall"] + [f"Chime {i}" for i in range(2, doorbells + 1)]
    rooms = _room_names(rng, taken=set(bells[:doorbells]) | set(chimes[:doorbells]))
    fleet = [make_identity("camera", rng, ptz=(i == 0), name=next(rooms)) for i in range(cameras)]
    if nvr_channels:
        fleet.append(make_identity("nvr", rng, channels=nvr_channels,
                                   channel_names=[next(rooms) for _ in range(nvr_channels)]))
    for bell_name, chime_name in zip(bells[:doorbells], chimes, strict=False):
        bell = make_identity("doorbell", rng, name=bell_name)
        fleet += [bell, make_identity("chime", rng, paired_with=bell.serial, name=chime_name)]
    return fleet


def make_cameras(n: int, *, seed: int | None = None) -> list[Identity]:
    rng = random.Random(seed)
    return [make_identity("camera", rng) for _ in range(n)]


StreamCodecs = tuple[str, str | None]  # (main stream's codec, sub-stream's or None: no sub-stream)
H264: StreamCodecs = ("h264", "h264")
H265_WITH_H264_SUB: StreamCodecs = ("h265", "h264")
H265_ONLY: StreamCodecs = ("h265", None)


def stream_codecs(identities: list[Identity]) -> list[StreamCodecs]:
    """What each simulated device pushes: H.264 main and sub-stream, except that the second
    camera of the fleet is H.265 with an H.264 sub-stream and the third H.265 only — so both
    H.265 paths of the browser view (sub-stream, transcode) are exercised where there are
    cameras enough."""
    cameras = [i for i, ident in enumerate(identities) if ident.kind == "camera"]
    special = dict(zip(cameras[1:3], (H265_WITH_H264_SUB, H265_ONLY), strict=False))
    return [special.get(i, H264) for i in range(len(identities))]


class Simulator:
    def __init__(self, identities: list[Identity], host: str, port: int, *, heartbeat_s: float | None = None,
                 protocol: int = 4, state_file: Path | None = None, keepalive: int = 60,
                 codecs: list[StreamCodecs] | None = None, talk_dir: Path | None = None):
        """``codecs``: each device's (main, sub-stream) codecs, default :func:`stream_codecs`.
        A device reports them in its configuration (``mainStream``/``subStream``), which is
        how the cloud knows what a browser can be sent. ``talk_dir``: where simulated
        doorbells write a WAV of each talk-back they hear."""
        self.state_file = state_file
        self.host, self.port = host, port  # the broker the devices speak to
        codecs = stream_codecs(identities) if codecs is None else codecs
        self.agents = [DeviceAgent(i, host, port, heartbeat_s=heartbeat_s, protocol=protocol, keepalive=keepalive,
                                   on_change=self._save if state_file else None,
                                   media=SyntheticSource(names=list(i.channel_names), codec=main, sub_codec=sub))
                       for i, (main, sub) in zip(identities, codecs, strict=True)]
        self.by_serial = {a.serial: a for a in self.agents}
        for a in self.agents:  # a doorbell "plays" talk-back by recording it (agent/speaker.py)
            if talk_dir is not None and a.id.kind == "doorbell":
                a.speaker.record_dir = Path(talk_dir) / a.serial
        for a in self.agents:  # a doorbell's ring also rings its chime
            if a.id.paired_with and a.id.paired_with in self.by_serial:
                self.by_serial[a.id.paired_with].chime = a  # type: ignore[attr-defined]

    def _save(self, _agent=None) -> None:
        if self.state_file:
            save_state(self.state_file, [a.id for a in self.agents])

    def start(self) -> Simulator:
        for a in self.agents:
            a.start()
        return self

    async def stop(self) -> None:
        await asyncio.gather(*(a.stop() for a in self.agents), return_exceptions=True)

    async def wait_connected(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(asyncio.gather(*(a.connected.wait() for a in self.agents)), timeout)

    async def ring(self, doorbell: DeviceAgent) -> str:
        """A visitor presses the doorbell: an alarm with a snapshot; the chime reports it rang."""
        alarm = await doorbell.raise_alarm("doorbell", 0)
        chime = getattr(doorbell, "chime", None)
        if chime is not None and chime._client is not None:
            await chime._client.publish(p.up(chime.serial, p.STATUS),
                                        p.dumps(p.envelope(status={**chime.status(), "rang": True})), qos=0)
        return alarm

    async def life(self, *, alarm_every: float = 60.0, flap_every: float = 0.0, offline_for: float = 10.0,
                   first_alarm_after: float | None = None) -> None:
        """Background life: random alarms with a snapshot (motion, a person, doorbell rings),
        one every ``alarm_every`` seconds across the fleet on average (the first one after
        ``first_alarm_after`` seconds when given), and devices that go offline (connection
        dropped) and come back every ``flap_every`` seconds."""
        rng = random.Random()
        last_flap = asyncio.get_running_loop().time()
        wait = first_alarm_after
        while True:
            await asyncio.sleep(alarm_every * rng.uniform(0.5, 1.5) if wait is None else wait)
            wait = None
            a = rng.choice([x for x in self.agents if x.id.kind != "chime"])
            if a.connected.is_set():
                try:
                    if a.id.kind == "doorbell":
                        await self.ring(a)
                    else:
                        await a.raise_alarm(rng.choice(["videoMotion", "human"]), rng.randrange(a.id.channels))
                except (TimeoutError, asyncio.TimeoutError, Exception):  # noqa: BLE001 - a simulation goes on
                    pass
            now = asyncio.get_running_loop().time()
            if flap_every and now - last_flap > flap_every:
                last_flap = now
                victim = rng.choice(self.agents)
                victim.pause()
                asyncio.get_running_loop().call_later(offline_for, victim.resume)


def save_state(path: Path, identities: list[Identity]) -> None:
    """Write identities (with factory secrets and credentials: mode 0600) atomically."""
    import os

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump([i.to_json() for i in identities], fh)
    tmp.replace(path)


def load_state(path: Path) -> list[Identity]:
    return [Identity.from_json(d) for d in json.loads(Path(path).read_text())]


async def _main(args: argparse.Namespace) -> None:
    ids = load_state(args.state)
    sim = Simulator(ids, args.host, args.port, heartbeat_s=args.heartbeat, protocol=args.protocol,
                    keepalive=args.keepalive, state_file=args.state if args.save else None)
    if args.wait_go:  # (benchmark) everything loaded; connect when told, so start-up is not timed
        print("loaded", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
    sim.start()
    await sim.wait_connected(args.timeout)
    print(f"ready {len(sim.agents)}", flush=True)
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="run the simulated devices of a state file")
    ap.add_argument("--state", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--heartbeat", type=float, default=None)
    ap.add_argument("--keepalive", type=int, default=60)
    ap.add_argument("--protocol", type=int, default=4, choices=(4, 5))
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--save", action="store_true", help="write credentials back after activation")
    ap.add_argument("--wait-go", action="store_true", help="print 'loaded', connect after a line on stdin")
    args = ap.parse_args(argv)
    try:
        asyncio.run(_main(args))
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(0)


if __name__ == "__main__":
    main()
