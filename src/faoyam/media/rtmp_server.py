"""The RTMP ingest server: cameras and encoders push, streams go to their hubs.

One asyncio server takes every camera's connection — no thread or process per camera. What
a connection costs at real-time rate is mostly wake-ups, not bytes (a 4 Mbit/s camera sends
25 frames a second, each its own TCP write), so a publishing connection is read in
**batches**: once a connection publishes, its transport stops reading and one server-wide
ticker reads every publishing socket directly (a non-blocking ``recv`` on a duplicate of the
socket) every ``read_interval`` seconds. The kernel buffers the frames in between; one tick
then reads, parses and muxes several frames per camera, the hub emits one fragment per
batch, and no per-connection event-loop machinery (selector registration, callbacks) runs
per frame. ``read_interval`` bounds the latency this adds (default 100 ms); 0 turns batching
off (every TCP segment is handled when it arrives). A stream that only **background**
consumers read (the recorder, a detector: ``hub.subscribe(background=True)``) is read every
``background_interval`` (500 ms) instead — a third of the CPU of a recorded camera is the
per-batch work, and nobody waits on those bytes. The first live viewer switches the stream
back at the next tick (it starts on the hub's GOP at once, so joining costs nothing). Handshake and commands — rare — go
through the ordinary asyncio transport.

The session speaks the publishing half of RTMP — what ffmpeg (``-f flv rtmp://…``),
GStreamer's ``rtmp2sink``, OBS and camera firmware send::

    handshake (C0 C1 → S0 S1 S2 → C2)
    connect(app)            → Window Ack Size, Set Peer Bandwidth, Set Chunk Size, _result
    releaseStream, FCPublish → _result
    createStream            → _result(stream id 1)
    publish(stream key)     → authorize(app, stream key) → onStatus Publish.Start | BadName
    @setDataFrame onMetaData, then audio/video messages (FLV tag bodies)

Anything else — garbage bytes, a bad handshake, a message over the size limit, a codec we do
not carry, a configuration record that does not parse, a refused stream key — closes the
connection with one log line naming the peer and the reason. The hub and its viewers stay.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import struct
from collections.abc import Hashable

from faoyam.media import amf, flv
from faoyam.media.hub import StreamHub, StreamHubs
from faoyam.media.ids import Authorize
from faoyam.media.rtmp_chunks import (
    ACK, AGGREGATE, AUDIO, COMMAND_AMF0, COMMAND_AMF3, DATA_AMF0, DATA_AMF3, MAX_MESSAGE_SIZE,
    SET_CHUNK_SIZE, SET_PEER_BANDWIDTH, VIDEO, WINDOW_ACK_SIZE, ChunkReader, Message,
    RtmpProtocolError, control_message, encode_message,
)
from faoyam.media.tracks import CodecConfigError, Track, aac_track, g711_track, h264_track, h265_track

log = logging.getLogger(__name__)

HANDSHAKE_SIZE = 1536
OUT_CHUNK_SIZE = 4096
WINDOW = 2_500_000
_COMMAND_CSID = 3
_STATUS_CSID = 5
_STREAM_ID = 1  # the one message stream a publishing connection creates
END_GRACE_SECONDS = 5.0
READ_SIZE = 256 * 1024  # per recv; a tick reads until the kernel has no more

_TRACK_OF_CONFIG = {"avc1": h264_track, "hvc1": h265_track}


class IngestError(ValueError):
    """The publisher sent something we will not carry; the reason is logged."""


class RtmpSession(asyncio.Protocol):
    """One publishing connection."""

    def __init__(self, server: RtmpServer):
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self._buf = bytearray()
        self._state = "c0c1"
        self._reader = ChunkReader(server.max_message_size)
        self._held: list[Message] | None = None  # messages waiting while the key is checked
        self.app = ""
        self.stream: Hashable | None = None
        self.hub: StreamHub | None = None
        self._video: Track | None = None
        self._audio: Track | None = None
        self._configured = False
        self._video_index = self._audio_index = -1
        self._bytes_in = 0
        self._acked = 0
        self._peer_window = 0
        self.opened_at = self.last_media_at = asyncio.get_running_loop().time()
        self.next_poll_at = 0.0  # when only background consumers read the stream (RtmpServer._tick)
        self.media_messages = 0
        self.metadata: dict = {}
        self.closed_reason: str | None = None
        self._sock = None  # our duplicate of the socket while the ticker polls it

    # -- asyncio.Protocol --
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self.server.sessions.add(self)

    def data_received(self, data: bytes) -> None:
        if self.closed_reason is not None:
            return
        self._bytes_in += len(data)
        self._buf += data
        self._run(self._process)

    def _poll(self) -> None:
        """The ticker's read: everything the kernel holds for us, then one processing pass."""
        got = eof = False
        scratch = self.server._scratch
        try:
            while True:
                # Into the server's one scratch buffer: ``recv(256 KiB)`` would allocate (and
                # the allocator map and unmap) a quarter megabyte per call, per camera, per tick.
                n = self._sock.recv_into(scratch)
                if not n:
                    eof = True
                    break
                got = True
                self._bytes_in += n
                self._buf += scratch[:n]
                if n < READ_SIZE:
                    break
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            self.close(f"connection error: {exc}")
            return
        if got:
            self._run(self._process)
        if eof:
            self.close("connection closed by the publisher")

    def _run(self, step) -> None:
        """Run a parsing step; bad input closes the connection with a log line."""
        try:
            step()
        except (RtmpProtocolError, amf.AmfError, flv.FlvError, CodecConfigError, IngestError) as exc:
            self.close(str(exc), level=logging.WARNING)
            return
        except Exception as exc:  # a bug must not take the server down with it
            log.exception("rtmp %s: unexpected error", self.peer)
            self.close(f"internal error: {exc!r}", level=logging.ERROR)
            return
        if self.hub is not None and self._state == "publishing":
            self.hub.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.sessions.discard(self)
        self._stop_polling()
        if self.closed_reason is None:
            self.closed_reason = "connection lost"
            log.info("rtmp %s: %s disconnected", self.peer, self.stream or "client")
        self._leave_hub()

    # -- Publisher (for the hub) --
    def close(self, reason: str, level: int = logging.INFO) -> None:
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        log.log(level, "rtmp %s: closing (%s): %s", self.peer, self.stream or "not publishing", reason)
        self._stop_polling()
        self._leave_hub()
        if self.transport is not None:
            self.transport.close()

    def _start_polling(self) -> None:
        sock = self.transport.get_extra_info("socket")
        if self.server.read_interval <= 0 or sock is None:
            self.transport.resume_reading()
            return
        self._sock = sock.dup()  # the transport keeps its own; ours is only read
        self._sock.setblocking(False)
        self.server._polled.add(self)  # the transport stays paused from here on

    def _stop_polling(self) -> None:
        self.server._polled.discard(self)
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _end_publishing(self) -> None:
        """The publisher said goodbye. It hangs up itself (GStreamer reports an error if we
        do it first); if it does not, the connection is closed after a grace period."""
        if self._state != "publishing":
            return
        log.info("rtmp %s: %s: the publisher ended the stream", self.peer, self.stream)
        self._state = "ended"
        self._leave_hub()
        asyncio.get_running_loop().call_later(
            END_GRACE_SECONDS, lambda: self.close("did not hang up after ending its stream"))

    def _leave_hub(self) -> None:
        hub, self.hub = self.hub, None
        if hub is not None:
            hub.detach(self)
            self.server.hubs.release(hub)

    # -- parsing --
    def _process(self) -> None:
        buf = self._buf
        if self._state == "c0c1":
            if buf[0] != 3:
                raise IngestError(f"not RTMP: handshake version byte 0x{buf[0]:02x}")
            if len(buf) < 1 + HANDSHAKE_SIZE:
                return
            c1 = bytes(buf[1:1 + HANDSHAKE_SIZE])
            del buf[:1 + HANDSHAKE_SIZE]
            # S1: time, zero version (so clients skip digest validation), random; S2 echoes C1
            s1 = struct.pack(">II", 0, 0) + os.urandom(HANDSHAKE_SIZE - 8)
            self.transport.write(b"\x03" + s1 + c1)
            self._state = "c2"
        if self._state == "c2":
            if len(buf) < HANDSHAKE_SIZE:
                return
            del buf[:HANDSHAKE_SIZE]
            self._state = "connected"
        if self._held is not None:
            return  # authorizing: leave the rest in the buffer
        messages: list[Message] = []
        pos = self._reader.parse(buf, 0, messages)
        if pos:
            del buf[:pos]
        if len(buf) > self.server.max_message_size + 4096:
            raise RtmpProtocolError("incomplete chunk larger than any allowed message")
        self._handle(messages)
        if self._peer_window and self._bytes_in - self._acked >= self._peer_window:
            self._acked = self._bytes_in
            self.transport.write(control_message(ACK, struct.pack(">I", self._bytes_in & 0xFFFFFFFF)))

    def _handle(self, messages: list[Message]) -> None:
        media = False
        for i, message in enumerate(messages):
            if self._held is not None:  # publish is being authorized: keep the rest for later
                self._held.extend(messages[i:])
                break
            type_id = message.type_id
            if self._state == "ended" and type_id in (VIDEO, AUDIO, AGGREGATE):
                continue  # stragglers after the goodbye
            if type_id == VIDEO:
                self._on_video(message.timestamp, message.payload)
                media = True
            elif type_id == AUDIO:
                self._on_audio(message.timestamp, message.payload)
                media = True
            elif type_id == AGGREGATE:
                self._on_aggregate(message)
                media = True
            elif type_id in (COMMAND_AMF0, COMMAND_AMF3):
                payload = message.payload[1:] if type_id == COMMAND_AMF3 else message.payload
                self._on_command(amf.decode_all(payload))
            elif type_id in (DATA_AMF0, DATA_AMF3):
                payload = message.payload[1:] if type_id == DATA_AMF3 else message.payload
                self._on_data(amf.decode_all(payload))
            elif type_id == WINDOW_ACK_SIZE and len(message.payload) >= 4:
                self._peer_window = int.from_bytes(message.payload[:4], "big")
            # Set Chunk Size / Abort were applied by the reader; Ack, User Control and Set
            # Peer Bandwidth need nothing from a server that only receives.
        if media:
            self.last_media_at = self.server.now

    # -- commands --
    def _send_command(self, csid: int, stream_id: int, *values) -> None:
        self.transport.write(encode_message(csid, COMMAND_AMF0, stream_id, 0, amf.encode(*values), OUT_CHUNK_SIZE))

    def _status(self, level: str, code: str, description: str) -> None:
        self._send_command(_STATUS_CSID, _STREAM_ID, "onStatus", 0, None,
                           {"level": level, "code": code, "description": description})

    def _on_command(self, values: list) -> None:
        if not values or not isinstance(values[0], str):
            raise IngestError("command without a name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0
        args = values[3:]
        if name == "connect":
            info = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
            self.app = str(info.get("app", "")).strip("/")
            self.transport.write(
                control_message(WINDOW_ACK_SIZE, struct.pack(">I", WINDOW))
                + control_message(SET_PEER_BANDWIDTH, struct.pack(">IB", WINDOW, 2))
                + control_message(SET_CHUNK_SIZE, struct.pack(">I", OUT_CHUNK_SIZE)))
            self._send_command(_COMMAND_CSID, 0, "_result", txn,
                               {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                               {"level": "status", "code": "NetConnection.Connect.Success",
                                "description": "Connection succeeded.", "objectEncoding": 0.0})
            self._state = "connected"
        elif name in ("releaseStream", "FCPublish", "getStreamLength"):
            self._send_command(_COMMAND_CSID, 0, "_result", txn, None)
        elif name == "createStream":
            self._send_command(_COMMAND_CSID, 0, "_result", txn, None, float(_STREAM_ID))
        elif name == "publish":
            key = args[0] if args and isinstance(args[0], str) else ""
            self._held = []
            asyncio.ensure_future(self._authorize(key))
        elif name in ("FCUnpublish", "deleteStream", "closeStream"):
            self._end_publishing()
        elif name == "play":
            self._status("error", "NetStream.Play.Failed", "this server only receives")
            raise IngestError("play requested on the ingest port")
        # anything else (e.g. _checkbw, ping replies) is ignored, as other servers do

    async def _authorize(self, key: str) -> None:
        self.transport.pause_reading()
        try:
            verdict = self.server.authorize(self.app, key)
            if inspect.isawaitable(verdict):
                verdict = await verdict
        except Exception:
            log.exception("rtmp %s: authorize failed", self.peer)
            verdict = None
        if self.closed_reason is not None:
            return
        if verdict is None:
            self._status("error", "NetStream.Publish.BadName", "stream key refused")
            self.server.rejected += 1
            self.close(f"publish refused for app {self.app!r}", level=logging.WARNING)
            return
        self.stream = verdict
        self.hub = self.server.hubs.hub(verdict)
        self.hub.attach(self)
        self._status("status", "NetStream.Publish.Start", f"publishing {verdict}")
        self._state = "publishing"
        self.last_media_at = self.server.now
        log.info("rtmp %s: publishing %s", self.peer, verdict)
        held, self._held = self._held, None
        self._start_polling()

        def catch_up() -> None:  # what arrived while we were checking the key
            self._handle(held)
            self._process()

        self._run(catch_up)
        if self.hub is not None:
            self.hub.flush()

    def _on_data(self, values: list) -> None:
        if len(values) >= 3 and values[0] == "@setDataFrame" and isinstance(values[2], dict):
            self.metadata = values[2]
        elif len(values) >= 2 and values[0] == "onMetaData" and isinstance(values[1], dict):
            self.metadata = values[1]

    # -- media --
    def _require_publishing(self) -> StreamHub:
        if self.hub is None:
            raise IngestError("media before an authorized publish")
        return self.hub

    def _configure(self, hub: StreamHub) -> None:
        tracks = [t for t in (self._video, self._audio) if t is not None]
        self._video_index = 0 if self._video is not None else -1
        self._audio_index = tracks.index(self._audio) if self._audio is not None else -1
        hub.configure(tracks)
        self._configured = True

    def _on_video(self, timestamp: int, payload: bytes) -> None:
        hub = self._require_publishing()
        self.media_messages += 1
        tag = flv.parse_video(payload)
        if tag is None:
            return
        if tag.kind == flv.CONFIG:
            track = _TRACK_OF_CONFIG[tag.codec](tag.data)
            if track != self._video:
                self._video, self._configured = track, False
            return
        if tag.kind == flv.END:
            return
        if self._video is None or self._video.codec != tag.codec:
            raise IngestError(f"{tag.codec} frame without a matching decoder configuration")
        data = tag.data
        # The first NAL length must fit the frame: catches a stream whose frames are not the
        # length-prefixed NAL units its configuration announced, at the cost of one read.
        if len(data) < 5 or int.from_bytes(data[:4], "big") > len(data) - 4:
            raise IngestError("video frame is not length-prefixed NAL units (codec mislabelled?)")
        if not self._configured:
            self._configure(hub)
        hub.add(self._video_index, timestamp * 90, tag.cts * 90, tag.keyframe, data)

    def _on_audio(self, timestamp: int, payload: bytes) -> None:
        hub = self._require_publishing()
        self.media_messages += 1
        tag = flv.parse_audio(payload)
        if tag.kind == flv.CONFIG:
            track = aac_track(tag.data)
            if track != self._audio:
                self._audio, self._configured = track, False
            return
        if self._audio is None:
            if tag.codec == "mp4a":
                return  # AAC frames before their configuration cannot be decoded: skip
            self._audio, self._configured = g711_track(tag.codec), False
        if not self._configured:
            self._configure(hub)
        if not tag.data:
            return
        hub.add(self._audio_index, timestamp * self._audio.timescale // 1000, 0, True, tag.data)

    def _on_aggregate(self, message: Message) -> None:
        """An aggregate message: FLV tags back to back, timestamps relative to the first."""
        body, pos, base = message.payload, 0, None
        while pos + 11 <= len(body):
            kind = body[pos]
            size = int.from_bytes(body[pos + 1:pos + 4], "big")
            ts = int.from_bytes(body[pos + 4:pos + 7], "big") | (body[pos + 7] << 24)
            tag = body[pos + 11:pos + 11 + size]
            if len(tag) != size:
                raise RtmpProtocolError("truncated aggregate message")
            base = ts if base is None else base
            timestamp = message.timestamp + ts - base
            if kind == VIDEO:
                self._on_video(timestamp, tag)
            elif kind == AUDIO:
                self._on_audio(timestamp, tag)
            pos += 11 + size + 4


class RtmpServer:
    """Accepts RTMP publishers for every camera on one port.

    ``authorize(app, stream_key)`` returns the stream id the connection may publish (or None);
    it may be async. ``idle_timeout``: a publisher that sends no media for this long is
    disconnected (its hub and viewers stay). ``handshake_timeout``: a connection that has not
    started publishing by then is closed.
    """

    def __init__(self, hubs: StreamHubs, authorize: Authorize, *, read_interval: float = 0.1,
                 background_interval: float = 0.5,
                 idle_timeout: float = 60.0, handshake_timeout: float = 10.0,
                 max_message_size: int = MAX_MESSAGE_SIZE):
        self.hubs = hubs
        self.authorize = authorize
        self.read_interval = read_interval
        # A stream only background consumers read (the recorder): polled this often instead;
        # never so rarely that the idle sweep would take it for a silent camera.
        self.background_interval = max(read_interval, min(background_interval, idle_timeout / 4))
        self.idle_timeout = idle_timeout
        self.handshake_timeout = handshake_timeout
        self.max_message_size = max_message_size
        self.sessions: set[RtmpSession] = set()
        self._polled: set[RtmpSession] = set()
        # Every polled read lands here first (sessions are read one after another, never at once).
        self._scratch = memoryview(bytearray(READ_SIZE))
        self._server: asyncio.AbstractServer | None = None
        self._ticker: asyncio.Task | None = None
        self.now = 0.0
        self.rejected = 0
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> RtmpServer:
        loop = asyncio.get_running_loop()
        self.now = loop.time()
        self._server = await loop.create_server(lambda: RtmpSession(self), host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._ticker = asyncio.create_task(self._tick())
        return self

    async def _tick(self) -> None:
        """Read every publishing connection once per interval; now and then, sweep idle ones."""
        loop = asyncio.get_running_loop()
        interval = self.read_interval if self.read_interval > 0 else 0.5
        next_sweep = 0.0
        while True:
            await asyncio.sleep(interval)
            self.now = loop.time()
            for session in list(self._polled):
                hub = session.hub
                if hub is not None and not hub.live_subscribers:
                    if self.now < session.next_poll_at:
                        continue
                    # half a tick early: due every k-th tick, not every (k+1)-th by jitter
                    session.next_poll_at = self.now + self.background_interval - interval / 2
                session._poll()
            if self.now >= next_sweep:
                next_sweep = self.now + min(1.0, self.idle_timeout / 4, self.handshake_timeout / 4)
                self._sweep()

    def _sweep(self) -> None:
        for session in list(self.sessions):
            if session._state == "publishing":
                if self.now - session.last_media_at > self.idle_timeout:
                    session.close(f"no media for {self.idle_timeout:g} s", level=logging.WARNING)
            elif session._state != "ended" and self.now - session.opened_at > self.handshake_timeout:
                session.close("did not start publishing in time", level=logging.WARNING)

    async def close(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
        if self._server is not None:
            self._server.close()
        for session in list(self.sessions):
            session.close("server shutting down")
        if self._server is not None:
            await self._server.wait_closed()
