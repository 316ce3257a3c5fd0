"""Live view over WebSocket: the media worker's HTTP side, one small Starlette app.

``GET /media/live/{token}`` (WebSocket) — the token (:mod:`faoyam.media.tokens`) names the
channel stream and the viewer. The worker verifies it, subscribes to the stream's hub and
sends what the hub hands over:

1. a **text** message, JSON ``{"type": "init", "mime": "video/mp4; codecs=\\"avc1.640028,mp4a.40.2\\"",
   "tracks": [...]}`` — what the browser needs for ``MediaSource.isTypeSupported`` and
   ``addSourceBuffer``;
2. a **binary** message with the init segment (``ftyp``+``moov``);
3. **binary** messages of fragments (``moof``+``mdat``), starting with the current GOP so the
   picture appears at once. Everything the hub queued since the last write goes out as one
   message (batched writes: a viewer that keeps up gets one message per fragment, one that
   fell behind a little catches up in one write).

A codec or resolution change repeats 1 and 2. A token for a transcoded stream
(``…/main.h264``, chosen by the web app for a browser without HEVC, see
:mod:`faoyam.media.stream_choice`) is served from :class:`~faoyam.media.transcode.Transcoders`:
the first such viewer starts the H.265 → H.264 transcode (in a worker thread), the last
one to leave stops it. The connection is closed with a code that
tells the player what to do (see :class:`Close`): retry with a fresh token, wait for the
camera, or give up and say why.

**Revocation.** ``revoked(grant) -> bool`` (async; the devices domain re-checks the share or
link) is polled every ``poll_interval`` seconds for every open session in one batch — one
call per distinct grant, concurrently — so revoking a share closes its sessions within
about a second. The same loop notices viewers the hub dropped as too slow while their
socket write is stuck, so a viewer that never reads costs a bounded hub queue plus the
socket buffers, never more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from faoyam.media.hub import StreamHubs, Subscription
from faoyam.media.tokens import MediaGrant, ReplayGuard, TokenError, verify
from faoyam.media.tracks import Track
from faoyam.media.transcode import Transcoders, transcoded_source

log = logging.getLogger(__name__)

Revoked = Callable[[MediaGrant], Awaitable[bool]]

DEFAULT_VIEWER_QUEUE_BYTES = 2 << 20  # per viewer, in the hub: ~4 s of a 4 Mbit/s stream
DEFAULT_START_TIMEOUT = 10.0  # how long a viewer waits for a camera asked to start pushing


class Close:
    """WebSocket close codes (4000–4999 are the application's) and what the player does."""

    ENDED = 1000  # the stream ended normally: reconnect later
    GOING_AWAY = 1001  # the worker is shutting down: reconnect with a fresh token
    BAD_TOKEN = 4401  # malformed or tampered: give up
    FORBIDDEN = 4403  # revoked, or a token for something else: give up, say so
    OFFLINE = 4404  # the camera sends nothing: retry with backoff
    EXPIRED = 4410  # expired or already used: fetch a fresh token and retry
    TOO_SLOW = 4429  # the hub dropped this viewer: reconnect


def mime_type(tracks: tuple[Track, ...]) -> str:
    """The Media Source type of a stream: ``video/mp4; codecs="avc1.640028,mp4a.40.2"``."""
    codecs = ",".join(t.mime_codec for t in tracks)
    container = "video/mp4" if any(t.kind == "video" for t in tracks) else "audio/mp4"
    return f'{container}; codecs="{codecs}"'


def init_message(tracks: tuple[Track, ...]) -> str:
    described = [{"kind": t.kind, "codec": t.mime_codec, **({"width": t.width, "height": t.height}
                                                            if t.kind == "video" else {"rate": t.sample_rate})}
                 for t in tracks]
    return json.dumps({"type": "init", "mime": mime_type(tracks), "tracks": described})


def _is_init(chunk: bytes) -> bool:
    return chunk[4:8] == b"ftyp"


async def _never_revoked(grant: MediaGrant) -> bool:
    return False


@dataclass(eq=False)
class LiveSession:
    """One open viewer: its grant, subscription and the task that writes to its socket."""

    grant: MediaGrant
    sub: Subscription
    task: asyncio.Task | None = None
    close_code: int = Close.ENDED
    close_reason: str = ""
    bytes_sent: int = 0
    messages_sent: int = 0
    stats: dict = field(default_factory=dict)

    def stop(self, code: int, reason: str) -> None:
        """End the session from outside (revocation, hub drop): the writer is cancelled even
        if its send is stuck on a viewer that does not read."""
        if self.task is not None and not self.task.done():
            self.close_code, self.close_reason = code, reason
            self.task.cancel()


class LiveServer:
    """The live-view endpoint over a process's :class:`StreamHubs`.

    ``secret_key``: the settings' secret (tokens are checked with it). ``revoked``: the
    devices domain's re-check of a grant. ``app`` is the ASGI application to serve.
    ``transcoders``: the on-demand H.264 versions of H.265 streams (one per process, over
    the same hubs, made here unless given).
    """

    def __init__(self, hubs: StreamHubs, secret_key: bytes, *, revoked: Revoked | None = None,
                 poll_interval: float = 0.5, start_timeout: float = DEFAULT_START_TIMEOUT,
                 viewer_queue_bytes: int = DEFAULT_VIEWER_QUEUE_BYTES, transcoders: Transcoders | None = None):
        self.hubs = hubs
        self.transcoders = transcoders or Transcoders(hubs.hub)
        self.secret_key = secret_key
        self.revoked = revoked or _never_revoked
        self.poll_interval = poll_interval
        self.start_timeout = start_timeout
        self.viewer_queue_bytes = viewer_queue_bytes
        self.replays = ReplayGuard()
        self.sessions: set[LiveSession] = set()
        self._poller: asyncio.Task | None = None
        self.app = Starlette(routes=[WebSocketRoute("/media/live/{token}", self._endpoint)],
                             lifespan=self._lifespan)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        yield
        await self.close()

    async def close(self) -> None:
        """Close every session (going away) and stop polling."""
        for session in list(self.sessions):
            session.stop(Close.GOING_AWAY, "the media worker is shutting down")
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await self.transcoders.close()

    # -- one viewer --
    async def _endpoint(self, ws: WebSocket) -> None:
        await ws.accept()  # accept first: a refused handshake would hide the reason (1006)
        try:
            grant = verify(self.secret_key, ws.path_params["token"])
        except TokenError as exc:
            code = Close.EXPIRED if exc.reason == "expired" else (
                Close.FORBIDDEN if exc.reason == "wrong-permission" else Close.BAD_TOKEN)
            await self._refuse(ws, code, exc.reason)
            return
        if not self.replays.use(grant):
            await self._refuse(ws, Close.EXPIRED, "token already used")
            return
        if await self._is_revoked(grant):
            await self._refuse(ws, Close.FORBIDDEN, "revoked")
            return
        source = transcoded_source(grant.channel)
        if source is not None:  # a browser without HEVC, a camera without an H.264 sub-stream
            sub = self.transcoders.subscribe(source, queue_bytes=self.viewer_queue_bytes)
            hub = sub.hub
        else:
            hub = self.hubs.hub(grant.channel)
            sub = hub.subscribe(queue_bytes=self.viewer_queue_bytes)
        session = LiveSession(grant, sub)
        self.sessions.add(session)
        self._ensure_poller()
        session.task = asyncio.create_task(self._pump(ws, session))
        receiver = asyncio.create_task(self._receive(ws))
        try:
            await asyncio.wait({session.task, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if receiver.done():
                session.stop(Close.ENDED, "viewer left")
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError, OSError):
                await session.task  # a send that failed because the viewer left
        finally:
            session.task.cancel()
            receiver.cancel()
            self.sessions.discard(session)
            sub.close()
            self.hubs.release(hub)
        await self._close(ws, session.close_code, session.close_reason)

    async def _pump(self, ws: WebSocket, session: LiveSession) -> None:
        sub = session.sub
        # Nothing yet: the camera was asked to push (on_demand) — wait a while for it.
        try:
            chunks = await asyncio.wait_for(sub.read(), self.start_timeout)
        except TimeoutError:
            session.close_code, session.close_reason = Close.OFFLINE, "the camera sends no video"
            return
        while chunks:
            await self._send_batch(ws, session, chunks)
            chunks = await sub.read()
        if sub.closed_reason and "too slow" in sub.closed_reason:
            session.close_code, session.close_reason = Close.TOO_SLOW, sub.closed_reason
        else:
            session.close_code, session.close_reason = Close.ENDED, sub.closed_reason or "stream ended"

    async def _send_batch(self, ws: WebSocket, session: LiveSession, chunks: list[bytes]) -> None:
        """One write for every fragment read together; an init segment goes alone, after the
        JSON that describes it (the player may have to make a new SourceBuffer for it)."""
        start = 0
        for i, chunk in enumerate(chunks):
            if _is_init(chunk):
                if i > start:
                    await self._send_bytes(ws, session, b"".join(chunks[start:i]))
                await ws.send_text(init_message(session.sub.tracks))
                await self._send_bytes(ws, session, chunk)
                start = i + 1
        if start < len(chunks):
            await self._send_bytes(ws, session, chunks[start] if start == len(chunks) - 1
                                   else b"".join(chunks[start:]))

    @staticmethod
    async def _send_bytes(ws: WebSocket, session: LiveSession, data: bytes) -> None:
        await ws.send_bytes(data)
        session.bytes_sent += len(data)
        session.messages_sent += 1

    @staticmethod
    async def _receive(ws: WebSocket) -> None:
        """The viewer sends nothing we need; reading notices when it leaves."""
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            while (await ws.receive())["type"] != "websocket.disconnect":
                pass

    @staticmethod
    async def _refuse(ws: WebSocket, code: int, reason: str) -> None:
        log.info("media: live view refused: %s", reason)
        await LiveServer._close(ws, code, reason)

    @staticmethod
    async def _close(ws: WebSocket, code: int, reason: str) -> None:
        with contextlib.suppress(Exception):
            # A viewer that never reads cannot take the close frame either: don't wait long.
            await asyncio.wait_for(ws.close(code, reason[:120]), 2.0)

    # -- every viewer, twice a second --
    def _ensure_poller(self) -> None:
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        while self.sessions:
            await asyncio.sleep(self.poll_interval)
            await self.poll()
        self._poller = None

    async def poll(self) -> None:
        """One pass over the open sessions: end those the hub dropped, and those whose grant
        the devices domain revoked (one check per distinct grant, concurrently)."""
        self.replays.prune()
        sessions = list(self.sessions)
        for session in sessions:
            reason = session.sub.closed_reason
            if reason and "too slow" in reason:
                session.stop(Close.TOO_SLOW, reason)
        by_grant: dict[tuple, list[LiveSession]] = {}
        for session in sessions:
            g = session.grant
            by_grant.setdefault((g.grant, g.channel, g.permission), []).append(session)
        grants = [group[0].grant for group in by_grant.values()]
        answers = await asyncio.gather(*(self._is_revoked(g) for g in grants))
        for group, revoked in zip(by_grant.values(), answers):
            if revoked:
                for session in group:
                    session.stop(Close.FORBIDDEN, "revoked")

    async def _is_revoked(self, grant: MediaGrant) -> bool:
        try:
            return bool(await self.revoked(grant))
        except Exception:  # a database hiccup must not end every viewer's session
            log.warning("media: could not re-check grant %s; keeping its sessions", grant.grant, exc_info=True)
            return False
