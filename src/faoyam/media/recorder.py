"""The recorder: a channel's hub → fragmented-MP4 segments in the blob store, indexed.

One :class:`ChannelRecorder` per recorded channel stream subscribes to the stream's hub
like a viewer (so the device is asked to push, and keeps pushing, while recording is on)
and writes what the hub already muxed — no re-muxing, no decoding. Its life:

* **segments**: a segment starts at a keyframe with the stream's init segment and runs to
  the first keyframe after ``segment_s`` (60 s) of media time. A new init segment (codec or
  resolution change) ends it and the next one starts with the new init. A *gap* — the
  camera was away for longer than ``gap_s`` (the hub's timeline would paper over it), or
  the recorder fell behind and the hub skipped fragments — also ends it: gaps stay gaps.
* **spool, the recovery point**: the bytes go first to a local spool file
  (``<data>/recordings-spool/<segment id>.fmp4``), appended about once a second
  (``flush_s``) with an unbuffered write, so a ``kill -9`` of the worker loses at most the
  second not yet written. The segment's index row exists (``state="writing"``) before the
  first byte is spooled.
* **upload**: the blob store adopts a closed segment's spool (``BlobStore.adopt``: the
  local backend renames it into place, S3 streams it as a multipart upload; with a cloud
  store beside the box, ``TwoStores``, the key says which store(s) by the channel's
  destination), then its row is completed. Uploads run in the background, a few at a time.
* **event mode**: a channel recorded around events only holds the last ``pre_roll_s`` of
  fragments (from a keyframe) instead of writing them; ``Recorder.on_event`` — called for
  the ``faoyam/svc/record-event`` messages of ``recordings.events`` — writes them and what
  follows until ``post_roll_s`` after the last event, the segments flagged with it.
* **pausing, never stalling**: the hub hands the recorder fragments through a bounded
  subscription and never waits for it. When the blob store fails (full disk, S3 down) or
  falls behind (``max_pending`` closed segments of a channel not yet stored), that channel
  pauses — its fragments are dropped, ``status`` says why, ``on_status`` is called (the
  alarms issue turns it into an owner alarm) — and resumes at a keyframe once the store
  catches up. What was stored stays valid; the spool of a failed upload is retried.

:func:`repair` runs when the recorder starts, before anything is recorded: rows still
``writing`` are finished from their spool (cut at the last complete fragment, marked
``repaired``) or from a blob the crash left uploaded but unrecorded; rows with neither are
removed, spools without a row (erased meanwhile) deleted, segment blobs no row references
tombstoned. See docs/recording.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import shutil
import struct
import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path

from faoyam.alarms import bus as alarm_bus
from faoyam.alarms.service import DETECTION_KINDS
from faoyam.core.context import Context
from faoyam.core.jobs import repeat
from faoyam.core.database import new_id, utcnow
from faoyam.core.storage import BlobNotFound, BlobStore
from faoyam.core.storage_two import TwoStores
from faoyam.devices import clock as device_clock
from faoyam.media.fmp4_parse import FragmentError, boxes, init_info, is_init
from faoyam.media.hub import StreamHub, StreamHubs, Subscription
from faoyam.media.ids import ChannelId
from faoyam.recordings import events as record_events
from faoyam.recordings import service as recordings
from faoyam.recordings.retention import emergency_cleanup

log = logging.getLogger("faoyam.media.recorder")

SEGMENT_KIND = "recording_segment"
SEGMENT_SECONDS = 60.0
FLUSH_SECONDS = 0.75  # with BATCH_SECONDS: a spool write about once a second
BATCH_SECONDS = 0.25  # the recorder reads its subscription at most this often
GAP_SECONDS = 3.0
MIN_FREE_BYTES = 1 << 30  # below this on the local disk, the oldest recordings make room
DISK_CHECK_TICKS = 30  # ticks (~1 s each) between two looks at the free space
SYNC_SECONDS = 15.0  # how soon a changed setting or schedule hour takes effect
MAX_PENDING = 3  # closed segments of one channel waiting for the blob store before it pauses
UPLOADS = 4  # uploads in flight, all channels together
RECORDER_QUEUE_BYTES = 16 << 20  # ~30 s of a 4 Mbit/s stream: rides out a slow disk second
READ_CHUNK = 1 << 20
_NON_SYNC = 0x00010000

StatusHook = Callable[[ChannelId, str], None]


# Reading what the hub hands out -------------------------------------------------------

@dataclass(frozen=True, slots=True)
class FragmentFacts:
    """What the recorder needs from one ``moof``+``mdat`` (read from its headers only)."""

    keyframe: bool
    dts: int  # base decode time of the primary (video) track, in its timescale
    end: int  # dts + the durations of its samples in this fragment
    samples: int  # primary-track samples (video frames)


def primary_track(init: bytes) -> tuple[int, int]:
    """(track id, timescale) of the track segments are measured on: video, else the first."""
    tracks = init_info(init)
    if not tracks:
        raise FragmentError("init segment without tracks")
    video = next((t for t in tracks if t.kind == "video"), tracks[0])
    return video.track_id, video.timescale


def fragment_facts(data: bytes, track_id: int) -> FragmentFacts:
    """Keyframe flag, time span and frame count of ``track_id`` in one fragment."""
    for kind, start, end in boxes(data):
        if kind != b"moof":
            continue
        for tkind, ts, te in boxes(data, start, end):
            if tkind != b"traf":
                continue
            tid, dts, facts = 0, 0, None
            for sub, s, e in boxes(data, ts, te):
                if sub == b"tfhd":
                    tid = struct.unpack_from(">I", data, s + 4)[0]
                elif sub == b"tfdt":
                    dts = struct.unpack_from(">Q" if data[s] else ">I", data, s + 4)[0]
                elif sub == b"trun" and tid == track_id:
                    facts = _trun_facts(data, s, dts)
            if facts is not None:
                return facts
        break
    raise FragmentError("fragment without the primary track")


def _trun_facts(data: bytes, s: int, dts: int) -> FragmentFacts:
    flags = struct.unpack_from(">I", data, s)[0] & 0xFFFFFF
    count = struct.unpack_from(">I", data, s + 4)[0]
    pos = s + 8 + (4 if flags & 0x1 else 0)
    first_flags = None
    if flags & 0x4:
        first_flags = struct.unpack_from(">I", data, pos)[0]
        pos += 4
    entry = 4 * sum(bool(flags & bit) for bit in (0x100, 0x200, 0x400, 0x800))
    total, key = 0, True
    for i in range(count):
        p = pos + i * entry
        if flags & 0x100:
            total += struct.unpack_from(">I", data, p)[0]
            p += 4
        if flags & 0x200:
            p += 4
        if i == 0:
            sample_flags = struct.unpack_from(">I", data, p)[0] if flags & 0x400 else first_flags
            key = sample_flags is None or not sample_flags & _NON_SYNC
    return FragmentFacts(key, dts, dts + total, count)


@dataclass
class ScanResult:
    """A segment file read back: how much of it is whole, and what the index needs."""

    good_size: int  # bytes up to the end of the last complete fragment (0: not even an init)
    init_size: int
    fragments: int
    frames: int
    duration_ms: int
    keyframes: list[tuple[int, int]]


def scan_segment(data: bytes) -> ScanResult:
    """Walk ``init + moof/mdat…`` and stop at the first incomplete or unreadable box —
    what a crash in the middle of a write leaves at the end of a spool."""
    pos, init_size, n = 0, 0, len(data)
    track_id = timescale = 0
    fragments = frames = 0
    first_dts = end_dts = None
    good = 0
    keyframes: list[tuple[int, int]] = []
    while pos + 8 <= n:
        size, kind = struct.unpack_from(">I4s", data, pos)
        if size < 8 or pos + size > n:
            break
        if kind in (b"ftyp", b"moov"):
            if fragments:
                break  # a second init: not something the recorder writes
            pos += size
            if kind == b"moov":
                init_size = good = pos
                try:
                    track_id, timescale = primary_track(data[:pos])
                except (FragmentError, struct.error):
                    return ScanResult(0, 0, 0, 0, 0, [])
            continue
        if kind != b"moof" or not init_size:
            break
        mdat = pos + size
        if mdat + 8 > n:
            break
        msize, mkind = struct.unpack_from(">I4s", data, mdat)
        if mkind != b"mdat" or msize < 8 or mdat + msize > n:
            break
        try:
            facts = fragment_facts(data[pos:mdat], track_id)
        except (FragmentError, struct.error):
            break
        if first_dts is None:
            first_dts = facts.dts
        if facts.keyframe:
            keyframes.append(((facts.dts - first_dts) * 1000 // timescale, pos))
        end_dts = facts.end
        fragments += 1
        frames += facts.samples
        pos = good = mdat + msize
    duration = (end_dts - first_dts) * 1000 // timescale if fragments and timescale else 0
    return ScanResult(good, init_size, fragments, frames, duration, keyframes)


# One channel stream -------------------------------------------------------------------

@dataclass
class _Segment:
    id: str
    key: str
    start: dt.datetime
    wall0: float  # clock() when its first fragment arrived
    dts0: int
    spool: Path
    fh: object = None
    size: int = 0  # bytes spooled (init included)
    init_size: int = 0
    end_dts: int = 0
    fragments: int = 0
    frames: int = 0
    events: int = 0
    keyframes: list[tuple[int, int]] = field(default_factory=list)
    buffer: list[bytes] = field(default_factory=list)
    buffered: int = 0
    buffered_frames: int = 0
    flushed_dts: int = 0  # end of the media already in the spool
    last_flush: float = 0.0

    def duration_ms(self, timescale: int) -> int:
        return (self.end_dts - self.dts0) * 1000 // timescale


class ChannelRecorder:
    """Records one channel stream for as long as it runs (see the module docstring)."""

    def __init__(self, manager: Recorder, channel: ChannelId, hub: StreamHub):
        self.manager = manager
        self.channel = channel
        self.hub = hub
        self.status = "starting"
        self.init: bytes | None = None
        self.track_id = 0
        self.timescale = 90000
        self.codec = ""
        self.width = self.height = 0
        self.segment: _Segment | None = None
        self.pending = 0  # closed segments not yet stored
        self.upload_failing: str | None = None
        self.spool_failed_until = 0.0
        self.segments_closed = 0
        self.frames_spooled = 0  # video frames safely in a spool (what a kill -9 cannot take)
        self.fragments_dropped = 0
        self.lags = 0
        self._lock = asyncio.Lock()
        self._sub: Subscription | None = None
        self._contiguous_end: dt.datetime | None = None  # end of the previous segment, if no gap
        self._last_end: dt.datetime | None = None  # end of the previous segment, gap or not
        self.task: asyncio.Task | None = None
        # Event-only recording: while no event is on, the last ``pre_roll_s`` of fragments
        # (from a keyframe) wait here; an event writes them and what follows until
        # ``post_roll_s`` of media after the last event.
        self.event_mode = False
        self.destination = "local"  # local | cloud | both: which store(s) its segments go to
        self.pre_roll_s, self.post_roll_s = 5.0, 10.0
        self.preroll: deque[tuple[float, bytes, FragmentFacts]] = deque()  # (arrival, bytes, facts)
        self.event_until: int | None = None  # media time (primary track) the recording runs to
        self.event_flags = 0
        self.last_dts = 0  # end of the newest fragment seen, media time
        self.live_dts: int | None = None  # end of the newest fragment of the batch in hand
        self.live_at = 0.0  # when that batch was read
        self.events_recorded = 0

    # -- status --
    def _set_status(self, status: str) -> None:
        if status != self.status:
            self.status = status
            log.info("recorder: %s: %s", self.channel, status)
            self.manager.note_status(self.channel, status)
            if self.manager.on_status is not None:
                try:
                    self.manager.on_status(self.channel, status)
                except Exception:  # noqa: BLE001 - a hook never stops recording
                    log.exception("recorder status hook failed")

    def _paused_reason(self) -> str | None:
        if self.upload_failing:
            return f"paused: {self.upload_failing}"
        if self.pending >= self.manager.max_pending:
            return "paused: storage too slow"
        if self.manager.clock() < self.spool_failed_until:
            return "paused: local disk full"
        return None

    # -- the reading loop --
    def start(self) -> None:
        self._sub = self.hub.subscribe(queue_bytes=self.manager.queue_bytes, max_lags=1 << 30, background=True)
        self.task = asyncio.create_task(self._run(), name=f"record:{self.channel}")
        if self.status == "starting":
            self._set_status("waiting for video")

    async def _run(self) -> None:
        sub = self._sub
        try:
            while True:
                chunks = await sub.read()
                if not chunks:
                    break
                async with self._lock:
                    self._note_live_edge(chunks)
                    if sub.lags != self.lags:  # the hub skipped fragments for us: a gap
                        self.lags = sub.lags
                        await self._close("recorder fell behind")
                    for chunk in chunks:
                        if is_init(chunk):
                            await self._close("new init segment")
                            self._configure(chunk)
                        else:
                            await self._fragment(chunk)
                    seg = self.segment
                    if seg is not None and seg.buffer and (
                            self.manager.clock() - seg.last_flush >= self.manager.flush_s
                            or seg.end_dts - seg.flushed_dts >= self.manager.flush_s * self.timescale):
                        # Due by the wall clock, or the buffer holds a flush interval of
                        # media (a loaded loop must not let the unsaved part grow).
                        await self._flush_or_close(seg)
                if self.manager.batch_s:
                    # Let fragments gather in the bounded subscription: one wake-up per
                    # batch instead of one per frame (the hub still never waits).
                    await asyncio.sleep(self.manager.batch_s)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("recorder: %s: stopped by an error", self.channel)
            self._set_status("stopped: error")

    def _note_live_edge(self, chunks: list[bytes]) -> None:
        """The media time of the newest fragment in hand: it is "now" on the wall clock. A
        batch can hold a second or more (the hub's cached GOP on subscribing, a loaded
        loop), so a segment's start is its first fragment's media time back from here —
        not the moment the recorder happened to read it."""
        self.live_dts, self.live_at = None, self.manager.clock()
        if not chunks or is_init(chunks[-1]):
            return
        with contextlib.suppress(FragmentError, struct.error):
            inits = [c for c in chunks if is_init(c)]  # on subscribing: the init, then the cached GOP
            track_id = primary_track(inits[-1])[0] if inits else self.track_id
            if inits or self.init is not None:
                self.live_dts = fragment_facts(chunks[-1], track_id).end

    def _wall_of(self, dts: int, now: float) -> float:
        """The wall-clock time of media time ``dts`` (see ``_note_live_edge``)."""
        if self.live_dts is None or self.live_dts < dts:
            return now
        return self.live_at - (self.live_dts - dts) / self.timescale

    def _configure(self, init: bytes) -> None:
        self.init = init
        try:
            self.track_id, self.timescale = primary_track(init)
        except FragmentError:
            self.init = None
            return
        # The muxer's tracks describe this init unless the stream was reconfigured again
        # since (then the next init follows at once, and its segment gets the details).
        tracks = self.hub.muxer.tracks if self.hub.muxer.init is init else ()
        video = next((t for t in tracks if t.kind == "video"), tracks[0] if tracks else None)
        if video is not None:
            self.codec = video.mime_codec
            self.width, self.height = video.width, video.height
        self._contiguous_end = None

    async def _fragment(self, chunk: bytes) -> None:
        if self.init is None:
            return
        try:
            facts = fragment_facts(chunk, self.track_id)
        except (FragmentError, struct.error):
            self.fragments_dropped += 1
            return
        now = self._wall_of(facts.dts, self.manager.clock())  # when this fragment was live
        self.last_dts = facts.end
        if self.event_mode and not await self._event_fragment(chunk, facts, now):
            return
        seg = self.segment
        if seg is not None:
            media_s = (facts.dts - seg.dts0) / self.timescale
            if now - seg.wall0 - media_s > self.manager.gap_s:
                await self._close("gap")
                seg = None
            elif facts.keyframe and seg.duration_ms(self.timescale) >= self.manager.segment_s * 1000:
                await self._close(None)
                seg = None
        if seg is None:
            reason = self._paused_reason()
            if reason is not None:
                self._set_status(reason)
                self.fragments_dropped += 1
                return
            if not facts.keyframe:
                self.fragments_dropped += 1
                return
            seg = await self._open(facts, now)
            if seg is None:
                self.fragments_dropped += 1
                return
        self._append(seg, chunk, facts)

    def _append(self, seg: _Segment, chunk: bytes, facts: FragmentFacts) -> None:
        if facts.keyframe:
            seg.keyframes.append(((facts.dts - seg.dts0) * 1000 // self.timescale, seg.size + seg.buffered))
        seg.buffer.append(chunk)
        seg.buffered += len(chunk)
        seg.buffered_frames += facts.samples
        seg.end_dts = facts.end
        seg.fragments += 1
        seg.frames += facts.samples

    # -- event-only recording --
    def trigger(self, flags: int, at: float | None = None) -> None:
        """An event (motion, an alarm) on this channel: record from the pre-roll to
        ``post_roll_s`` after it (a later event extends that). ``at``: when it happened,
        by the wall clock; an event reported late moves the end back accordingly."""
        late = max(0.0, self.manager.clock() - at) if at is not None else 0.0
        until = self.last_dts + int((self.post_roll_s - late) * self.timescale)
        self.event_until = until if self.event_until is None else max(self.event_until, until)
        self.event_flags |= flags
        if self.segment is not None:
            self.segment.events |= flags

    async def _event_fragment(self, chunk: bytes, facts: FragmentFacts, now: float) -> bool:
        """Event mode: True when the fragment is to be recorded (an event is on), after the
        pre-roll was written; False when it went into the pre-roll buffer."""
        on = self.event_until is not None and facts.dts < self.event_until
        if not on and self.segment is not None:
            await self._close("event ended")
        if not on:
            self.event_until = None
            self.event_flags = 0
            self._hold(now, chunk, facts)
            if self.status not in ("armed: waiting for an event",) and not self.status.startswith("paused"):
                self._set_status("armed: waiting for an event")
            return False
        if self.segment is None and self.preroll and self._paused_reason() is None:
            held = list(self.preroll)
            self.preroll.clear()
            _, first, first_facts = held[0]
            seg = await self._open(first_facts, self._wall_of(first_facts.dts, self.manager.clock()))
            if seg is not None:
                self.events_recorded += 1
                for _, data, f in held:
                    self._append(seg, data, f)
        if self.segment is not None:
            self.segment.events |= self.event_flags
        return True

    def _hold(self, now: float, chunk: bytes, facts: FragmentFacts) -> None:
        """Keep the newest ``pre_roll_s`` of media, starting at a keyframe."""
        buf = self.preroll
        if buf:
            last_wall, _, last = buf[-1]
            if now - last_wall - (facts.dts - last.end) / self.timescale > self.manager.gap_s:
                buf.clear()  # the camera was away: what came before is not this event's pre-roll
        if not buf and not facts.keyframe:
            return
        buf.append((now, chunk, facts))
        want = self.pre_roll_s * self.timescale
        while True:
            # The next keyframe after the first: if from there on is still enough, drop the head GOP.
            nxt = next((i for i, (_, _, f) in enumerate(buf) if i and f.keyframe), None)
            if nxt is None or facts.end - buf[nxt][2].dts < want:
                break
            for _ in range(nxt):
                buf.popleft()

    async def _open(self, facts: FragmentFacts, now: float) -> _Segment | None:
        m = self.manager
        start = self._contiguous_end or dt.datetime.fromtimestamp(now, dt.UTC)
        if self._last_end is not None and start < self._last_end:
            start = self._last_end  # an estimate of the wall time never makes two segments overlap
        seg_id = new_id()
        key, backend = m.segment_key(self.destination)
        seg = _Segment(id=seg_id, key=key, start=start, wall0=now, dts0=facts.dts,
                       flushed_dts=facts.dts,
                       spool=m.spool_dir / f"{seg_id}.fmp4", last_flush=now,
                       events=m.events_for(self.channel) | (self.event_flags if self.event_mode else 0))
        try:
            await recordings.open_segment(
                m.db, segment_id=seg.id, device_id=self.channel.device_id, channel=self.channel.channel,
                stream=self.channel.stream, start=start, codec=self.codec, width=self.width, height=self.height,
                backend=backend, storage_key=seg.key, events=seg.events, writer=m.writer)
        except Exception:  # noqa: BLE001 - no index, no recording: try again at a later keyframe
            log.exception("recorder: %s: cannot index a new segment", self.channel)
            self._set_status("paused: database unavailable")
            return None
        try:
            seg.fh = await asyncio.to_thread(open, seg.spool, "wb", buffering=0)
            await asyncio.to_thread(seg.fh.write, self.init)
        except OSError:
            await self._spool_failed(seg)
            return None
        seg.size = seg.init_size = len(self.init)
        self.segment = seg
        self._set_status("recording")
        return seg

    async def _flush(self, seg: _Segment) -> bool:
        """Append what is buffered to the spool: the recovery point. A failed write (disk
        full) is cut back to the last whole write and False returned: the caller closes the
        segment with what it has."""
        if not seg.buffer:
            return True
        data, frames = b"".join(seg.buffer), seg.buffered_frames
        seg.buffer.clear()
        seg.buffered = seg.buffered_frames = 0
        seg.last_flush, seg.flushed_dts = self.manager.clock(), seg.end_dts
        try:
            await asyncio.to_thread(self.manager.spool_write, seg.fh, data)
        except OSError:
            # What did not fit goes: the fragments (and keyframes) past the last whole write.
            seg.keyframes = [k for k in seg.keyframes if k[1] < seg.size]
            info = await asyncio.to_thread(_rescan, seg.spool, seg.size)
            seg.fragments, seg.frames = info.fragments, info.frames
            seg.end_dts = seg.dts0 + info.duration_ms * self.timescale // 1000
            self.spool_failed_until = self.manager.clock() + self.manager.retry_s
            return False
        seg.size += len(data)
        self.frames_spooled += frames
        return True

    async def _flush_or_close(self, seg: _Segment) -> None:
        if not await self._flush(seg):
            await self._close("local disk full")

    async def _spool_failed(self, seg: _Segment) -> None:
        log.warning("recorder: %s: cannot write the spool", self.channel)
        self.spool_failed_until = self.manager.clock() + self.manager.retry_s
        self._set_status("paused: local disk full")
        if seg.fh is not None:
            with contextlib.suppress(OSError):
                seg.fh.close()
        with contextlib.suppress(OSError):
            seg.spool.unlink()
        with contextlib.suppress(Exception):
            await recordings.remove_segment(self.manager.db, self.manager.blobs, seg.id, "recording aborted")

    async def _close(self, reason: str | None) -> None:
        """End the current segment and hand it to the uploader (``reason``: a gap or a change,
        so the next segment does not continue this one's timeline)."""
        seg, self.segment = self.segment, None
        if seg is None:
            return
        if not await self._flush(seg):
            reason = "local disk full"
        self._last_end = seg.start + dt.timedelta(milliseconds=seg.duration_ms(self.timescale))
        self._contiguous_end = None if reason else self._last_end
        with contextlib.suppress(OSError):
            await asyncio.to_thread(_close_file, seg.fh)
        self.segments_closed += 1
        if not seg.fragments:
            await self._spool_failed(seg)
            return
        info = recordings.SegmentInfo(
            end=seg.start + dt.timedelta(milliseconds=seg.duration_ms(self.timescale)),
            duration_ms=seg.duration_ms(self.timescale), size=seg.size, init_size=seg.init_size,
            fragments=seg.fragments, frames=seg.frames, keyframes=recordings.pack_keyframes(seg.keyframes),
            events=seg.events)
        self.pending += 1
        self.manager.upload_later(self, seg.id, seg.key, seg.spool, info)
        if reason:
            self._set_status(self._paused_reason() or f"waiting for video ({reason})")

    async def tick(self) -> None:
        """Called about once a second: flush a quiet stream's buffer, end a segment whose
        camera went away, and resume a paused channel's status."""
        async with self._lock:
            seg = self.segment
            now = self.manager.clock()
            if seg is not None:
                media_s = (seg.end_dts - seg.dts0) / self.timescale
                if now - seg.wall0 - media_s > self.manager.gap_s:
                    await self._close("gap")
                elif seg.buffer and now - seg.last_flush >= self.manager.flush_s:
                    await self._flush_or_close(seg)
            elif self.status.startswith("paused") and self._paused_reason() is None:
                self._set_status("waiting for video")

    async def stop(self, timeout: float = 10.0) -> None:
        # Leaving the hub ends the reading loop after the batch in hand: cancelling it
        # could cut a segment's opening between its index row and its spool.
        if self._sub is not None:
            self._sub.close()
        if self.task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.task), timeout)
            except (TimeoutError, Exception):  # noqa: BLE001 - stuck: the repair pass finishes it
                self.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self.task
        async with self._lock:
            await self._close("stopped")
        self._set_status("stopped")


