"""LL-HLS from a stream hub: segments that start at keyframes, made of short parts.

For clients that want an HLS URL (Safari, iOS, smart TVs, the Imou-compatible API) rather
than the WebSocket/MSE path. It follows the Low-Latency extension of HLS (RFC 8216bis,
"draft-pantos-hls-rfc8216bis", §4.4.3.7–4.4.5.3 and §6.2.5):

* one **init segment** per codec configuration (``EXT-X-MAP``; a change of codec or picture
  size starts a new one behind ``EXT-X-DISCONTINUITY``);
* **segments**, each starting at a video keyframe (so ``EXT-X-INDEPENDENT-SEGMENTS``), kept in
  a sliding window;
* each segment cut into **parts** of at most ``part_target`` seconds (``EXT-X-PART``, one
  ``moof``+``mdat`` each, ``INDEPENDENT=YES`` on the part that starts with the keyframe), with
  the next part announced by ``EXT-X-PRELOAD-HINT`` so a client can request it before it
  exists and get it the moment it does;
* **blocking playlist reload** (``_HLS_msn``/``_HLS_part``): the request is held until the
  playlist contains that part (``CAN-BLOCK-RELOAD=YES``), or answered 503 after three
  target durations;
* the same segments as a **plain** playlist (no part tags) for old clients.

The hub's fragments are cut at *its* rhythm (one per ingest read batch, or one per GOP for a
bursty publisher), so the segmenter does not pass them through: it parses each fragment
(:mod:`~faoyam.media.fmp4_parse`) and re-cuts at sample boundaries, a part closing as soon
as the next sample would not fit into ``part_target``. That is one parse and one copy of the
stream's bytes per stream, not per viewer: every HLS client of a stream reads the same parts.

:class:`HlsStream` consumes one hub subscription; :class:`HlsOutputs` makes one per stream on
demand and stops it when no HLS client has asked for ``idle_timeout`` seconds. The HTTP side
is in :mod:`faoyam.media.hls_routes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from faoyam.media.fmp4 import TrackRun, media_fragment
from faoyam.media.fmp4_parse import FragmentError, is_init, parse_fragment
from faoyam.media.hub import StreamHub, Subscription
from faoyam.media.tracks import Track

log = logging.getLogger(__name__)

DEFAULT_PART_TARGET = 0.3  # seconds: 7 frames at 25 fps, 3 at 10 fps
DEFAULT_WINDOW = 6  # segments listed in the playlist
AUDIO_SEGMENT_SECONDS = 2.0  # an audio-only stream has no keyframes to cut at
RETAINED_AFTER_WINDOW = 2  # segments still served after they left the playlist (RFC 8216bis 6.2.2)
HLS_QUEUE_BYTES = 32 << 20  # the segmenter reads continuously; this only guards a stalled loop


@dataclass(slots=True)
class Part:
    data: bytes
    duration: float  # seconds of the lead (video) track
    independent: bool
    ready_at: float  # time.monotonic() when it became available (for the benchmark)


@dataclass
class Segment:
    msn: int
    init_id: int
    discontinuity: bool  # a new init segment (codec change) starts here
    parts: list[Part] = field(default_factory=list)
    complete: bool = False

    @property
    def duration(self) -> float:
        return sum(p.duration for p in self.parts)

    @property
    def data(self) -> bytes:
        return b"".join(p.data for p in self.parts)


class _Pending:
    """Samples of one track for the part being filled."""

    __slots__ = ("dts", "durations", "cts", "keys", "payloads")

    def __init__(self) -> None:
        self.dts: list[int] = []
        self.durations: list[int] = []
        self.cts: list[int] = []
        self.keys: list[bool] = []
        self.payloads: list[bytes] = []


class HlsSegmenter:
    """Init segments and fragments in, segments and parts out (no I/O, no event loop needed
    except for :meth:`wait`)."""

    def __init__(self, *, part_target: float = DEFAULT_PART_TARGET, window: int = DEFAULT_WINDOW,
                 min_target_duration: int = 1):
        self.part_target = part_target
        self.window = window
        self.target_duration = min_target_duration  # only ever grows (RFC 8216bis 4.4.3.1)
        self.tracks: tuple[Track, ...] = ()
        self.inits: dict[int, bytes] = {}
        self.init_id = 0
        self.segments: deque[Segment] = deque()
        self.current: Segment | None = None
        self.next_msn = 0
        self.discontinuity_sequence = 0
        self._lead = 0  # index of the track whose samples time the parts (video, else the first)
        self._pending: list[_Pending] = []
        self._pending_duration = 0  # lead-track timescale units
        self._sequence = 0
        self._changed = asyncio.Event()
        self.bytes_in = 0

    # -- input --
    def on_init(self, init: bytes, tracks: tuple[Track, ...]) -> None:
        """A (new) init segment: the segment in progress ends, the next one is a discontinuity."""
        if tracks == self.tracks and self.init_id:
            return
        self._finish_segment()
        self.tracks = tracks
        self.init_id += 1
        self.inits[self.init_id] = init
        self._lead = next((i for i, t in enumerate(tracks) if t.kind == "video"), 0)
        self._pending = [_Pending() for _ in tracks]
        self._pending_duration = 0
        # keep only the init segments still referenced
        live = {s.init_id for s in self.segments} | {self.init_id}
        self.inits = {k: v for k, v in self.inits.items() if k in live}

    def on_fragment(self, data: bytes) -> None:
        """One hub fragment: its samples join the current part, closing parts and segments
        at the boundaries they cross."""
        if not self.tracks:
            return
        self.bytes_in += len(data)
        try:
            runs = parse_fragment(data, self.tracks)
        except (FragmentError, ValueError) as exc:  # never let one bad fragment end the stream
            log.warning("hls: unreadable fragment skipped: %s", exc)
            return
        samples = []  # (seconds, track index, dts, duration, cts, key, payload)
        for run in runs:
            index = run.track_id - 1
            if not 0 <= index < len(self.tracks):
                continue
            scale = self.tracks[index].timescale
            dts = run.base_dts
            for duration, cts, key, payload in zip(run.durations, run.cts_offsets, run.keyframes, run.payloads):
                samples.append((dts / scale, index, dts, duration, cts, key, payload))
                dts += duration
        samples.sort(key=lambda s: (s[0], s[1] != self._lead))
        lead_video = self.tracks[self._lead].kind == "video"
        changed = False
        for _, index, dts, duration, cts, key, payload in samples:
            if index == self._lead:
                if (key and lead_video) or self.current is None or (
                        not lead_video and self.current.duration >= AUDIO_SEGMENT_SECONDS):
                    if lead_video and not key:
                        continue  # a segment must start with a keyframe: wait for one
                    changed |= self._finish_segment()
                    self._start_segment()
                elif self._pending_duration + duration > self._part_target_units():
                    changed |= self._close_part()
            elif self.current is None:
                continue  # audio before the first keyframe has no segment to go in
            pending = self._pending[index]
            pending.dts.append(dts)
            pending.durations.append(duration)
            pending.cts.append(cts)
            pending.keys.append(key)
            pending.payloads.append(payload)
            if index == self._lead:
                self._pending_duration += duration
                # close eagerly: if a further sample of this length would not fit, this part is
                # done now (rather than when the next sample arrives, a frame later)
                if self._pending_duration + duration > self._part_target_units():
                    changed |= self._close_part()
        if changed:
            self._notify()

    def close(self) -> None:
        """The input ended: what is pending becomes the last part of the last segment."""
        if self._finish_segment():
            self._notify()

    # -- cutting --
    def _part_target_units(self) -> int:
        return int(self.part_target * self.tracks[self._lead].timescale + 0.5)

    def _start_segment(self) -> None:
        discontinuity = bool(self.segments) and self.segments[-1].init_id != self.init_id
        self.current = Segment(self.next_msn, self.init_id, discontinuity)
        self.next_msn += 1

    def _close_part(self) -> bool:
        if self.current is None or not self._pending[self._lead].payloads:
            return False
        runs = []
        for i, pending in enumerate(self._pending):
            if pending.payloads:
                runs.append(TrackRun(i + 1, self.tracks[i].kind == "video", pending.dts[0], pending.durations,
                                     pending.cts, pending.keys, pending.payloads))
        lead = self._pending[self._lead]
        self._sequence += 1
        part = Part(media_fragment(self._sequence, runs),
                    self._pending_duration / self.tracks[self._lead].timescale,
                    bool(lead.keys[0]), time.monotonic())
        self.current.parts.append(part)
        self._pending = [_Pending() for _ in self.tracks]
        self._pending_duration = 0
        return True

    def _finish_segment(self) -> bool:
        """Close the segment in progress (with its pending samples); True if anything changed."""
        if self.current is None:
            return False
        self._close_part()
        segment, self.current = self.current, None
        if not segment.parts:
            return False
        segment.complete = True
        self.segments.append(segment)
        self.target_duration = max(self.target_duration, math.ceil(segment.duration - 1e-3))
        while len(self.segments) > self.window + RETAINED_AFTER_WINDOW:
            self.discontinuity_sequence += self.segments.popleft().discontinuity
        return True

    # -- what the playlist shows --
    @property
    def listed(self) -> list[Segment]:
        """The complete segments in the playlist (the sliding window)."""
        return list(self.segments)[-self.window:]

    def segment(self, msn: int) -> Segment | None:
        if self.current is not None and self.current.msn == msn:
            return self.current
        for s in self.segments:
            if s.msn == msn:
                return s
        return None

    def has_part(self, msn: int, part: int | None) -> bool:
        """Whether the playlist contains segment ``msn`` (complete, if ``part`` is None) or
        its part ``part`` — the condition a blocking reload waits for."""
        last_complete = self.segments[-1].msn if self.segments else -1
        if msn <= last_complete:
            return True
        if part is None or self.current is None:
            return False
        return self.current.msn > msn or (self.current.msn == msn and len(self.current.parts) > part)

    @property
    def last_msn(self) -> int:
        """The newest segment in the playlist, complete or not (-1 before the first)."""
        if self.current is not None:
            return self.current.msn
        return self.segments[-1].msn if self.segments else -1

    def render(self, *, low_latency: bool = True) -> str:
        """The media playlist; ``low_latency=False`` gives plain HLS (whole segments only)."""
        listed = self.listed
        shown = listed + ([self.current] if low_latency and self.current is not None and self.current.parts else [])
        first = shown[0] if shown else None
        # discontinuities that scrolled out of the window still count (RFC 8216bis 4.4.3.3)
        retained = list(self.segments)[:-self.window] if len(self.segments) > self.window else []
        discontinuity_sequence = self.discontinuity_sequence + sum(s.discontinuity for s in retained)
        lines = ["#EXTM3U", "#EXT-X-VERSION:6", f"#EXT-X-TARGETDURATION:{self.target_duration}"]
        if low_latency:
            lines += [f"#EXT-X-PART-INF:PART-TARGET={self.part_target:.3f}",
                      f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={3 * self.part_target:.3f}"]
        lines += [f"#EXT-X-MEDIA-SEQUENCE:{first.msn if first else self.next_msn}",
                  f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}",
                  "#EXT-X-INDEPENDENT-SEGMENTS"]
        # parts are listed for the segments within three target durations of the live edge
        with_parts, age = set(), 0.0
        for s in reversed(shown):
            if age >= 3 * self.target_duration:
                break
            with_parts.add(s.msn)
            age += s.duration
        init_id = None
        for s in shown:
            if s.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            if s.init_id != init_id:
                lines.append(f'#EXT-X-MAP:URI="init/{s.init_id}.mp4"')
                init_id = s.init_id
            if low_latency and s.msn in with_parts:
                for i, p in enumerate(s.parts):
                    independent = ",INDEPENDENT=YES" if p.independent else ""
                    lines.append(f'#EXT-X-PART:DURATION={p.duration:.5f},URI="part/{s.msn}.{i}.m4s"{independent}')
            if s.complete:
                lines += [f"#EXTINF:{s.duration:.5f},", f"segment/{s.msn}.m4s"]
        if low_latency and self.current is not None:
            if self.current.init_id != init_id:  # a new segment with no part yet, after a codec change
                if self.current.discontinuity:
                    lines.append("#EXT-X-DISCONTINUITY")
                lines.append(f'#EXT-X-MAP:URI="init/{self.current.init_id}.mp4"')
            lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="part/{self.current.msn}.{len(self.current.parts)}.m4s"')
        return "\n".join(lines) + "\n"

    def bandwidth(self) -> int:
        """Peak bits per second over the listed segments (``BANDWIDTH`` of the master playlist)."""
        rates = [len(s.data) * 8 / s.duration for s in self.listed if s.duration > 0]
        if not rates and self.current is not None and self.current.duration > 0:
            rates = [len(self.current.data) * 8 / self.current.duration]
        return int(max(rates, default=1_000_000) * 1.1)

    # -- waiting for the live edge --
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``condition()`` holds (checked after every change); False on timeout."""
        deadline = time.monotonic() + timeout
        while not condition():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                return condition()
        return True


