"""Talk-back: audio from a browser's microphone to a doorbell, through the media worker.

Two WebSocket routes (a Starlette app of their own, :attr:`TalkServer.routes` to mount
beside the live and HLS routes; see docs/decisions/talk-back.md)::

    browser ── ws /media/talk/{token} ──► worker ──(MQTT start_talk, via the devices domain)──► doorbell
    doorbell ── ws /media/talk-device/{device token} ──► worker: receives G.711 frames

**The browser side.** ``token`` is a media token (:mod:`faoyam.media.tokens`) with the
permission ``talk``, minted by the web app after the devices domain said yes (owner, or a
share with ``control``, on a doorbell that reports ``AudioTalk``). It is checked like a
live token: signature, expiry, one use, and re-checked every ``poll_interval`` while the
session is open (``revoked``), so revoking a share silences its talker within a second.
The browser then sends

1. text ``{"type": "start", "rate": 48000}`` — the sample rate of what follows;
2. binary messages of **signed 16-bit little-endian mono PCM** at that rate (an
   AudioWorklet's output; any length, ~20–100 ms each);
3. text ``{"type": "stop"}`` or simply closes.

It receives ``{"type": "ready", "codec": "pcma", "rate": 8000}`` once the doorbell is
listening, and a close code otherwise (:class:`TalkClose`).

**The doorbell side.** On ``start`` the worker mints a second token, ``talk-device``, bound
to this one session, and asks the doorbell (``open_talk``, composed from the devices
domain: an MQTT ``start_talk`` command) to connect to ``/media/talk-device/{token}``. The
doorbell answers which G.711 law it wants (``pcma`` A-law or ``pcmu`` µ-law, 8 kHz mono:
what doorbells' speakers take), connects, and from then on receives binary messages of
G.711 bytes (one byte per sample). Closing that WebSocket ends the talk for the doorbell.

**Encoding** (resample to 8 kHz, G.711) is PyAV's, in a thread (:func:`asyncio.to_thread`):
never on the worker's event loop. A doorbell that reads slower than real time loses the
oldest audio, not the worker's memory: at most ``max_buffer_s`` of it is queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import av
import numpy as np
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from faoyam.core.context import Context
from faoyam.core.errors import Problem
from faoyam.devices import talkback
from faoyam.media.grants import devices_revocation
from faoyam.media.ids import ChannelId
from faoyam.media.tokens import MediaGrant, ReplayGuard, TokenError, mint, verify

log = logging.getLogger(__name__)

CODECS = {"pcma": "pcm_alaw", "pcmu": "pcm_mulaw"}  # G.711 A-law / µ-law, as RTP names them
RATE = 8000
DEVICE_TOKEN_SECONDS = 30.0
MAX_MESSAGE_BYTES = 64 * 1024  # ~0.7 s of 48 kHz s16: more in one message is not a microphone
RATES = range(8000, 96001)
STOP_TALK_SECONDS = 5.0  # how long a stop_talk to a doorbell that never connected may take


class TalkClose:
    """Close codes of the browser's talk WebSocket (the live view's meanings where shared)."""

    ENDED = 1000
    GOING_AWAY = 1001
    BAD_REQUEST = 4400  # no or a malformed start message, or a message too large
    BAD_TOKEN = 4401
    FORBIDDEN = 4403  # revoked, or a token for something else
    OFFLINE = 4404  # the doorbell did not answer or did not connect
    EXPIRED = 4410
    NOT_SUPPORTED = 4422  # the device cannot talk back


class TalkRefused(Exception):
    """``open_talk``'s way to say no: ``code`` is a :class:`TalkClose` code."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code, self.reason = code, reason


# open_talk(channel, url, codec) -> the device's reply ({"codec": "pcma"|"pcmu", ...});
# raises TalkRefused. close_talk(channel): tell the device to stop (best effort).
OpenTalk = Callable[[ChannelId, str, str], Awaitable[dict]]
CloseTalk = Callable[[ChannelId], Awaitable[None]]
Revoked = Callable[[MediaGrant], Awaitable[bool]]