def _close_file(fh) -> None:
    if fh is not None:
        os.fsync(fh.fileno())
        fh.close()


def _rescan(path: Path, size: int) -> ScanResult:
    with open(path, "r+b") as fh:
        fh.truncate(size)
        fh.seek(0)
        return scan_segment(fh.read())


def _spool_write(fh, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = fh.write(view)
        view = view[written:]


# Every recorded channel of the worker -------------------------------------------------

class Recorder:
    """The media worker's recorder: which channels record, their recorders, the uploads."""

    def __init__(self, db, blobs: BlobStore, hubs: StreamHubs, spool_dir: Path, *, backend: str = "local",
                 segment_s: float = SEGMENT_SECONDS, flush_s: float = FLUSH_SECONDS, gap_s: float = GAP_SECONDS,
                 max_pending: int = MAX_PENDING, uploads: int = UPLOADS, queue_bytes: int = RECORDER_QUEUE_BYTES,
                 retry_s: float = 5.0, clock: Callable[[], float] = time.time, on_status: StatusHook | None = None,
                 min_free_bytes: int = MIN_FREE_BYTES, free_bytes: Callable[[], int] | None = None,
                 batch_s: float = BATCH_SECONDS):
        self.db, self.blobs, self.hubs = db, blobs, hubs
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        self.writer = spool_identity(self.spool_dir)
        self.backend = backend
        self.segment_s, self.flush_s, self.gap_s = segment_s, flush_s, gap_s
        self.max_pending, self.queue_bytes, self.retry_s = max_pending, queue_bytes, retry_s
        self.clock = clock
        self.on_status = on_status
        self.spool_write = _spool_write  # tests replace it with one that fails
        self.adopt = True  # the store takes the spool file (a rename on the local backend)
        self.min_free_bytes = min_free_bytes
        self.batch_s = batch_s
        self.free_bytes = free_bytes or (lambda: shutil.disk_usage(self.spool_dir).free)
        self.emergency_deleted = 0
        self.channels: dict[Hashable, ChannelRecorder] = {}
        self._uploads = asyncio.Semaphore(uploads)
        self._upload_tasks: set[asyncio.Task] = set()
        self._events: dict[ChannelId, int] = {}
        self._ticker: asyncio.Task | None = None
        self._syncer: asyncio.Task | None = None
        self._status_seen: dict[ChannelId, str] = {}
        self._status_dirty: dict[ChannelId, str] = {}
        self._status_writer: asyncio.Task | None = None
        self.uploaded = 0
        self.upload_failures = 0

    # -- which channels --
    def record(self, channel: ChannelId, settings: recordings.ChannelSettings | None = None) -> ChannelRecorder:
        """Start recording ``channel`` (idempotent); ``settings`` say whether continuously
        or around events only, and the event pre- and post-roll."""
        rec = self.channels.get(channel)
        if rec is None:
            rec = self.channels[channel] = ChannelRecorder(self, channel, self.hubs.hub(channel))
            self._apply(rec, settings)
            rec.start()
        else:
            self._apply(rec, settings)
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick_loop(), name="recorder-tick")
        return rec

    @staticmethod
    def _apply(rec: ChannelRecorder, settings: recordings.ChannelSettings | None) -> None:
        if settings is None:
            return
        rec.event_mode = settings.mode == "event"
        rec.destination = settings.destination
        rec.pre_roll_s, rec.post_roll_s = float(settings.pre_roll_s), float(settings.post_roll_s)

    async def stop_recording(self, channel: ChannelId) -> None:
        rec = self.channels.pop(channel, None)
        if rec is not None:
            await rec.stop()
            self.note_status(channel, "off")

    async def sync(self, now: dt.datetime | None = None) -> set[ChannelId]:
        """Record exactly the channel streams whose settings say so now: mode (continuous,
        or event: subscribed, holding a pre-roll, written around events) and schedule, read
        in each device's time zone."""
        now = now or utcnow()
        wanted: dict[ChannelId, recordings.ChannelSettings] = {}
        settings = await recordings.all_channel_settings(self.db)
        zones = await device_clock.time_zones(self.db, {device_id for device_id, _ in settings})
        for (device_id, channel), cs in settings.items():
            if cs.mode in ("continuous", "event") and cs.scheduled(recordings.local_time(now, zones.get(device_id))):
                wanted.update({ChannelId(device_id, channel, stream): cs for stream in cs.streams})
        for channel in list(self.channels):
            if channel not in wanted:
                await self.stop_recording(channel)
        for channel, cs in wanted.items():
            self.record(channel, cs)
        for device_id, channel in settings:
            if not any(c.device_id == device_id and c.channel == channel for c in wanted):
                self.note_status(ChannelId(device_id, channel, "main"), "off")
        return set(wanted)

    def segment_key(self, destination: str) -> tuple[str, str]:
        """A new segment's blob key and the row's ``backend``: with a cloud store beside the
        deployment's (``TwoStores``) the key says which store(s) keep it; without one every
        segment goes to the deployment's store, whatever the channel asked."""
        if isinstance(self.blobs, TwoStores) and destination in ("cloud", "both"):
            return TwoStores.new_key_for(SEGMENT_KIND, destination), "s3" if destination == "cloud" else "both"
        return BlobStore.new_key(SEGMENT_KIND), self.backend

    # -- events (the alarms domain's entry point) --
    def on_event(self, device_id: str, channel: int, flags: int, at: float | None = None) -> bool:
        """Motion or an alarm on a device channel (``flags``: recordings.MOTION, ALARM,
        MANUAL; ``at``: when, by the wall clock). An event-mode channel writes its pre-roll
        and records to ``post_roll_s`` after the last event; a continuously recorded one
        flags its current segment. True when a recorder of the channel took it."""
        took = False
        for cid, rec in list(self.channels.items()):
            if cid.device_id == device_id and cid.channel == channel:
                if rec.event_mode:
                    rec.trigger(flags, at)
                elif rec.segment is not None:
                    rec.segment.events |= flags
                took = True
        return took

    # -- status, for the web role (kept on the settings row) --
    def note_status(self, channel: ChannelId, status: str) -> None:
        if channel.stream != "main" or self._status_seen.get(channel) == status:
            return
        self._status_seen[channel] = status
        self._status_dirty[channel] = status
        if self._status_writer is None or self._status_writer.done():
            with contextlib.suppress(RuntimeError):  # no loop: nothing to report to
                self._status_writer = asyncio.get_running_loop().create_task(self._write_statuses())

    async def _write_statuses(self) -> None:
        while self._status_dirty:
            channel, status = self._status_dirty.popitem()
            try:
                await recordings.set_status(self.db, channel.device_id, channel.channel, status)
            except Exception:  # noqa: BLE001 - the database may be away; the next change says it again
                self._status_seen.pop(channel, None)
                log.warning("recorder: cannot store the status of %s", channel)

    def run_sync(self, every: float = SYNC_SECONDS) -> None:
        self._syncer = asyncio.create_task(repeat(self.sync, every, "recorder: cannot read the recording settings", log), name="recorder-sync")

    def status(self, channel: ChannelId) -> str:
        rec = self.channels.get(channel)
        return rec.status if rec is not None else "off"

    def events_for(self, channel: ChannelId) -> int:
        return self._events.get(channel, 0)

    async def _tick_loop(self) -> None:
        ticks = 0
        while True:
            await asyncio.sleep(min(self.flush_s, 1.0))
            for rec in list(self.channels.values()):
                try:
                    await rec.tick()
                except Exception:  # noqa: BLE001
                    log.exception("recorder tick failed")
            ticks += 1
            if ticks % DISK_CHECK_TICKS == 0:
                await self.check_disk()

    async def check_disk(self) -> int:
        """The emergency clean-up when the local disk (the spool's, and the local store's
        when they share it) is nearly full: the oldest unprotected local segments go."""
        try:
            if (await asyncio.to_thread(self.free_bytes)) >= self.min_free_bytes:
                return 0
            n = await emergency_cleanup(self.db, self.blobs, self.free_bytes, self.min_free_bytes)
        except Exception:  # noqa: BLE001 - the next check tries again
            log.exception("recorder: emergency clean-up failed")
            return 0
        self.emergency_deleted += n
        return n

    # -- uploads --
    def upload_later(self, rec: ChannelRecorder, seg_id: str, key: str, spool: Path,
                     info: recordings.SegmentInfo) -> None:
        task = asyncio.create_task(self._upload(rec, seg_id, key, spool, info), name=f"upload:{seg_id}")
        self._upload_tasks.add(task)
        task.add_done_callback(self._upload_tasks.discard)

    async def _upload(self, rec: ChannelRecorder | None, seg_id: str, key: str, spool: Path,
                      info: recordings.SegmentInfo, state: str = "complete") -> None:
        delay = 0.5
        try:
            while True:
                try:
                    async with self._uploads:
                        await store_spool(self.blobs, key, spool, adopt=self.adopt)
                    break
                except Exception as exc:  # noqa: BLE001 - the spool stays; try again
                    self.upload_failures += 1
                    why = "storage full" if "full" in str(exc).lower() else "storage failing"
                    log.warning("recorder: upload of a segment failed (%s), retrying", why)
                    if rec is not None:
                        rec.upload_failing = why
                        rec._set_status(f"paused: {why}")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_s * 6)
            if rec is not None and rec.upload_failing:
                rec.upload_failing = None
            # The blob is stored; the row must say so. A database that refuses a moment
            # (SQLite busy under load, PostgreSQL restarting) is asked again, not given up on.
            while True:
                try:
                    found = await recordings.finish_segment(self.db, seg_id, info, state=state)
                    break
                except Exception:  # noqa: BLE001
                    log.warning("recorder: cannot record a stored segment yet, retrying")
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self.retry_s * 6)
            if not found:
                await recordings.tombstone_key(self.db, key)  # erased while uploading
            await asyncio.to_thread(spool.unlink, True)
            self.uploaded += 1
        finally:
            if rec is not None:
                rec.pending -= 1

    async def drain(self) -> None:
        """Wait for every upload in flight (tests, shutdown)."""
        while self._upload_tasks:
            await asyncio.gather(*list(self._upload_tasks), return_exceptions=True)

    async def close(self, drain_timeout: float = 30.0) -> None:
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncer
            self._syncer = None
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for channel in list(self.channels):
            await self.stop_recording(channel)
        if self._status_writer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._status_writer, 5)
        try:
            await asyncio.wait_for(self.drain(), drain_timeout)
        except TimeoutError:
            # The spools stay: the repair pass of the next start stores them.
            for task in list(self._upload_tasks):
                task.cancel()
            await asyncio.gather(*list(self._upload_tasks), return_exceptions=True)

    # -- repair on start --
    async def repair(self) -> RepairReport:
        return await repair(self.db, self.blobs, self.spool_dir)


