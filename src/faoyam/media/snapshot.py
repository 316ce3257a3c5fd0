"""Snapshots: the latest keyframe of a running stream, as a JPEG, decoded only when asked.

The hub already keeps its current GOP (for late joiners), whose first fragment starts with
the latest keyframe. A snapshot decodes **that one sample** — the codec configuration from
the init segment's track as decoder extradata, the keyframe as the only packet — so nothing
runs while nobody looks, and a snapshot costs one keyframe decode (a few ms at 1080p,
``FACTS.md``) plus the JPEG encode.

Device cards on Home ask for many snapshots at once and again on every refresh, so a result
is kept for ``max_age`` seconds and also as long as the keyframe is the same one; concurrent
requests for the same stream and width share one decode. Decoding runs in a worker thread
(PyAV releases the GIL), never on the event loop.

A stream that is not running has no keyframe: with ``wait`` > 0 the snapshotter subscribes
briefly (so the owner asks the device to push) and takes the first keyframe that arrives.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from faoyam.media.fmp4_parse import parse_fragment
from faoyam.media.hub import StreamHub
from faoyam.media.tracks import Track

log = logging.getLogger(__name__)

DECODERS = {"avc1": "h264", "hvc1": "hevc"}


class SnapshotError(RuntimeError):
    """The keyframe did not decode (a corrupt sample, an unsupported codec)."""


def decode_keyframe(track: Track, sample: bytes, *, width: int | None = None, quality: int = 80) -> bytes:
    """JPEG of one keyframe ``sample`` of ``track``, scaled to ``width`` (aspect kept)."""
    import av

    codec = DECODERS.get(track.codec)
    if codec is None:
        raise SnapshotError(f"no decoder for {track.codec}")
    ctx = av.CodecContext.create(codec, "r")
    ctx.extradata = track.config
    ctx.thread_type = "NONE"  # one frame: threads would only add start-up cost
    try:
        frames = list(ctx.decode(av.Packet(sample))) + list(ctx.decode(None))
    except av.error.FFmpegError as exc:
        raise SnapshotError(f"keyframe does not decode: {exc}") from exc
    if not frames:
        raise SnapshotError("the decoder produced no picture")
    frame = frames[0]
    if width is None or width >= frame.width:
        width, height = frame.width, frame.height
    else:
        height = max(2, round(frame.height * width / frame.width / 2) * 2)
    image = frame.reformat(width=width, height=height, format="rgb24").to_image()
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def latest_keyframe(hub: StreamHub) -> tuple[Track, bytes, object] | None:
    """(video track, keyframe sample, identity) from the hub's current GOP, or None."""
    gop = hub.current_gop
    tracks = hub.muxer.tracks
    if not gop or not tracks:
        return None
    for run in parse_fragment(gop[0].data, tracks):
        if run.video and run.payloads and run.keyframes[0]:
            return tracks[run.track_id - 1], run.payloads[0], gop[0]
    return None


@dataclass
class _Cached:
    made_at: float
    keyframe: object  # the hub fragment it was decoded from
    jpeg: bytes


class Snapshots:
    """Snapshot service of one media worker. ``hub_for(stream)`` gives the stream's hub."""

    def __init__(self, hub_for: Callable[[Hashable], StreamHub | None], *, max_age: float = 1.0,
                 wait: float = 0.0, quality: int = 80, max_cached: int = 512):
        self.hub_for = hub_for
        self.max_age = max_age
        self.wait = wait
        self.quality = quality
        self.max_cached = max_cached
        self.decodes = 0
        self._cache: dict[tuple[Hashable, int | None], _Cached] = {}
        self._inflight: dict[tuple[Hashable, int | None], asyncio.Future] = {}

    async def jpeg(self, stream: Hashable, *, width: int | None = None) -> bytes | None:
        """The latest keyframe of ``stream`` as JPEG, or None if the stream is not running."""
        key = (stream, width)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self._make(stream, width, key)
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody logs it as lost
            raise
        finally:
            del self._inflight[key]

    async def _make(self, stream: Hashable, width: int | None, key) -> bytes | None:
        hub = self.hub_for(stream)
        if hub is None:
            return None
        found = latest_keyframe(hub)
        if found is None and self.wait > 0:
            found = await self._await_keyframe(hub)
        if found is None:
            return None
        track, sample, identity = found
        cached = self._cache.get(key)
        if cached is not None and (cached.keyframe is identity or time.monotonic() - cached.made_at < self.max_age):
            return cached.jpeg
        self.decodes += 1
        jpeg = await asyncio.to_thread(decode_keyframe, track, sample, width=width, quality=self.quality)
        self._cache[key] = _Cached(time.monotonic(), identity, jpeg)
        if len(self._cache) > self.max_cached:  # many streams, or many widths asked: keep the newest
            newest = sorted(self._cache.items(), key=lambda kv: kv[1].made_at)[-self.max_cached // 2:]
            self._cache = dict(newest)
        return jpeg

    async def _await_keyframe(self, hub: StreamHub):
        sub = hub.subscribe()
        try:
            deadline = time.monotonic() + self.wait
            while time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(sub.read(), deadline - time.monotonic())
                except TimeoutError:
                    break
                found = latest_keyframe(hub)
                if found is not None:
                    return found
            return None
        finally:
            sub.close()

    def forget(self, stream: Hashable) -> None:
        """Drop cached snapshots of ``stream`` (its owner revoked access or it ended)."""
        for key in [k for k in self._cache if k[0] == stream]:
            del self._cache[key]