class G711Encoder:
    """Mono s16 PCM at any rate → G.711 at 8 kHz (PyAV's resampler and encoder). Stateful:
    feed one session's chunks in order, from one thread at a time."""

    def __init__(self, rate: int, codec: str = "pcma"):
        self.rate = rate
        self.codec = codec
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
        self._encoder = av.CodecContext.create(CODECS[codec], "w")
        self._encoder.sample_rate, self._encoder.layout, self._encoder.format = RATE, "mono", "s16"
        self._encoder.open()
        self._pts = 0

    def encode(self, pcm: bytes) -> bytes:
        samples = np.frombuffer(pcm[: len(pcm) // 2 * 2], dtype="<i2")
        if not samples.size:
            return b""
        frame = av.AudioFrame.from_ndarray(samples.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts = self.rate, self._pts
        self._pts += samples.size
        out = bytearray()
        for resampled in self._resampler.resample(frame):
            for packet in self._encoder.encode(resampled):
                out += bytes(packet)
        return bytes(out)


def decode_g711(data: bytes, codec: str = "pcma") -> np.ndarray:
    """G.711 bytes → int16 samples (PyAV's decoder): what a doorbell's speaker would play."""
    dec = av.CodecContext.create(CODECS[codec], "r")
    dec.sample_rate, dec.layout = RATE, "mono"
    frames = dec.decode(av.Packet(data)) if data else []
    return np.concatenate([f.to_ndarray().ravel() for f in frames]) if frames else np.zeros(0, np.int16)


@dataclass(eq=False)
class TalkSession:
    """One talker and, once it connected, the doorbell listening to it."""

    grant: MediaGrant
    id: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    codec: str = "pcma"
    device: WebSocket | None = None
    device_connected: asyncio.Event = field(default_factory=asyncio.Event)
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    outbox: deque = field(default_factory=deque)  # G.711 chunks waiting for the doorbell
    queued: int = 0
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    close_code: int = TalkClose.ENDED
    close_reason: str = "talk ended"
    bytes_in: int = 0  # PCM from the browser
    bytes_out: int = 0  # G.711 to the doorbell
    dropped: int = 0  # G.711 bytes dropped because the doorbell read too slowly

    def end(self, code: int, reason: str) -> None:
        if not self.finished.is_set():
            self.close_code, self.close_reason = code, reason
            self.finished.set()
            self.wake.set()


async def _never_revoked(grant: MediaGrant) -> bool:
    return False


class TalkServer:
    """The talk-back endpoints (see the module docstring).

    ``device_base_url``: where doorbells reach this worker, e.g. ``ws://media.example.com:8081``
    (a callable is asked each time: the port may be known only once the server is bound).
    """

    def __init__(self, secret_key: bytes, open_talk: OpenTalk, *, device_base_url: str | Callable[[], str],
                 close_talk: CloseTalk | None = None, revoked: Revoked | None = None,
                 poll_interval: float = 0.5, start_timeout: float = 10.0, connect_timeout: float = 10.0,
                 max_buffer_s: float = 1.0):
        self.secret_key = secret_key
        self.open_talk = open_talk
        self.close_talk = close_talk
        self._device_base = device_base_url
        self.revoked = revoked or _never_revoked
        self.poll_interval = poll_interval
        self.start_timeout = start_timeout
        self.connect_timeout = connect_timeout
        self.max_buffer_bytes = int(max_buffer_s * RATE)
        self.replays = ReplayGuard()
        self.sessions: dict[str, TalkSession] = {}
        self._background: set[asyncio.Task] = set()
        self.routes = [WebSocketRoute("/media/talk/{token}", self._browser),
                       WebSocketRoute("/media/talk-device/{token}", self._device)]
        self.app = Starlette(routes=self.routes, lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        yield
        await self.close()

    def device_base_url(self) -> str:
        base = self._device_base() if callable(self._device_base) else self._device_base
        return base.rstrip("/")

    async def close(self) -> None:
        for session in list(self.sessions.values()):
            session.end(TalkClose.GOING_AWAY, "the media worker is shutting down")
        # Let the stop_talk commands in flight finish (bounded by their own timeout):
        # cancelling one mid-query can leave its database connection inside a transaction.
        if self._background:
            _, late = await asyncio.wait(set(self._background), timeout=STOP_TALK_SECONDS + 1)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # -- the browser --------------------------------------------------------------------
    async def _browser(self, ws: WebSocket) -> None:
        await ws.accept()  # first, so a refusal carries its reason (a refused handshake is 1006)
        try:
            grant = verify(self.secret_key, ws.path_params["token"], permission="talk")
        except TokenError as exc:
            code = {"expired": TalkClose.EXPIRED, "wrong-permission": TalkClose.FORBIDDEN}.get(exc.reason,
                                                                                             TalkClose.BAD_TOKEN)
            return await _close(ws, code, exc.reason)
        if not self.replays.use(grant):
            return await _close(ws, TalkClose.EXPIRED, "token already used")
        if await self._is_revoked(grant):
            return await _close(ws, TalkClose.FORBIDDEN, "revoked")
        rate = await self._start_message(ws)
        if rate is None:
            return await _close(ws, TalkClose.BAD_REQUEST, "send {\"type\": \"start\", \"rate\": N} first")
        session = TalkSession(grant)
        self.sessions[session.id] = session
        tasks: list[asyncio.Task] = []
        try:
            if await self._open_device(session):
                await ws.send_text(json.dumps({"type": "ready", "codec": session.codec, "rate": RATE}))
                encoder = G711Encoder(rate, session.codec)
                tasks = [asyncio.create_task(self._relay(ws, session, encoder)),
                         asyncio.create_task(self._feed_device(session))]
                watch = asyncio.create_task(self._watch(session))
                try:
                    await session.finished.wait()
                finally:
                    session.end(session.close_code, session.close_reason)
                    # not cancelled: a re-check in flight finishes its query (a cancelled
                    # one can leave its database connection inside a transaction)
                    await asyncio.gather(watch, return_exceptions=True)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            session.end(session.close_code, session.close_reason)
            self.sessions.pop(session.id, None)
            if session.device is None and self.close_talk is not None:  # asked, never came: don't leave it trying
                self._spawn(self.close_talk(grant.channel))
            log.info("media: talk ended", extra={"talk": session.id, "pcm_in": session.bytes_in,
                                                 "g711_out": session.bytes_out, "dropped": session.dropped})
        await _close(ws, session.close_code, session.close_reason)

    async def _start_message(self, ws: WebSocket) -> int | None:
        try:
            msg = await asyncio.wait_for(ws.receive(), self.start_timeout)
            start = json.loads(msg.get("text") or "")
            rate = int(start["rate"])
        except (TimeoutError, ValueError, KeyError, TypeError, RuntimeError, WebSocketDisconnect):
            return None
        return rate if start.get("type") == "start" and rate in RATES else None

    async def _open_device(self, session: TalkSession) -> bool:
        """Ask the doorbell to connect, and wait until it has."""
        channel = session.grant.channel
        token = mint(self.secret_key, channel, f"talk:{session.id}", permission="talk-device",
                     ttl=DEVICE_TOKEN_SECONDS)
        url = f"{self.device_base_url()}/media/talk-device/{token}"
        try:
            reply = await self.open_talk(channel, url, "pcma")
        except TalkRefused as exc:
            session.end(exc.code, exc.reason)
            return False
        codec = (reply or {}).get("codec", "pcma")
        if codec not in CODECS:
            session.end(TalkClose.NOT_SUPPORTED, f"the doorbell wants {codec!r}, not G.711")
            return False
        session.codec = codec
        try:
            await asyncio.wait_for(session.device_connected.wait(), self.connect_timeout)
        except TimeoutError:
            session.end(TalkClose.OFFLINE, "the doorbell did not connect")
            return False
        return not session.finished.is_set()

    async def _relay(self, ws: WebSocket, session: TalkSession, encoder: G711Encoder) -> None:
        """Browser PCM → G.711 (in a thread) → the doorbell's queue, until the browser stops."""
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return session.end(TalkClose.ENDED, "talker left")
                data = msg.get("bytes")
                if data is None:
                    if '"stop"' in (msg.get("text") or ""):
                        return session.end(TalkClose.ENDED, "talker stopped")
                    continue
                if len(data) > MAX_MESSAGE_BYTES:
                    return session.end(TalkClose.BAD_REQUEST, "audio message too large")
                session.bytes_in += len(data)
                g711 = await asyncio.to_thread(encoder.encode, data)
                if g711:
                    self._queue(session, g711)
        except (WebSocketDisconnect, RuntimeError, OSError):
            session.end(TalkClose.ENDED, "talker left")

    def _queue(self, session: TalkSession, chunk: bytes) -> None:
        session.outbox.append(chunk)
        session.queued += len(chunk)
        while session.queued > self.max_buffer_bytes and len(session.outbox) > 1:
            old = session.outbox.popleft()  # a slow doorbell hears less, later: never more memory
            session.queued -= len(old)
            session.dropped += len(old)
        session.wake.set()

    async def _feed_device(self, session: TalkSession) -> None:
        """The doorbell's writer: everything queued since the last write in one message."""
        try:
            while not session.finished.is_set():
                await session.wake.wait()
                session.wake.clear()
                if not session.outbox:
                    continue
                data = b"".join(session.outbox)
                session.outbox.clear()
                session.queued = 0
                await session.device.send_bytes(data)
                session.bytes_out += len(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            session.end(TalkClose.OFFLINE, "the doorbell left")

    async def _watch(self, session: TalkSession) -> None:
        """Re-check the talker's grant while the session is open (a revoked share stops it)."""
        while not session.finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.finished.wait(), self.poll_interval)
                return
            self.replays.prune()
            if await self._is_revoked(session.grant):
                session.end(TalkClose.FORBIDDEN, "revoked")

    # -- the doorbell -------------------------------------------------------------------
    async def _device(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            grant = verify(self.secret_key, ws.path_params["token"], permission="talk-device")
        except TokenError as exc:
            return await _close(ws, TalkClose.EXPIRED if exc.reason == "expired" else TalkClose.BAD_TOKEN, exc.reason)
        kind, _, session_id = grant.grant.partition(":")
        session = self.sessions.get(session_id) if kind == "talk" else None
        if session is None or session.grant.channel != grant.channel or session.finished.is_set():
            return await _close(ws, TalkClose.EXPIRED, "no such talk")
        if session.device is not None or not self.replays.use(grant):
            return await _close(ws, TalkClose.EXPIRED, "token already used")
        session.device = ws
        session.device_connected.set()
        reader = asyncio.create_task(_drain(ws))
        ended = asyncio.create_task(session.finished.wait())
        try:
            await asyncio.wait({reader, ended}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done():
                session.end(TalkClose.OFFLINE, "the doorbell left")
        finally:
            reader.cancel()
            ended.cancel()
        await _close(ws, TalkClose.ENDED, "talk ended")

    # -- helpers ------------------------------------------------------------------------
    async def _is_revoked(self, grant: MediaGrant) -> bool:
        try:
            return bool(await self.revoked(grant))
        except Exception:  # a database hiccup must not cut everybody off
            log.warning("media: could not re-check talk grant", exc_info=True)
            return False

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


async def _drain(ws: WebSocket) -> None:
    """A doorbell sends nothing we need; reading notices when it leaves."""
    with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
        while (await ws.receive())["type"] != "websocket.disconnect":
            pass


async def _close(ws: WebSocket, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(code, reason[:120]), 2.0)


# Composition with the devices domain ---------------------------------------------------


def devices_talk(ctx: Context) -> tuple[OpenTalk, CloseTalk]:
    """``open_talk``/``close_talk`` over the devices domain (MQTT ``start_talk``/``stop_talk``),
    its problems turned into close codes: not a doorbell or refused → 4422, offline or no
    answer → 4404."""

    async def open_talk(channel: ChannelId, url: str, codec: str) -> dict:
        try:
            return await talkback.start_talk(ctx, channel.device_id, channel.channel, url, codec)
        except Problem as exc:
            code = TalkClose.NOT_SUPPORTED if exc.status == 422 else TalkClose.OFFLINE
            raise TalkRefused(code, str(exc)) from None

    async def close_talk(channel: ChannelId) -> None:
        with contextlib.suppress(Problem):
            await talkback.stop_talk(ctx, channel.device_id, channel.channel, timeout=STOP_TALK_SECONDS)

    return open_talk, close_talk


def settings_device_base_url(ctx: Context) -> str:
    """Where doorbells reach the media worker: ``media_public_url`` (what browsers use too:
    a device on the internet reaches the same public address), else this worker's own
    ``ws://media_http_host:media_http_port`` (127.0.0.1 for a wildcard bind). Read at each
    talk, so a port bound at start-up (0 in tests) is known by then."""
    s = ctx.settings
    if s.media_public_url:
        return s.media_public_url.rstrip("/")
    host = "127.0.0.1" if s.media_http_host in ("", "0.0.0.0", "::") else s.media_http_host
    return f"ws://{host}:{s.media_http_port}"


def talk_server(ctx: Context, device_base_url: str | Callable[[], str] | None = None, **kw) -> TalkServer:
    """The talk-back endpoints of a media worker: tokens checked with ``ctx.key``, doorbells
    asked through the devices domain, talkers re-checked (``media.grants``). Mount
    ``.routes`` beside the live routes (or serve ``.app``) and ``await .close()`` on stop;
    ``device_base_url`` is where doorbells reach this worker (default
    :func:`settings_device_base_url`)."""
    open_talk, close_talk = devices_talk(ctx)
    base = device_base_url if device_base_url is not None else (lambda: settings_device_base_url(ctx))
    return TalkServer(ctx.key, open_talk, close_talk=close_talk, device_base_url=base,
                      revoked=devices_revocation(ctx), **kw)