def spool_identity(spool_dir: Path) -> str:
    """The recorder's id, kept in its spool directory: rows it writes carry it, so that with
    several media workers each repairs only its own (the spool is local to its machine)."""
    path = spool_dir / ".writer"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        ident = new_id()
        path.write_text(ident)
        return ident


async def store_spool(blobs: BlobStore, key: str, spool: Path, *, adopt: bool = True) -> int:
    """Put a closed spool file into the blob store under ``key``. ``adopt``: the store takes
    the file (the local backend renames it into place, no copy; S3 streams it, 1 MiB at a
    time) and the spool is gone; otherwise it is streamed and the spool stays for the caller."""
    if adopt:
        return await blobs.adopt(key, spool, READ_CHUNK)
    fh = await asyncio.to_thread(open, spool, "rb")
    try:
        async with blobs.open_writer(key) as w:
            while chunk := await asyncio.to_thread(fh.read, READ_CHUNK):
                await w.write(chunk)
        return w.size
    finally:
        await asyncio.to_thread(fh.close)


# Repair --------------------------------------------------------------------------------

@dataclass
class RepairReport:
    repaired: int = 0  # finished from a spool, cut at the last whole fragment
    adopted: int = 0  # the blob was stored, the row not updated: finished from the blob
    removed: int = 0  # rows with nothing to finish them from
    spools_deleted: int = 0  # spools without a row
    orphans: int = 0  # segment blobs without a row, tombstoned
    bytes_cut: int = 0  # partial fragment bytes dropped