class HlsStream:
    """One stream's HLS output: a hub subscription read by a task into an :class:`HlsSegmenter`."""

    def __init__(self, hub: StreamHub, *, part_target: float = DEFAULT_PART_TARGET,
                 window: int = DEFAULT_WINDOW, on_end: Callable[[HlsStream], None] | None = None):
        self.hub = hub
        self.segmenter = HlsSegmenter(part_target=part_target, window=window)
        self.last_request = time.monotonic()
        self.requests = 0  # being answered now (a blocking reload may wait seconds)
        self._on_end = on_end
        self.sub: Subscription = hub.subscribe(queue_bytes=HLS_QUEUE_BYTES, max_lags=1_000_000)
        self.task = asyncio.create_task(self._run(), name=f"hls {hub.stream}")

    def touch(self) -> None:
        self.last_request = time.monotonic()

    @contextlib.contextmanager
    def in_use(self):
        """Around a request: an output is never idle while a client waits on it (the first
        request of a stream waits for its first segment, a blocking reload for its part)."""
        self.requests += 1
        try:
            yield self
        finally:
            self.requests -= 1
            self.touch()

    async def _run(self) -> None:
        lags = 0
        try:
            async for chunks in self.sub:
                if self.sub.lags != lags:  # the loop stalled and the hub skipped to a keyframe
                    lags = self.sub.lags
                    self.segmenter.close()
                for chunk in chunks:
                    if is_init(chunk):
                        self.segmenter.on_init(chunk, self.sub.tracks)
                    else:
                        self.segmenter.on_fragment(chunk)
        finally:
            self.segmenter.close()
            if self._on_end is not None:
                self._on_end(self)

    def close(self) -> None:
        self.sub.close()


