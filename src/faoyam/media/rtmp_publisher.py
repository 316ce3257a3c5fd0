"""An RTMP publisher in Python: how our device agent and simulator push video.

It speaks the same client dialogue as ffmpeg's ``-f flv rtmp://…`` (handshake, connect,
releaseStream, FCPublish, createStream, publish), then sends FLV tag bodies: H.264 in the
classic form, H.265 in Enhanced RTMP form, AAC audio. Its chunk size is large (64 KiB), so a
frame is one or a few chunks and the receiver has little to reassemble.

:func:`run_cameras` paces any number of simulated cameras at real-time rate from **one**
timer (one wake-up per tick for all cameras, not one per camera per frame), looping a
pre-encoded :class:`~faoyam.media.testvideo.Clip` with rewritten timestamps.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from faoyam.media import amf, flv
from faoyam.media.rtmp_chunks import (
    AUDIO, COMMAND_AMF0, DATA_AMF0, SET_CHUNK_SIZE, VIDEO, ChunkReader, Message, encode_message,
)
from faoyam.media.testvideo import Clip, Packet

HANDSHAKE_SIZE = 1536
CHUNK_SIZE = 65536


class PublishError(ConnectionError):
    """The server refused the stream or broke the dialogue."""


def parse_url(url: str) -> tuple[str, int, str, str]:
    """``rtmp://host[:port]/app/stream-key`` → (host, port, app, key)."""
    parts = urlsplit(url)
    if parts.scheme != "rtmp" or not parts.hostname:
        raise ValueError(f"not an rtmp:// URL: {url}")
    app, _, key = parts.path.lstrip("/").partition("/")
    if parts.query:
        key += "?" + parts.query
    return parts.hostname, parts.port or 1935, app, key