def _info_from_scan(start: dt.datetime, scan: ScanResult, events: int) -> recordings.SegmentInfo:
    return recordings.SegmentInfo(
        end=start + dt.timedelta(milliseconds=scan.duration_ms), duration_ms=scan.duration_ms, size=scan.good_size,
        init_size=scan.init_size, fragments=scan.fragments, frames=scan.frames,
        keyframes=recordings.pack_keyframes(scan.keyframes), events=events)


def _read_and_cut(path: Path) -> tuple[ScanResult, int]:
    data = path.read_bytes()
    scan = scan_segment(data)
    cut = len(data) - scan.good_size
    if cut:
        with open(path, "r+b") as fh:
            fh.truncate(scan.good_size)
            fh.flush()
            os.fsync(fh.fileno())
    return scan, cut


async def repair(db, blobs: BlobStore, spool_dir: Path, *, orphan_grace: dt.timedelta = dt.timedelta(minutes=10),
                 ) -> RepairReport:
    """Make the index and the blobs agree after a crash (see the module docstring). Run it
    before recording starts: a ``writing`` row is then never one being written."""
    report = RepairReport()
    spool_dir = Path(spool_dir)
    writer = spool_identity(spool_dir)
    for row in await recordings.segments_in_state(db, "writing", writer):
        spool = spool_dir / f"{row.id}.fmp4"
        if spool.exists():
            scan, cut = await asyncio.to_thread(_read_and_cut, spool)
            report.bytes_cut += cut
            if scan.fragments:
                await store_spool(blobs, row.storage_key, spool)
                if await recordings.finish_segment(db, row.id, _info_from_scan(row.start, scan, row.events),
                                                   state="repaired"):
                    report.repaired += 1
                await asyncio.to_thread(spool.unlink, True)
                continue
            await asyncio.to_thread(spool.unlink, True)
        else:
            try:
                data = await blobs.read(row.storage_key)
            except BlobNotFound:
                data = b""
            scan = scan_segment(data)
            if scan.fragments and scan.good_size == len(data):
                await recordings.finish_segment(db, row.id, _info_from_scan(row.start, scan, row.events),
                                                state="repaired")
                report.adopted += 1
                continue
        await recordings.remove_segment(db, blobs, row.id, "recording repair")
        report.removed += 1
    # Spools no row is writing to: the row was erased (or removed above).
    writing = {row.id for row in await recordings.segments_in_state(db, "writing", writer)}
    for path in await asyncio.to_thread(lambda: sorted(spool_dir.glob("*.fmp4"))):
        if path.stem not in writing:
            await asyncio.to_thread(path.unlink, True)
            report.spools_deleted += 1
    report.orphans = await tombstone_orphans(db, blobs, grace=orphan_grace)
    return report


