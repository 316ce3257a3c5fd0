"""A test clip into a hub, and a look at the fMP4 a viewer got — for tests and benchmarks.

:func:`feed` and :func:`feed_realtime` drive a :class:`~faoyam.media.hub.StreamHub` the way an
ingest session does (configure the tracks, add samples, flush after each batch), without a
network in between, so a test of the viewer side measures the viewer side.
:func:`fragments` reads the ``moof`` boxes of received bytes (track, first decode time,
sample count) without a demuxer, cheaply enough to run on every message a benchmark gets.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from faoyam.media.hub import StreamHub
from faoyam.media.testvideo import Clip
from faoyam.media.tracks import VIDEO_TIMESCALE, Track, aac_track, h264_track, h265_track


def clip_tracks(clip: Clip, audio: bool = True) -> list[Track]:
    video = (h264_track if clip.codec == "avc1" else h265_track)(clip.config)
    return [video] + ([aac_track(clip.audio_config)] if audio and clip.audio_config else [])


def _add(hub: StreamHub, clip: Clip, kind: str, packet, shift_ms: int) -> None:
    if kind == "audio":
        hub.add(1, (packet.dts + shift_ms) * clip.audio_rate // 1000, 0, True, packet.data)
    else:
        hub.add(0, (packet.dts + shift_ms) * 90, packet.cts * 90, packet.keyframe, packet.data)


def feed(hub: StreamHub, clip: Clip, *, loops: int = 1, audio: bool = True, batch: int = 3, shift_ms: int = 0) -> int:
    """Everything at once (as fast as the hub takes it); returns the video frames added."""
    hub.configure(clip_tracks(clip, audio))
    n = frames = 0
    for kind, packet in clip.loop(loops):
        if kind == "audio" and not audio:
            continue
        _add(hub, clip, kind, packet, shift_ms)
        frames += kind == "video"
        n += 1
        if n % batch == 0:
            hub.flush()
    hub.flush()
    return frames


async def feed_realtime(hub: StreamHub, clip: Clip, *, loops: int | None = None, audio: bool = True,
                        on_frame: Callable[[int, float], None] | None = None, shift_ms: int = 0) -> int:
    """At the clip's own pace, one fragment per video frame (a camera's send rhythm).
    ``on_frame(dts_ms, wall_time)`` is called as each video frame is handed to the hub —
    the "device send" instant of a latency measurement. Returns the video frames added."""
    hub.configure(clip_tracks(clip, audio))
    start, frames = time.perf_counter(), 0
    for kind, packet in clip.loop(loops):
        if kind == "audio" and not audio:
            continue
        delay = start + packet.dts / 1000 - time.perf_counter()
        if delay > 0:
            hub.flush()
            await asyncio.sleep(delay)
        _add(hub, clip, kind, packet, shift_ms)
        if kind == "video":
            frames += 1
            if on_frame is not None:
                on_frame(packet.dts + shift_ms, time.perf_counter())
    hub.flush()
    return frames


@dataclass(frozen=True, slots=True)
class TrackFragment:
    """One ``traf`` of a received ``moof``: decode time in the track's timescale."""

    track_id: int
    base_dts: int
    samples: int

    @property
    def video_ms(self) -> float:
        return self.base_dts * 1000 / VIDEO_TIMESCALE


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    pos, end = start, len(data) if end is None else end
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
        if size < 8 or pos + size > end:
            return
        yield kind, pos + 8, pos + size
        pos += size


def fragments(data: bytes) -> list[TrackFragment]:
    """Every track run in the ``moof`` boxes of ``data`` (init segments are skipped)."""
    out = []
    for kind, body, end in _boxes(data):
        if kind != b"moof":
            continue
        for tkind, tbody, tend in _boxes(data, body, end):
            if tkind != b"traf":
                continue
            track_id = base = samples = 0
            for bkind, bbody, _ in _boxes(data, tbody, tend):
                if bkind == b"tfhd":
                    track_id = struct.unpack_from(">I", data, bbody + 4)[0]
                elif bkind == b"tfdt":
                    version = data[bbody]
                    base = struct.unpack_from(">Q" if version else ">I", data, bbody + 4)[0]
                elif bkind == b"trun":
                    samples += struct.unpack_from(">I", data, bbody + 4)[0]
            out.append(TrackFragment(track_id, base, samples))
    return out
