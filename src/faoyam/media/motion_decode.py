"""One channel stream's motion detector: a hub subscription → small grey pictures → episodes.

What is decoded is the whole cost of motion detection, so a detector decodes only this
(measured in ``bench/bench_motion.py``, chosen in ``docs/decisions/motion-detection.md``):

* ``keyframes`` (the default, for a ``main`` stream): the subscription is *keyframes only*
  (:meth:`~faoyam.media.hub.StreamHub.subscribe`) — the hub never even queues the other
  fragments, so the detector wakes once per GOP — and only each fragment's first sample,
  the keyframe, is decoded (an IDR picture needs no other). One picture per GOP (1–2 s on
  cameras).
* ``frames`` (for a ``sub`` stream): every frame of the small stream is decoded (P-frames
  need their predecessors), but only ``fps`` pictures a second are scaled and analysed.
  Never use it on a full-rate main stream.

Each analysed picture is scaled once, with area averaging, to grey ``ANALYSIS_WIDTH`` wide
(64×36 for 16:9) through a reused ``VideoReformatter`` (FACTS.md: a fresh one per frame
costs more than the decode). Decoding runs in a worker thread, a batch at a time, never on
the event loop. When an episode ends, the decoded frame of its peak is encoded as a JPEG
(``snapshot_width`` wide) and the episode handed to ``on_event``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass

from faoyam.media.fmp4_parse import FragmentError, is_init, parse_fragment
from faoyam.media.hub import StreamHub, Subscription
from faoyam.media.motion import ANALYSIS_WIDTH, Episode, MotionAnalyzer
from faoyam.media.snapshot import DECODERS
from faoyam.media.tracks import Track

log = logging.getLogger("faoyam.media.motion")

MODES = ("keyframes", "frames")
FRAMES_FPS = 5.0
BATCH_SECONDS = 0.5  # ``frames`` mode reads its subscription at most this often
QUEUE_BYTES = 8 << 20
SNAPSHOT_WIDTH = 640


@dataclass(frozen=True)
class MotionEvent:
    """What a detector reports: one episode of one stream."""

    stream: Hashable  # the hub's stream id (a ChannelId)
    started_at: dt.datetime  # wall clock, UTC
    ended_at: dt.datetime
    start: float  # media time, s (the stream's own timeline)
    end: float
    peak: float  # share of the zone that changed at the peak
    snapshot: bytes | None  # JPEG of the peak picture
    pictures: int  # analysed pictures that triggered


OnEvent = Callable[[MotionEvent], Awaitable[None]]


def jpeg_of(frame, width: int = SNAPSHOT_WIDTH, quality: int = 80) -> bytes | None:
    """JPEG of a decoded frame, scaled down to ``width`` (aspect kept)."""
    if frame is None:
        return None
    if width >= frame.width:
        width, height = frame.width, frame.height
    else:
        height = max(2, round(frame.height * width / frame.width / 2) * 2)
    out = io.BytesIO()
    frame.reformat(width=width, height=height, format="rgb24").to_image().save(out, format="JPEG", quality=quality)
    return out.getvalue()


class _Decoder:
    """The PyAV side, used from one worker thread at a time."""

    def __init__(self, track: Track, mode: str, fps: float):
        import av
        from av.video.reformatter import Interpolation, VideoReformatter

        self.track, self.mode, self.step = track, mode, 1.0 / fps
        codec = DECODERS.get(track.codec)
        if codec is None:
            raise FragmentError(f"no decoder for {track.codec}")
        self.ctx = av.CodecContext.create(codec, "r")
        self.ctx.extradata = track.config
        self.ctx.thread_type = "NONE"  # one core's worth per camera; frame threads only add delay
        if mode == "keyframes":
            self.ctx.skip_frame = "NONKEY"
        self._packet = av.Packet
        self._reformatter = VideoReformatter()
        self._area = Interpolation.AREA
        self._next_t = None
        self.decoded = 0
        self.errors = 0

    def pictures(self, samples: list[tuple[int, int, bytes]]) -> list[tuple[float, object, object]]:
        """[(media time, grey ndarray, frame)] for the samples worth analysing. A sample is
        ``(pts, dts, bytes)`` in the track's timescale; the time of a picture is its frame's
        presentation time, so a decoder that holds a frame back (B-frames) still dates it right."""
        out = []
        scale = self.track.timescale
        for pts, dts, data in samples:
            packet = self._packet(data)
            packet.pts, packet.dts = pts, dts
            try:
                frames = self.ctx.decode(packet)
                if not frames and self.mode == "keyframes":
                    # With B-frames the decoder holds the picture back for reordering; a
                    # keyframe has no later frames to wait for: drain it, and start afresh.
                    frames = self.ctx.decode(None)
                    self.ctx.flush_buffers()
            except Exception:  # noqa: BLE001 - a corrupt sample: the next keyframe recovers
                self.errors += 1
                continue
            for frame in frames:
                self.decoded += 1
                t = (frame.pts if frame.pts is not None else pts) / scale
                if self.mode == "frames":
                    if self._next_t is not None and t < self._next_t:
                        continue
                    self._next_t = t + self.step if self._next_t is None or t - self._next_t > self.step \
                        else self._next_t + self.step
                width = ANALYSIS_WIDTH
                height = max(2, round(frame.height * width / frame.width))
                grey = self._reformatter.reformat(frame, width=width, height=height, format="gray",
                                                  interpolation=self._area).to_ndarray()
                out.append((t, grey, frame))
        return out


class ChannelDetector:
    """Detects motion on one hub until :meth:`stop` (see the module docstring)."""

    def __init__(self, hub: StreamHub, on_event: OnEvent, *, mode: str = "keyframes", sensitivity: int = 50,
                 zones=None, fps: float = FRAMES_FPS, batch_s: float = BATCH_SECONDS,
                 snapshot_width: int = SNAPSHOT_WIDTH, clock: Callable[[], float] = time.time, **analyzer):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.hub, self.on_event, self.mode, self.fps = hub, on_event, mode, fps
        self.batch_s, self.snapshot_width, self.clock = batch_s, snapshot_width, clock
        self.analyzer = MotionAnalyzer(sensitivity, zones, **analyzer)
        self.track: Track | None = None
        self._decoder: _Decoder | None = None
        self._sub: Subscription | None = None
        self.task: asyncio.Task | None = None
        self.events = 0
        self.samples = 0  # samples handed to the decoder
        self._pending: list[Episode] = []  # episodes that ended in the batch being processed

    @property
    def decoded(self) -> int:
        return self._decoder.decoded if self._decoder is not None else 0

    def configure(self, sensitivity: int, zones) -> None:
        self.analyzer.configure(sensitivity, zones)

    def start(self) -> ChannelDetector:
        # background: an alarm goes out when its episode ends, seconds later; 400 ms more
        # batching costs it nothing and lets ingest read an unwatched stream more cheaply
        self._sub = self.hub.subscribe(queue_bytes=QUEUE_BYTES, max_lags=1 << 30, background=True,
                                       keyframes_only=self.mode == "keyframes")
        self.task = asyncio.create_task(self._run(), name=f"motion:{self.hub.stream}")
        return self

    async def stop(self, timeout: float = 10.0) -> None:
        """Leave the hub; the batch being analysed is finished and its episodes reported
        (within ``timeout``), then the episode in progress is reported too."""
        if self._sub is not None:
            self._sub.close()
        if self.task is not None:
            await asyncio.wait({self.task}, timeout=timeout)  # never raises: the task's end is its own
            if not self.task.done():
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self.task
        ep = self.analyzer.close()
        if ep is not None:
            await self._report(ep)

    async def _run(self) -> None:
        sub = self._sub
        try:
            while True:
                try:
                    chunks = await asyncio.wait_for(sub.read(), self.analyzer.hold + 1.0)
                except TimeoutError:
                    # Nothing came (the camera went away): an episode in progress ends.
                    if self.analyzer.last_t is not None:
                        ep = self.analyzer.tick(self.analyzer.last_t + self.analyzer.hold + 1.0)
                        if ep is not None:
                            await self._report(ep)
                    continue
                if not chunks:
                    break
                await self._process(chunks)
                if self.mode == "frames" and self.batch_s:
                    await asyncio.sleep(self.batch_s)  # gather a batch: one wake-up, one thread hop
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("motion: %s: stopped by an error", self.hub.stream)

    def _configure(self, init: bytes) -> None:
        tracks = self.hub.muxer.tracks if self.hub.muxer.init is init else ()
        video = next((t for t in tracks if t.kind == "video"), None)
        self.track, self._decoder = video, None
        ep = self.analyzer.close()  # a new resolution: learn the background again
        if ep is not None:
            self._pending.append(ep)

    async def _process(self, chunks: list[bytes]) -> None:
        self._pending = []
        samples: list[tuple[int, int, bytes]] = []
        for chunk in chunks:
            if is_init(chunk):
                await self._decode(samples)
                samples = []
                self._configure(chunk)
                continue
            if self.track is None:
                continue
            try:
                runs = parse_fragment(chunk, self.hub.muxer.tracks)
            except FragmentError:
                continue
            for run in runs:
                if not run.video:
                    continue
                dts = run.base_dts
                for duration, cts, key, payload in zip(run.durations, run.cts_offsets, run.keyframes, run.payloads):
                    if self.mode == "frames" or key:
                        samples.append((dts + cts, dts, bytes(payload)))
                    dts += duration
                    if self.mode == "keyframes":
                        break  # the rest of a keyframe fragment is P-frames
        await self._decode(samples)
        for ep in self._pending:
            await self._report(ep)

    async def _decode(self, samples: list[tuple[int, int, bytes]]) -> None:
        if not samples or self.track is None:
            return
        if self._decoder is None:
            try:
                self._decoder = _Decoder(self.track, self.mode, self.fps)
            except FragmentError:
                log.warning("motion: %s: cannot decode %s", self.hub.stream, self.track.codec)
                self.track = None
                return
        self.samples += len(samples)
        pictures = await asyncio.to_thread(self._decoder.pictures, samples)
        now = self.clock()
        latest = samples[-1][0] / self.track.timescale
        for t, grey, frame in pictures:
            ep = self.analyzer.feed(t, grey, frame, wall=now - (latest - t))
            if ep is not None:
                self._pending.append(ep)

    async def _report(self, ep: Episode) -> None:
        frame, ep.peak_frame = ep.peak_frame, None
        try:
            jpeg = await asyncio.to_thread(jpeg_of, frame, self.snapshot_width)
        except Exception:  # noqa: BLE001 - an alarm without its picture beats no alarm
            log.exception("motion: %s: snapshot failed", self.hub.stream)
            jpeg = None
        started = ep.started_wall or self.clock()
        event = MotionEvent(self.hub.stream, dt.datetime.fromtimestamp(started, dt.UTC),
                            dt.datetime.fromtimestamp(started + (ep.end - ep.start), dt.UTC),
                            ep.start, ep.end, ep.peak, jpeg, ep.pictures)
        self.events += 1
        try:
            await self.on_event(event)
        except Exception:  # noqa: BLE001 - a failing consumer never stops detection
            log.exception("motion: %s: the episode callback failed", self.hub.stream)