class RtmpPublisher:
    """One publishing connection. ``await connect()``, then ``send_*`` (non-blocking writes),
    ``await drain()`` now and then, ``await close()``."""

    def __init__(self, url: str, *, timeout: float = 10.0):
        self.url = url
        self.host, self.port, self.app, self.key = parse_url(url)
        self.timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._chunks = ChunkReader()
        self._buf = bytearray()
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._pump: asyncio.Task | None = None
        self._txn = 0.0
        self.packets_sent = 0
        self.bytes_sent = 0

    async def connect(self) -> None:
        await asyncio.wait_for(self._connect(), self.timeout)

    async def _connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        c1 = struct.pack(">II", 0, 0) + os.urandom(HANDSHAKE_SIZE - 8)
        self._writer.write(b"\x03" + c1)
        s0s1s2 = await self._reader.readexactly(1 + 2 * HANDSHAKE_SIZE)
        if s0s1s2[0] != 3:
            raise PublishError(f"server answered handshake version {s0s1s2[0]}")
        self._writer.write(s0s1s2[1:1 + HANDSHAKE_SIZE])  # C2 echoes S1
        self._pump = asyncio.create_task(self._read_forever())
        self._write(encode_message(2, SET_CHUNK_SIZE, 0, 0, struct.pack(">I", CHUNK_SIZE), 128))
        tc_url = f"rtmp://{self.host}:{self.port}/{self.app}"
        await self._call("connect", {"app": self.app, "type": "nonprivate", "flashVer": "FMLE/3.0",
                                     "tcUrl": tc_url})
        self._command("releaseStream", None, self.key)
        self._command("FCPublish", None, self.key)
        result = await self._call("createStream", None)
        stream_id = result[3] if len(result) > 3 and isinstance(result[3], float) else 1.0
        self._stream_id = int(stream_id)
        self._command("publish", None, self.key, "live", stream_id=self._stream_id)
        while True:
            values = await self._next_command()
            if values[0] == "onStatus":
                info = values[3] if len(values) > 3 and isinstance(values[3], dict) else {}
                if info.get("code") == "NetStream.Publish.Start":
                    return
                raise PublishError(f"publish refused: {info.get('code')} {info.get('description', '')}")

    async def _read_forever(self) -> None:
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                self._buf += data
                messages: list[Message] = []
                pos = self._chunks.parse(self._buf, 0, messages)
                del self._buf[:pos]
                for message in messages:
                    if message.type_id == COMMAND_AMF0:
                        self._inbox.put_nowait(message)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._inbox.put_nowait(Message(0, 0, 0, b""))  # wakes a waiting caller: closed

    async def _next_command(self) -> list:
        message = await self._inbox.get()
        if message.type_id == 0:
            raise PublishError("server closed the connection")
        return amf.decode_all(message.payload)

    def _write(self, data: bytes) -> None:
        self._writer.write(data)
        self.bytes_sent += len(data)

    def _command(self, name: str, *values, stream_id: int = 0) -> float:
        self._txn += 1
        self._write(encode_message(8 if stream_id else 3, COMMAND_AMF0, stream_id, 0,
                                   amf.encode(name, self._txn, *values), CHUNK_SIZE))
        return self._txn

    async def _call(self, name: str, *values) -> list:
        txn = self._command(name, *values)
        while True:
            reply = await self._next_command()
            if reply[0] == "_error" and len(reply) > 1 and reply[1] == txn:
                raise PublishError(f"{name} refused: {reply[3:]}")
            if reply[0] == "_result" and len(reply) > 1 and reply[1] == txn:
                return reply

    # -- media --
    def send_metadata(self, clip: Clip) -> None:
        meta = {"width": float(clip.width), "height": float(clip.height), "framerate": float(clip.fps),
                "videocodecid": 7.0 if clip.codec == "avc1" else float(int.from_bytes(b"hvc1", "big"))}
        if clip.audio_config:
            meta["audiocodecid"] = 10.0
        self._write(encode_message(4, DATA_AMF0, self._stream_id, 0,
                                   amf.encode("@setDataFrame", "onMetaData", meta), CHUNK_SIZE))

    def send_configs(self, clip: Clip) -> None:
        self.send_metadata(clip)
        self._write(encode_message(6, VIDEO, self._stream_id, 0,
                                   flv.video_tag(clip.codec, flv.CONFIG, data=clip.config), CHUNK_SIZE))
        if clip.audio_config:
            self._write(encode_message(4, AUDIO, self._stream_id, 0, flv.aac_tag(flv.CONFIG, clip.audio_config),
                                       CHUNK_SIZE))

    def send_video(self, codec: str, packet: Packet) -> None:
        body = flv.video_tag(codec, flv.FRAME, packet.keyframe, packet.cts, packet.data)
        self._write(encode_message(6, VIDEO, self._stream_id, packet.dts, body, CHUNK_SIZE))
        self.packets_sent += 1

    def send_audio(self, packet: Packet) -> None:
        self._write(encode_message(4, AUDIO, self._stream_id, packet.dts, flv.aac_tag(flv.FRAME, packet.data),
                                   CHUNK_SIZE))
        self.packets_sent += 1

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are (tests send garbage with this)."""
        self._write(data)

    async def drain(self) -> None:
        await self._writer.drain()

    @property
    def closed(self) -> bool:
        """The connection is gone (closed here, or the server hung up)."""
        return self._writer is None or self._writer.is_closing() or (self._pump is not None and self._pump.done())

    async def close(self) -> None:
        if self._writer is None:
            return
        try:
            self._command("FCUnpublish", None, self.key)
            await asyncio.wait_for(self._writer.drain(), 2)
        except (ConnectionError, asyncio.TimeoutError, RuntimeError):
            pass
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        except (ConnectionError, asyncio.TimeoutError):
            pass
        if self._pump is not None:
            self._pump.cancel()
        self._writer = None


@dataclass
class Camera:
    """A simulated camera: a clip looped into one or more publishers (the same frames to each)."""

    clip: Clip
    publishers: Sequence[RtmpPublisher]
    start_delay: float = 0.0
    sent: int = 0


async def run_cameras(cameras: Sequence[Camera], seconds: float, *, tick: float = 0.02) -> None:
    """Send every camera's loop at real-time rate for ``seconds`` from one shared timer.

    Cameras start ``start_delay`` apart (so their keyframes do not all land in the same tick,
    as with real cameras). Each publisher gets its configuration first.
    """
    loop_start = time.monotonic()
    feeds: list[tuple[Camera, Iterator[tuple[str, Packet]], list]] = []
    for camera in cameras:
        for publisher in camera.publishers:
            publisher.send_configs(camera.clip)
        feeds.append((camera, camera.clip.loop(), [None]))
    deadline = loop_start + seconds
    drain_every, ticks = max(1, int(1 / tick)), 0
    while True:
        now = time.monotonic()
        if now >= deadline:
            break
        for camera, feed, head in feeds:
            elapsed_ms = (now - loop_start - camera.start_delay) * 1000
            if elapsed_ms < 0:
                continue
            while True:
                if head[0] is None:
                    head[0] = next(feed)
                kind, packet = head[0]
                if packet.dts > elapsed_ms:
                    break
                for publisher in camera.publishers:
                    if kind == "video":
                        publisher.send_video(camera.clip.codec, packet)
                    else:
                        publisher.send_audio(packet)
                camera.sent += 1
                head[0] = None
        ticks += 1
        if ticks % drain_every == 0:  # back-pressure check about once a second
            await asyncio.gather(*(p.drain() for c in cameras for p in c.publishers))
        await asyncio.sleep(max(0.0, tick - (time.monotonic() - now)))
