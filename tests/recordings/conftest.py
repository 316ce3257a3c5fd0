"""Fixtures of the recording tests: an account with a bound camera, test clips, a recorder
on the test's blob store (local directory or SeaweedFS), and a PyAV check of segments."""

from __future__ import annotations

import asyncio
import io
import os
import time
from dataclasses import dataclass

import av
import pytest
import pytest_asyncio

from faoyam.accounts import service as accounts
from faoyam.accounts.schemas import Terminal
from faoyam.core.database import new_id, utcnow
from faoyam.devices.models import Channel, Device
from faoyam.media.hub import StreamHubs
from faoyam.media.ids import ChannelId
from faoyam.media.recorder import Recorder
from faoyam.media.testvideo import cached_clip


@pytest.fixture(scope="session", autouse=True)
def _clip_cache(tmp_path_factory):
    os.environ.setdefault("FAOYAM_MEDIA_CACHE", str(tmp_path_factory.mktemp("media-cache")))


@pytest.fixture(scope="session")
def clip(_clip_cache):
    """2 s of 320×240 H.264 (B-frames) with AAC, a keyframe every second."""
    return cached_clip(audio=True, bframes=2, seconds=2.0, gop_seconds=1.0)


@pytest.fixture(scope="session")
def clip_h265(_clip_cache):
    return cached_clip(codec="h265", seconds=2.0, gop_seconds=1.0, width=352, height=288)


@dataclass
class Owned:
    user_id: str
    device_id: str

    def channel(self, index: int = 0, stream: str = "main") -> ChannelId:
        return ChannelId(self.device_id, index, stream)


async def make_owned(ctx, channels: int = 1) -> Owned:
    """An account and a camera bound to it, written the short way (no API round trips)."""
    new = await accounts.create_external_account(
        ctx, provider="test", external_subject=f"rec-{new_id()}", nickname="Recorder test", photo=None,
        country="TH", language="en", age_confirmed=True, terminal=Terminal(), ip="127.0.0.1")
    device_id = new_id()
    async with ctx.db.transaction() as s:
        s.add(Device(id=device_id, serial_hash=new_id() * 2, kind="camera", model="FY-CAM-1", safety_code_hash="x",
                     factory_secret_hash="y", owner_id=new.user_id, serial=f"FY{device_id[:8]}", bound_at=utcnow()))
        await s.flush()
        for i in range(channels):
            s.add(Channel(device_id=device_id, index=i))
    return Owned(new.user_id, device_id)


@pytest_asyncio.fixture
async def owned(ctx) -> Owned:
    return await make_owned(ctx)


class ManualClock:
    """A wall clock the test moves: gaps without waiting for them."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def recorder(ctx, clock, tmp_path):
    demand: list = []
    hubs = StreamHubs(on_demand=demand.append)
    statuses: list = []
    rec = Recorder(ctx.db, ctx.blobs, hubs, tmp_path / "spool", backend=ctx.settings.blob_backend, segment_s=3.0,
                   flush_s=0.2, clock=clock, retry_s=0.2, max_pending=8, on_status=lambda ch, st: statuses.append((ch, st)))
    rec.demand, rec.statuses = demand, statuses  # what the test looks at
    yield rec
    await rec.close(drain_timeout=10)


async def wait_for(condition, timeout: float = 20.0, what: str = "condition", state=None):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}" + (f": {state()}" if state else ""))
        await asyncio.sleep(0.02)


@dataclass
class Decoded:
    codec: str
    width: int
    height: int
    frames: int  # video frames decoded
    dts: list  # video decode times, seconds
    packets: int


def decode(data: bytes) -> Decoded:
    """Decode every video frame of a segment with PyAV (FFmpeg)."""
    frames, dts, packets = 0, [], 0
    with av.open(io.BytesIO(data)) as container:
        vs = container.streams.video[0]
        codec, width, height = vs.codec_context.name, vs.codec_context.width, vs.codec_context.height
        for packet in container.demux(vs):
            if packet.size == 0:
                continue
            packets += 1
            dts.append(float(packet.dts * packet.time_base))
            frames += len(packet.decode())
        frames += len(vs.codec_context.decode(None))
    return Decoded(codec, width, height, frames, dts, packets)


def increasing(values) -> bool:
    return all(b > a for a, b in zip(values, values[1:]))
