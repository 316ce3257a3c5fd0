"""Driving a hub from a test clip without the network: for the HLS, snapshot and transcode
tests and the HLS benchmark. Timestamps continue across calls, so a test can prefill a few
seconds at once and then keep the stream running at (a multiple of) real-time rate."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from faoyam.media.hub import StreamHub
from faoyam.media.testvideo import Clip
from faoyam.media.tracks import aac_track, h264_track, h265_track


class ClipFeeder:
    """Configures ``hub`` with the clip's tracks and hands it the clip's samples in order."""

    def __init__(self, hub: StreamHub, clip: Clip, *, audio: bool = True, batch: int = 2):
        self.hub, self.clip, self.batch = hub, clip, batch
        self.audio = audio and bool(clip.audio_config)
        video = (h264_track if clip.codec == "avc1" else h265_track)(clip.config)
        self.tracks = [video] + ([aac_track(clip.audio_config)] if self.audio else [])
        hub.configure(self.tracks)
        self._items = clip.loop(None)
        self.video_sent = 0
        self.sent_at: dict[int, float] = {}  # video dts (90 kHz) -> time.monotonic() handed over
        self.clock_ms = 0  # media time of the next sample

    def feed_ms(self, ms: int) -> None:
        """Every sample of the next ``ms`` milliseconds of media, as fast as possible."""
        end, n = self.clock_ms + ms, 0
        while self.clock_ms < end:
            kind, packet = next(self._items)
            self.clock_ms = packet.dts
            if kind == "audio":
                if self.audio:
                    self.hub.add(1, packet.dts * self.clip.audio_rate // 1000, 0, True, packet.data)
                continue
            self.sent_at[packet.dts * 90] = time.monotonic()
            self.hub.add(0, packet.dts * 90, packet.cts * 90, packet.keyframe, packet.data)
            self.video_sent += 1
            n += 1
            if n % self.batch == 0:
                self.hub.flush()
        self.hub.flush()

    async def run(self, speed: float = 1.0, tick_ms: int = 40) -> None:
        """Keep feeding at ``speed`` × real time until cancelled."""
        start, start_clock = time.monotonic(), self.clock_ms
        while True:
            due = start_clock + (time.monotonic() - start) * 1000 * speed
            if due > self.clock_ms:
                self.feed_ms(int(due - self.clock_ms) or 1)
            await asyncio.sleep(tick_ms / 1000)


@contextlib.asynccontextmanager
async def feeding(hub: StreamHub, clip: Clip, *, prefill_ms: int = 0, speed: float = 1.0,
                  audio: bool = True) -> AsyncIterator[ClipFeeder]:
    """A camera pushing ``clip`` into ``hub`` while the block runs: ``prefill_ms`` of media at
    once (a viewer joining finds a GOP), then ``speed`` × real time until the block ends."""
    feeder = ClipFeeder(hub, clip, audio=audio)
    if prefill_ms:
        feeder.feed_ms(prefill_ms)
    task = asyncio.create_task(feeder.run(speed=speed))
    try:
        yield feeder
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
