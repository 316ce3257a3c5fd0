"""The device side of the protocol: one agent = one camera, NVR, doorbell or chime.

An agent activates with its factory credentials the first time (publishes its
activation report, receives per-device credentials), then connects with those, announces
itself online (retained, with a last will saying offline), sends heartbeats, reports its
configuration, raises alarms with JPEG snapshots and answers commands. When its
connection breaks it reconnects with back-off; if its credentials stop working (the
device was deleted) it goes back to activation, as a reset camera would.

The simulator runs many of these; the RTSP bridge is one whose pictures come from a real
camera (``media.AvSource``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import secrets
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import aiomqtt

from faoyam.agent.media import MediaSource, StreamPusher, SyntheticSource
from faoyam.agent.speaker import CODECS as TALK_CODECS
from faoyam.agent.speaker import Speaker
from faoyam.devices.gateway import protocol as p
from faoyam.devices.ports import FactoryDevice

log = logging.getLogger("faoyam.agent")


@dataclass
class Identity:
    """What the factory burns into a device (and prints on its label)."""

    serial: str
    kind: str  # camera | nvr | doorbell | chime
    model: str
    channels: int
    safety_code: str
    factory_secret: str
    mac: str
    firmware: str = "2.840.0000000.28.R"
    abilities: tuple[str, ...] = ()
    channel_names: tuple[str, ...] = ()
    paired_with: str | None = None
    # per-device credentials, once activated
    username: str | None = None
    password: str | None = None

    def factory_device(self):
        return FactoryDevice(serial=self.serial, kind=self.kind, model=self.model, channels=self.channels,  # type: ignore[arg-type]
                             safety_code=self.safety_code, factory_secret=self.factory_secret,
                             abilities=tuple(self.abilities), paired_with=self.paired_with)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["abilities"], d["channel_names"] = list(self.abilities), list(self.channel_names)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Identity:
        d = dict(d)
        d["abilities"], d["channel_names"] = tuple(d.get("abilities", ())), tuple(d.get("channel_names", ()))
        return cls(**d)


class ActivationRefused(Exception):
    pass


@dataclass
class AgentStats:
    connects: int = 0
    activations: int = 0
    heartbeats: int = 0
    commands: int = 0
    alarms: int = 0
    notices: list[dict] = field(default_factory=list)


class DeviceAgent:
    def __init__(self, identity: Identity, host: str, port: int, *, media: MediaSource | None = None,
                 protocol: int = 4, heartbeat_s: float | None = None, keepalive: int = 60,
                 ip: str | None = "192.168.1.20", on_change=None):
        self.id = identity
        self.host, self.port = host, port
        self.media = media or SyntheticSource(names=list(identity.channel_names))
        self.protocol = aiomqtt.ProtocolVersion.V5 if protocol == 5 else aiomqtt.ProtocolVersion.V311
        self.heartbeat_s = heartbeat_s
        self.keepalive = keepalive
        self.ip = ip
        self.on_change = on_change  # called after activation (to save credentials)
        self.stats = AgentStats()
        self.connected = asyncio.Event()
        self.config: dict[str, Any] = {"motionDetect": True, "nightVision": "auto", "timezone": "Asia/Bangkok",
                                       "dst": False, "mainStream": {"codec": "h264", "resolution": "1920x1080"}}
        self.config.update(self.media.stream_config())  # what it streams, as the cloud should know
        self.ptz = {c: PtzHead() for c in range(identity.channels)}
        self.streaming: set[tuple[int, int]] = set()
        self.pushers: dict[tuple[int, int], StreamPusher] = {}  # (channel, stream) -> its RTMP push
        self.speaker = Speaker()  # talk-back: what the device heard (agent/speaker.py)
        self.started = time.monotonic()
        self._client: aiomqtt.Client | None = None
        self._conn: str | None = None
        self._task: asyncio.Task | None = None
        self._acks: dict[str, asyncio.Future] = {}
        self._stop = asyncio.Event()
        self._paused = asyncio.Event()
        self._paused.set()
        self._reboot = False

    @property
    def serial(self) -> str:
        return self.id.serial

    # -- running -------------------------------------------------------------------------
    def start(self) -> DeviceAgent:
        self._task = asyncio.create_task(self.run(), name=f"device-{self.serial}")
        return self

    async def stop(self) -> None:
        """Graceful: say offline, then DISCONNECT."""
        self._stop.set()
        await self.stop_pushing()
        await self.speaker.stop()
        c = self._client
        if c is not None and self._conn:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.publish(p.up(self.serial, p.STATE), p.dumps(
                    {"v": 1, "online": False, "conn": self._conn, "ts": p.now_ms()}), qos=1, retain=True), 2)
        if self._task:
            # Repeat the cancel until the task ends: a library can swallow one (Python 3.11's
            # asyncio.wait_for does when the awaited thing completes at the same moment).
            while not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=2)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                self._task.result()
        self._task = None

    def drop(self) -> None:
        """Lose the connection without DISCONNECT (power cut, network gone): the broker
        publishes the last will. The agent reconnects unless ``pause``d."""
        c = self._client
        sock = c._client.socket() if c is not None else None  # noqa: SLF001 - the paho socket
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def pause(self) -> None:
        """Go offline (dropped, no DISCONNECT) and stay offline until ``resume``."""
        self._paused.clear()
        self.drop()

    def resume(self) -> None:
        self._paused.set()

    async def run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            await self._paused.wait()
            try:
                if not self.id.password:
                    await self.activate()
                await self._session()
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except aiomqtt.MqttCodeError as exc:
                self.connected.clear()
                if getattr(exc, "rc", None) in (4, 5, 134, 135) and self.id.password:
                    # credentials refused: the device was deleted or reset -> activate again
                    self.id.username = self.id.password = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10)
            except (aiomqtt.MqttError, OSError, ActivationRefused, TimeoutError, asyncio.TimeoutError):
                self.connected.clear()
                await asyncio.sleep(0.2 if self._reboot else backoff * random.uniform(0.5, 1.5))
                self._reboot = False
                backoff = min(backoff * 2, 10)

    async def activate(self, timeout: float = 60.0) -> None:
        user = f"factory:{self.serial}"
        async with aiomqtt.Client(self.host, self.port, username=user, password=self.id.factory_secret,
                                  identifier=user, protocol=self.protocol, keepalive=30) as c:
            await c.subscribe(p.down(self.serial, p.ACTIVATED), qos=1)
            report = p.envelope(mac=self.id.mac, model=self.id.model, firmware=self.id.firmware,
                                channels=[{"index": i, "name": self._name(i), "abilities": list(self._abilities(i))}
                                          for i in range(self.id.channels)],
                                config=self.config, ip=self.ip)
            await c.publish(p.up(self.serial, p.ACTIVATE), p.dumps(report), qos=1)
            async with asyncio.timeout(timeout):
                async for msg in c.messages:
                    data = json.loads(msg.payload)
                    if data.get("re") != report["id"]:
                        continue
                    if not data.get("ok"):
                        raise ActivationRefused(data.get("error", {}).get("code", "refused"))
                    self.id.username, self.id.password = data["username"], data["password"]
                    self.heartbeat_s = self.heartbeat_s or float(data.get("heartbeat_s", 30))
                    self.stats.activations += 1
                    break
        if self.on_change:
            self.on_change(self)

    def _name(self, i: int) -> str:
        return self.id.channel_names[i] if i < len(self.id.channel_names) else f"Channel {i + 1}"

    def _abilities(self, channel: int) -> tuple[str, ...]:
        return self.id.abilities

    async def _session(self) -> None:
        self._conn = secrets.token_hex(6)
        will = aiomqtt.Will(p.up(self.serial, p.STATE), p.dumps({"v": 1, "online": False, "conn": self._conn}),
                            qos=1, retain=True)
        async with aiomqtt.Client(self.host, self.port, username=self.id.username, password=self.id.password,
                                  identifier=self.id.username, protocol=self.protocol, will=will,
                                  keepalive=self.keepalive, clean_session=True if self.protocol != aiomqtt.ProtocolVersion.V5 else None) as c:
            self._client = c
            try:
                await c.subscribe(f"{p.ROOT}/{self.serial}/down/#", qos=1)
                await c.publish(p.up(self.serial, p.STATE), p.dumps(
                    p.envelope(online=True, conn=self._conn, firmware=self.id.firmware)), qos=1, retain=True)
                await c.publish(p.up(self.serial, p.CONFIG), p.dumps(p.envelope(config=self.config)), qos=1)
                self.stats.connects += 1
                self.connected.set()
                session_over = asyncio.Event()
                beat = asyncio.create_task(self._heartbeats(c, session_over))
                try:
                    async for msg in c.messages:
                        await self._on_message(c, str(msg.topic), bytes(msg.payload))
                        if self._reboot:
                            break
                finally:
                    # The event, not only the cancel, ends the heartbeats: Python 3.11's
                    # asyncio.wait_for (inside aiomqtt's publish) can swallow a cancel that
                    # lands as the publish completes, and the loop would beat on for ever
                    # with stop() waiting on it.
                    session_over.set()
                    beat.cancel()
                    await asyncio.wait({beat})
            finally:
                self._client = None
                self.connected.clear()
        if self._reboot:
            raise aiomqtt.MqttError("rebooting")

    def status(self) -> dict[str, Any]:
        st: dict[str, Any] = {"uptime_s": int(time.monotonic() - self.started), "rssi": -40 - random.randint(0, 30),
                              "streams": len(self.streaming)}
        if self.id.kind in ("camera", "nvr"):
            st["sd"] = {"status": "normal", "total_bytes": 64 * 2**30, "used_bytes": 21 * 2**30}
        if self.id.kind == "doorbell":
            st["battery"] = 87
        return st

    async def _heartbeats(self, c: aiomqtt.Client, over: asyncio.Event) -> None:
        every = self.heartbeat_s or 30.0
        while not over.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(every * random.uniform(0.9, 1.0)):
                    await over.wait()
            if over.is_set():
                return
            await c.publish(p.up(self.serial, p.HEARTBEAT), p.dumps(p.envelope(status=self.status())), qos=0)
            self.stats.heartbeats += 1

    # -- messages from the cloud ------------------------------------------------------
    async def _on_message(self, c: aiomqtt.Client, t: str, payload: bytes) -> None:
        parsed = p.parse_topic(t)
        if parsed is None:
            return
        try:
            data = json.loads(payload)
        except ValueError:
            return
        kind = parsed[2]
        if kind == p.CMD:
            await self._command(c, data)
        elif kind == p.ACK:
            fut = self._acks.pop(str(data.get("re")), None)
            if fut is not None and not fut.done():
                fut.set_result(data)
        elif kind == p.NOTICE:
            self.stats.notices.append(data)

    async def _command(self, c: aiomqtt.Client, cmd: dict[str, Any]) -> None:
        self.stats.commands += 1
        name, params = cmd.get("name"), cmd.get("params") or {}
        try:
            result = await self.handle(str(name), params)
            reply = p.envelope(re=cmd.get("id"), ok=True, result=result)
        except CommandError as exc:
            reply = p.envelope(re=cmd.get("id"), ok=False, error={"code": exc.code, "message": str(exc)})
        await c.publish(p.up(self.serial, p.REPLY), p.dumps(reply), qos=1)
        if name in ("reboot", "firmware_update"):
            self._reboot = True

    def _channel(self, params: dict[str, Any]) -> int:
        ch = int(params.get("channel", 0))
        if not 0 <= ch < self.id.channels:
            raise CommandError("bad-channel", "no such channel")
        return ch

    async def handle(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """One command; override or extend for other device behaviour."""
        if name == "reboot":
            return {"rebooting": True}
        if name == "snapshot":
            ch = self._channel(params)
            jpeg = await self.media.snapshot(ch)
            if len(jpeg) > p.MAX_SNAPSHOT:
                raise CommandError("too-large", "snapshot too large")
            return {"jpeg": p.b64(jpeg), "channel": ch}
        if name in ("ptz_move", "ptz_locate", "ptz_status"):
            ch = self._channel(params)
            if not {"PTZ", "PT"} & set(self._abilities(ch)):
                raise CommandError("not-supported", "no PTZ")
            return {"channel": ch, **self.ptz_command(ch, name, params)}
        if name == "set_config":
            cfg = params.get("config") if set(params) == {"config"} else params
            if not isinstance(cfg, dict) or not cfg:
                raise CommandError("bad-params", "config must be an object")
            self.config.update(cfg)
            if self._client is not None:
                asyncio.ensure_future(self._client.publish(p.up(self.serial, p.CONFIG),
                                                           p.dumps(p.envelope(config=self.config)), qos=1))
            return {"config": self.config}
        if name in ("start_stream", "stop_stream"):
            return await self._stream_command(name, params)
        if name in ("start_talk", "stop_talk"):
            return self._talk_command(name, params)
        if name == "firmware_update":
            version = params.get("version")
            if not isinstance(version, str) or not version:
                raise CommandError("bad-params", "version required")
            self.id.firmware = version
            return {"accepted": True, "version": version}
        if name == "provision_wifi":
            if not isinstance(params.get("ssid"), str):
                raise CommandError("bad-params", "ssid required")
            self._wifi = (params["ssid"], params.get("password"))  # kept on the device only
            return {"applied": True}
        if name == "set_password":
            if not isinstance(params.get("password"), str) or len(params["password"]) < 8:
                raise CommandError("bad-params", "password too short")
            self._device_password = params["password"]
            return {"applied": True}
        if name == "reset_password":  # back to a new random password, told to the owner's app
            self._device_password = secrets.token_urlsafe(9)
            return {"applied": True, "password": self._device_password}
        raise CommandError("not-supported", "unknown command")

    def ptz_command(self, ch: int, name: str, params: dict[str, Any]) -> dict[str, float]:
        """``ptz_move`` (speeds −1..1 for ``duration_ms``, or an Imou ``operation``),
        ``ptz_locate`` (absolute ``x``/``y`` −1..1, ``zoom`` 0..1), ``ptz_status``: the
        head's position afterwards."""
        head = self.ptz[ch]
        try:
            if name == "ptz_locate":
                head.locate(_clamp(params.get("x", params.get("h", 0)), -1, 1),
                            _clamp(params.get("y", params.get("v", 0)), -1, 1),
                            _clamp(params.get("zoom", params.get("z", 0)), 0, 1))
            elif name == "ptz_move":
                op = params.get("operation")
                duration = float(params.get("duration_ms", 500))
                if op is None:
                    head.move(*(_clamp(params.get(k, 0), -1, 1) for k in ("pan", "tilt", "zoom")), duration)
                elif op == "stop":
                    head.stop()
                elif op in p.PTZ_OPERATIONS:
                    head.move(("right" in op) - ("left" in op), ("up" in op) - ("down" in op),
                              (op == "zoom_in") - (op == "zoom_out"), duration)
                else:
                    raise CommandError("bad-params", "unknown operation")
        except (TypeError, ValueError):
            raise CommandError("bad-params", "PTZ values are numbers") from None
        return head.position()

    async def _stream_command(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """``start_stream`` with a ``url``: push that channel stream there (replacing a push
        already running for it, e.g. with a fresh token); ``stop_stream``: end it."""
        ch = self._channel(params)
        stream = int(params.get("stream", 0))
        if stream not in (0, 1):
            raise CommandError("bad-params", "stream is 0 (main) or 1 (sub)")
        if name == "start_stream" and not self.media.has_stream(stream):
            raise CommandError("not-supported", "this camera has no sub-stream")
        key = (ch, stream)
        old = self.pushers.pop(key, None)
        if old is not None:
            await old.stop()
        if name == "start_stream":
            url = params.get("url")
            if url is not None:
                if not isinstance(url, str) or not url.startswith("rtmp://"):
                    raise CommandError("bad-params", "url must be rtmp://")
                self.pushers[key] = StreamPusher(self.media, ch, stream, url).start()
            self.streaming.add(key)
        else:
            self.streaming.discard(key)
        codec = getattr(self.media, "sub_codec" if stream else "codec", None) or getattr(self.media, "codec", "h264")
        return {"channel": ch, "stream": stream, "codec": codec,
                "streaming": key in self.streaming}

    def _talk_command(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        """``start_talk``: connect to ``url`` (ws:// or wss://) and play what arrives, in the
        offered G.711 law if this device speaks it, else the other (``codecs``);
        ``stop_talk``: hang up."""
        ch = self._channel(params)
        if "AudioTalk" not in self._abilities(ch):
            raise CommandError("not-supported", "no speaker")
        if name == "stop_talk":
            self.speaker.stop_nowait()
            return {"channel": ch, "talking": False}
        url = params.get("url")
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            raise CommandError("bad-params", "url must be ws:// or wss://")
        offered = [params.get("codec"), *(params.get("codecs") or [])]
        codec = next((c for c in offered if c in TALK_CODECS), None)
        if codec is None:
            raise CommandError("not-supported", "this device speaks G.711 (pcma, pcmu) only")
        self.speaker.start(url, codec)
        return {"channel": ch, "codec": codec, "rate": 8000, "talking": True}

    async def stop_pushing(self) -> None:
        pushers, self.pushers = list(self.pushers.values()), {}
        self.streaming.clear()
        await asyncio.gather(*(pu.stop() for pu in pushers), return_exceptions=True)

    # -- things the device does on its own ---------------------------------------------
    async def raise_alarm(self, type: str = "human", channel: int = 0, snapshot: bool = True,
                          timeout: float = 10.0) -> str:
        """Publish an alarm (with a JPEG of the channel) and wait for the cloud's ack."""
        await asyncio.wait_for(self.connected.wait(), timeout)
        c = self._client
        assert c is not None
        body = p.envelope(channel=channel, type=type, at=p.now_ms(),
                          snapshot=p.b64(await self.media.snapshot(channel)) if snapshot else None)
        fut = asyncio.get_running_loop().create_future()
        self._acks[body["id"]] = fut
        await c.publish(p.up(self.serial, p.ALARM), p.dumps(body), qos=1)
        self.stats.alarms += 1
        try:
            ack = await asyncio.wait_for(fut, timeout)
        finally:
            self._acks.pop(body["id"], None)
        return str(ack.get("alarm"))

    async def publish_raw(self, kind: str, payload: bytes, qos: int = 0) -> None:
        """(tests) Send anything on one of this device's uplink topics."""
        await asyncio.wait_for(self.connected.wait(), 10)
        assert self._client is not None
        await self._client.publish(p.up(self.serial, kind), payload, qos=qos)


class PtzHead:
    """A pan/tilt/zoom head that moves like a real one: a move runs at its speeds for its
    duration (or until ``stop`` or the next move), so the position is a function of time.

    Position as Imou reports it (``devicePTZInfo``): ``h`` pan and ``v`` tilt in −1..1,
    ``z`` zoom in 0..1. Speed 1 sweeps the whole range of one axis (2) in ``SWEEP_S``.
    """

    SWEEP_S = 10.0
    MAX_MOVE_MS = 10_000

    def __init__(self, clock=time.monotonic):
        self.clock = clock
        self._base = {"h": 0.0, "v": 0.0, "z": 0.0}
        self._speeds = (0.0, 0.0, 0.0)
        self._since = self._until = 0.0
        self.moves = 0  # moves and stops received (tests, the live page's readout)

    def position(self) -> dict[str, float]:
        t = min(self.clock(), self._until) - self._since
        if t <= 0:
            return dict(self._base)
        rate = 2.0 / self.SWEEP_S
        (ph, pv, pz), b = self._speeds, self._base
        return {"h": round(_clamp(b["h"] + ph * rate * t, -1, 1), 4), "v": round(_clamp(b["v"] + pv * rate * t, -1, 1), 4),
                "z": round(_clamp(b["z"] + pz * rate * t / 2, 0, 1), 4)}

    def moving(self) -> bool:
        return self.clock() < self._until and any(self._speeds)

    def move(self, pan: float, tilt: float, zoom: float, duration_ms: float) -> None:
        self._base = self.position()
        self._speeds = (pan, tilt, zoom)
        self._since = self.clock()
        self._until = self._since + min(max(duration_ms, 0), self.MAX_MOVE_MS) / 1000
        self.moves += 1

    def stop(self) -> None:
        self.move(0, 0, 0, 0)

    def locate(self, h: float, v: float, z: float) -> None:
        self.stop()
        self._base = {"h": h, "v": v, "z": z}


class CommandError(Exception):
    def __init__(self, code: str, message: str = ""):
        super().__init__(message or code)
        self.code = code


def _clamp(x: Any, lo: float, hi: float) -> float:
    return max(lo, min(hi, float(x)))