class HlsOutputs:
    """The HLS outputs of one media worker, one per stream, made when a client asks.

    ``hub_for(stream)`` returns the stream's hub (typically ``StreamHubs.hub``); an output
    subscribes to it — so the device is asked to push — and unsubscribes once no HLS request
    came for ``idle_timeout`` seconds.
    """

    def __init__(self, hub_for: Callable[[Hashable], StreamHub], *, part_target: float = DEFAULT_PART_TARGET,
                 window: int = DEFAULT_WINDOW, idle_timeout: float = 30.0):
        self.hub_for = hub_for
        self.part_target = part_target
        self.window = window
        self.idle_timeout = idle_timeout
        self.streams: dict[Hashable, HlsStream] = {}
        self._reaper: asyncio.Task | None = None

    def get(self, stream: Hashable) -> HlsStream:
        out = self.streams.get(stream)
        if out is None:
            out = self.streams[stream] = HlsStream(self.hub_for(stream), part_target=self.part_target,
                                                   window=self.window, on_end=self._ended)
            if self._reaper is None or self._reaper.done():
                self._reaper = asyncio.create_task(self._reap())
        out.touch()
        return out

    def _ended(self, out: HlsStream) -> None:
        if self.streams.get(out.hub.stream) is out:
            del self.streams[out.hub.stream]

    async def _reap(self) -> None:
        while self.streams:
            await asyncio.sleep(min(self.idle_timeout / 4, 5.0))
            now = time.monotonic()
            for out in list(self.streams.values()):
                if not out.requests and now - out.last_request > self.idle_timeout:
                    log.info("hls: %s: no client for %.0f s, stopping", out.hub.stream, self.idle_timeout)
                    out.close()

    async def close(self) -> None:
        for out in list(self.streams.values()):
            out.close()
            await asyncio.gather(out.task, return_exceptions=True)
        if self._reaper is not None:
            self._reaper.cancel()