async def tombstone_orphans(db, blobs: BlobStore, *, grace: dt.timedelta, batch: int = 500) -> int:
    """Segment blobs that no index row references (written for a row erased meanwhile),
    older than ``grace``: tombstoned, so the sweep deletes them."""
    cutoff = utcnow() - grace
    found = 0
    chunk: list[str] = []

    async def settle(keys: list[str]) -> int:
        have = await recordings.referenced_keys(db, keys)
        lost = [k for k in keys if k not in have]
        for key in lost:
            await recordings.tombstone_key(db, key)
        return len(lost)

    async for stat in blobs.stats(f"{SEGMENT_KIND}/"):
        if stat.modified <= cutoff:
            chunk.append(stat.key)
        if len(chunk) >= batch:
            found += await settle(chunk)
            chunk = []
    if chunk:
        found += await settle(chunk)
    return found


# The media worker's hook ----------------------------------------------------------------

_RECORDERS: dict[int, Recorder] = {}


def recorder_of(ctx: Context) -> Recorder | None:
    """The recorder of the media worker running in ``ctx``'s process, if any."""
    return _RECORDERS.get(id(ctx))


def free_bytes(path: Path) -> int:
    return shutil.disk_usage(path).free


async def start(ctx: Context, hubs: StreamHubs) -> Recorder:
    """Repair, then start the recorder (``media.lifecycle.start``)."""
    s = ctx.settings
    rec = Recorder(ctx.db, ctx.blobs, hubs, Path(s.data_dir) / "recordings-spool", backend=s.blob_backend,
                   segment_s=s.recording_segment_seconds, gap_s=s.recording_gap_seconds,
                   flush_s=s.recording_flush_seconds)
    report = await rec.repair()
    log.info("recorder repair", extra={k: v for k, v in vars(report).items()})
    _RECORDERS[id(ctx)] = rec
    rec.run_sync()
    # Motion and alarms, from the alarms domain in whatever process (recordings/events.py).
    record_events.listen(ctx, lambda ev: rec.on_event(ev.device_id, ev.channel, ev.flags, ev.at))
    # Every stored alarm (a camera's or the service's own detection, from any node): an
    # event-mode channel records around it, a continuous one flags the segment.
    alarm_bus.listen(ctx, _alarm_listener(ctx))
    return rec


def _alarm_listener(ctx: Context):
    async def on_alarm(event: dict) -> None:
        rec = recorder_of(ctx)  # the one running now (the gateway's listeners outlive a restart)
        if rec is None:
            return
        try:
            at = dt.datetime.fromisoformat(event["at"]).timestamp()
        except (TypeError, ValueError):
            at = None
        flags = recordings.MOTION if event.get("kind") in DETECTION_KINDS else recordings.ALARM
        rec.on_event(event["device_id"], event["channel"], flags, at)

    return on_alarm


async def stop(ctx: Context) -> None:
    rec = _RECORDERS.pop(id(ctx), None)
    record_events.unlisten(ctx)
    if rec is not None:
        await rec.close()
