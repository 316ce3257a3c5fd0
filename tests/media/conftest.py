"""Fixtures for the media engine: encoded test clips, an RTMP server on a free port, and a
PyAV probe that checks what a viewer received (codec, size, frames, timestamps)."""

from __future__ import annotations

import asyncio
import io
import os
import time
from dataclasses import dataclass, field

import av
import pytest
import pytest_asyncio

from faoyam.media import ChannelId, RtmpServer, StreamHubs, Subscription
from faoyam.media.rtmp_publisher import RtmpPublisher
from faoyam.media.testvideo import Clip, cached_clip

TOKENS = {"cam1-secret": ChannelId("cam1"), "cam2-secret": ChannelId("cam2"), "nvr-ch3": ChannelId("nvr", 3, "sub")}


@pytest.fixture(scope="session", autouse=True)
def _clip_cache(tmp_path_factory):
    """Clips are encoded once per test session into a private directory."""
    os.environ["FAOYAM_MEDIA_CACHE"] = str(tmp_path_factory.mktemp("media-cache"))


@pytest.fixture(scope="session")
def h264_clip(_clip_cache) -> Clip:
    """4 s of 320×240 H.264 with B-frames (composition offsets) and AAC audio, GOP 2 s."""
    return cached_clip(audio=True, bframes=2, seconds=4.0)


@pytest.fixture(scope="session")
def short_clip(_clip_cache) -> Clip:
    """2 s, GOP 1 s, with AAC: for third-party pushers that send at real-time rate."""
    return cached_clip(audio=True, bframes=2, seconds=2.0, gop_seconds=1.0)


@pytest.fixture(scope="session")
def h265_clip(_clip_cache) -> Clip:
    return cached_clip(codec="h265", seconds=2.0, gop_seconds=1.0)


def authorize(app: str, key: str) -> ChannelId | None:
    return TOKENS.get(key) if app == "live" else None


@dataclass
class Ingest:
    server: RtmpServer
    hubs: StreamHubs
    idle: list = field(default_factory=list)

    def url(self, key: str = "cam1-secret", app: str = "live") -> str:
        return f"rtmp://127.0.0.1:{self.server.port}/{app}/{key}"

    def hub(self, channel: ChannelId = TOKENS["cam1-secret"]):
        return self.hubs.hub(channel)


@pytest_asyncio.fixture
async def ingest():
    idle: list = []
    hubs = StreamHubs(on_idle=idle.append)
    server = await RtmpServer(hubs, authorize, read_interval=0.05, idle_timeout=30).start()
    yield Ingest(server, hubs, idle)
    await server.close()


async def wait_for(condition, timeout: float = 10.0, what: str = "condition"):
    """Poll ``condition()`` until it is true (returns its value) or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def push(url: str, clip: Clip, *, loops: int = 1, close: bool = True) -> RtmpPublisher:
    """Publish ``clip`` as fast as the socket takes it (not real-time: tests stay fast)."""
    publisher = RtmpPublisher(url)
    await publisher.connect()
    publisher.send_configs(clip)
    for kind, packet in clip.loop(loops):
        if kind == "video":
            publisher.send_video(clip.codec, packet)
        else:
            publisher.send_audio(packet)
    await publisher.drain()
    if close:
        await publisher.close()
    return publisher


class Collector:
    """Reads a subscription in the background, keeping every chunk."""

    def __init__(self, sub: Subscription):
        self.sub = sub
        self.chunks: list[bytes] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        async for chunks in self.sub:
            self.chunks.extend(chunks)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


@dataclass
class Probe:
    streams: dict  # kind -> (codec name, width, height)
    video: list  # (dts, pts, keyframe) in decode order
    audio: list
    decoded: int  # video frames the decoder produced


def probe(data: bytes, decode: bool = True) -> Probe:
    """What PyAV reads from fMP4 bytes; decoding every video frame proves they are intact."""
    streams, video, audio, decoded = {}, [], [], 0
    with av.open(io.BytesIO(data)) as container:
        for s in container.streams:
            streams[s.type] = (s.codec_context.name, getattr(s.codec_context, "width", 0),
                               getattr(s.codec_context, "height", 0))
        for packet in container.demux():
            if packet.size == 0:
                continue
            entry = (packet.dts, packet.pts, packet.is_keyframe)
            if packet.stream.type == "video":
                video.append(entry)
                if decode:
                    decoded += len(packet.decode())
            else:
                audio.append(entry)
        if decode and container.streams.video:
            decoded += len(container.streams.video[0].codec_context.decode(None))
    return Probe(streams, video, audio, decoded)


def strictly_increasing(values) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))
