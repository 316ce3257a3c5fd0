"""Fixtures of the motion-detection tests: simulator clips with known motion intervals (the
ground truth), and a way to run a detector over a looped clip as fast as it decodes."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from faoyam.media.hub import StreamHub
from faoyam.media.motion_decode import ChannelDetector, MotionEvent
from faoyam.media.testfeed import feed
from faoyam.media.testvideo import cached_clip

# Four motion intervals in a 30 s loop, at least 4 s apart (longer than the debouncing
# hold), one as short as a GOP and a half would allow to miss: 2 s with keyframes every 1 s.
MOTION = ((3.0, 6.0), (11.0, 13.0), (18.0, 22.0), (26.0, 28.0))


@pytest.fixture(scope="session", autouse=True)
def _clip_cache(tmp_path_factory):
    os.environ.setdefault("FAOYAM_MEDIA_CACHE", str(tmp_path_factory.mktemp("media-cache")))


def motion_clip(motion=MOTION, **kw):
    params = dict(width=320, height=180, seconds=30.0, gop_seconds=1.0, bitrate=400_000, preset="ultrafast",
                  motion=motion)
    params.update(kw)
    return cached_clip(**params)


@pytest.fixture(scope="session")
def clip(_clip_cache):
    """30 s of 320×180 H.264, a keyframe every second, the box moving during ``MOTION``."""
    return motion_clip()


@pytest.fixture(scope="session")
def static_clip(_clip_cache):
    """The same scene with nobody in it: noise and encoder artefacts only."""
    return motion_clip(motion=())


async def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def detect(clip, *, loops: int = 2, **options) -> tuple[list[MotionEvent], ChannelDetector]:
    """Run a detector over ``loops`` of ``clip`` (fed as fast as it takes it, a loop at a
    time so the subscription never overflows) and return its episodes."""
    hub = StreamHub("test")
    events: list[MotionEvent] = []

    async def on_event(event: MotionEvent) -> None:
        events.append(event)

    det = ChannelDetector(hub, on_event, batch_s=0, **options).start()
    for i in range(loops):
        feed(hub, clip, loops=1, shift_ms=i * clip.duration_ms, audio=False)
        await wait_for(lambda: not det._sub._queue, what="the detector read the loop")
        await asyncio.sleep(0)  # its batch is in its thread: let it finish
        samples = det.samples
        await wait_for(lambda: det.analyzer.last_t is not None and det.analyzer.last_t >= (i + 1) * clip.duration_ms
                       / 1000 - 1.5, what=f"the detector analysed loop {i} ({samples} samples)")
    await det.stop()
    return events, det
