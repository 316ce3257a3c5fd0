"""The recordings domain's operations: channel settings, the segment index, deletion.

The media worker's recorder calls :func:`open_segment` when it starts a segment (the row
exists, ``state="writing"``, before the first byte is spooled, so a crash always leaves a
row the repair pass can find) and :func:`finish_segment` once the blob is stored.
Everything that removes segments — the user deleting a recording or a range, retention,
the repair pass giving up on a segment — goes through :func:`remove_segments`, i.e. the
privacy engine's ``remove_rows``: the rows and their blob tombstones in one transaction,
the blobs deleted after the commit (or by the sweep job).
"""

from __future__ import annotations

import datetime as dt
import struct
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

from sqlalchemy import ColumnElement, and_, func, select, update

from faoyam.core.database import Database, utcnow
from faoyam.core.errors import Problem
from faoyam.core.storage import BlobStore
from faoyam.privacy.blobrefs import tombstone
from faoyam.privacy.subjects import remove_rows
from faoyam.recordings.models import RecordingSettings, Segment

MODES = ("continuous", "event", "off")
DESTINATIONS = ("local", "cloud", "both")
STREAMS = ("main", "sub")
ALL_HOURS = (1 << 24) - 1

# Event flags of a segment (``Segment.events``).
MOTION, ALARM, MANUAL = 1, 2, 4

_KEYFRAME = struct.Struct(">II")


# Keyframe positions ---------------------------------------------------------------------

def pack_keyframes(points: Sequence[tuple[int, int]]) -> bytes:
    """``[(ms from segment start, byte offset)]`` as 8 bytes per keyframe (a minute at one
    keyframe a second is 480 bytes): where playback seeks to without reading the segment."""
    return b"".join(_KEYFRAME.pack(ms, offset) for ms, offset in points)


def unpack_keyframes(data: bytes) -> list[tuple[int, int]]:
    return [_KEYFRAME.unpack_from(data, i) for i in range(0, len(data) - len(data) % 8, 8)]


def keyframe_at(data: bytes, ms: int) -> tuple[int, int] | None:
    """The last keyframe at or before ``ms`` (playback starts there), or the first one."""
    best = None
    for point in unpack_keyframes(data):
        if point[0] > ms and best is not None:
            break
        best = point
    return best


# Channel settings -----------------------------------------------------------------------

@dataclass
class ChannelSettings:
    """What a channel records; the defaults apply to a channel without a settings row."""

    mode: str = "continuous"
    schedule: list[int] | None = None  # 7 masks of 24 hour bits, Monday first; None: always
    streams: list[str] = field(default_factory=lambda: ["main"])
    destination: str = "local"
    retention_days: int = 7
    quota_bytes: int | None = None
    pre_roll_s: int = 5
    post_roll_s: int = 10

    def validate(self) -> None:
        problems = []
        if self.mode not in MODES:
            problems.append(("mode", f"one of {', '.join(MODES)}"))
        if self.destination not in DESTINATIONS:
            problems.append(("destination", f"one of {', '.join(DESTINATIONS)}"))
        if not self.streams or "main" not in self.streams or any(s not in STREAMS for s in self.streams):
            problems.append(("streams", "main, optionally with sub"))
        if self.schedule is not None and (len(self.schedule) != 7 or any(
                not isinstance(m, int) or not 0 <= m <= ALL_HOURS for m in self.schedule)):
            problems.append(("schedule", "seven 24-bit hour masks, Monday first"))
        if not 1 <= self.retention_days <= 3650:
            problems.append(("retention_days", "1 to 3650"))
        if self.quota_bytes is not None and self.quota_bytes <= 0:
            problems.append(("quota_bytes", "positive, or null for no quota"))
        if not 0 <= self.pre_roll_s <= 30 or not 0 <= self.post_roll_s <= 600:
            problems.append(("pre_roll_s", "0-30 s (post-roll 0-600 s)"))
        if problems:
            raise Problem("; ".join(f"{k}: {v}" for k, v in problems), status=422,
                          code="invalid-recording-settings", title="Invalid recording settings")

    def scheduled(self, when: dt.datetime) -> bool:
        """Does the schedule include ``when`` (in the device's local time)?"""
        if self.mode == "off":
            return False
        if self.schedule is None:
            return True
        return bool(self.schedule[when.weekday()] >> when.hour & 1)


_SETTING_FIELDS = [f.name for f in fields(ChannelSettings)]


def settings_dict(cs: ChannelSettings) -> dict:
    return {name: getattr(cs, name) for name in _SETTING_FIELDS}


def local_time(when: dt.datetime, time_zone: str | None) -> dt.datetime:
    """``when`` on the device's clock: schedules are the owner's hours where the camera is.
    A device without a (known) time zone reads its schedule in UTC."""
    if not time_zone:
        return when.astimezone(dt.UTC)
    try:
        return when.astimezone(zoneinfo.ZoneInfo(time_zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return when.astimezone(dt.UTC)


async def stored_channel_settings(db: Database, device_id: str, channel: int) -> ChannelSettings | None:
    """The channel's settings row, or None: the channel has never been set up to record."""
    async with db.session() as s:
        row = (await s.execute(select(RecordingSettings).where(
            RecordingSettings.device_id == device_id, RecordingSettings.channel == channel))).scalar_one_or_none()
    if row is None:
        return None
    return ChannelSettings(**{name: getattr(row, name) for name in _SETTING_FIELDS})


async def channel_settings(db: Database, device_id: str, channel: int) -> ChannelSettings:
    return await stored_channel_settings(db, device_id, channel) or ChannelSettings()


async def set_channel_settings(db: Database, device_id: str, channel: int, new: ChannelSettings) -> ChannelSettings:
    new.validate()
    async with db.transaction() as s:
        row = (await s.execute(select(RecordingSettings).where(
            RecordingSettings.device_id == device_id, RecordingSettings.channel == channel))).scalar_one_or_none()
        if row is None:
            row = RecordingSettings(device_id=device_id, channel=channel)
            s.add(row)
        for name in _SETTING_FIELDS:
            setattr(row, name, getattr(new, name))
    return new


async def set_status(db: Database, device_id: str, channel: int, status: str) -> None:
    """The recorder's word on a channel (its main stream), kept on the settings row so the
    web role, another process, can show it. A channel without a row records nothing."""
    async with db.transaction() as s:
        await s.execute(update(RecordingSettings).where(
            RecordingSettings.device_id == device_id, RecordingSettings.channel == channel).values(
            status=status[:60], status_at=utcnow()))


async def channel_status(db: Database, device_id: str, channel: int) -> tuple[str | None, dt.datetime | None]:
    async with db.session() as s:
        row = (await s.execute(select(RecordingSettings.status, RecordingSettings.status_at).where(
            RecordingSettings.device_id == device_id, RecordingSettings.channel == channel))).first()
    return (row.status, row.status_at) if row is not None else (None, None)


async def all_channel_settings(db: Database) -> dict[tuple[str, int], ChannelSettings]:
    """Every channel with a settings row (the recorder's and retention's view)."""
    async with db.session() as s:
        rows = (await s.execute(select(RecordingSettings))).scalars().all()
    return {(r.device_id, r.channel): ChannelSettings(**{n: getattr(r, n) for n in _SETTING_FIELDS}) for r in rows}


# The segment index ----------------------------------------------------------------------

@dataclass
class SegmentInfo:
    """What the recorder knows about a segment when it closes it (or the repair pass, after
    reading the spooled bytes back)."""

    end: dt.datetime
    duration_ms: int
    size: int
    init_size: int
    fragments: int
    frames: int
    keyframes: bytes
    events: int = 0


async def open_segment(db: Database, *, segment_id: str, device_id: str, channel: int, stream: str,
                       start: dt.datetime, codec: str, width: int, height: int, backend: str,
                       storage_key: str, events: int = 0, writer: str = "") -> None:
    async with db.transaction() as s:
        s.add(Segment(id=segment_id, device_id=device_id, channel=channel, stream=stream, start=start, end=start,
                      codec=codec, width=width, height=height, backend=backend, storage_key=storage_key,
                      events=events, state="writing", writer=writer))


async def finish_segment(db: Database, segment_id: str, info: SegmentInfo, *, state: str = "complete") -> bool:
    """Record a stored segment; False when its row is gone (erased meanwhile): the caller's
    blob then belongs to nobody and must be tombstoned (:func:`tombstone_key`)."""
    async with db.transaction() as s:
        result = await s.execute(update(Segment).where(Segment.id == segment_id).values(
            end=info.end, duration_ms=info.duration_ms, size=info.size, init_size=info.init_size,
            fragments=info.fragments, frames=info.frames, keyframes=info.keyframes,
            events=Segment.events.op("|")(info.events), state=state))
        return bool(result.rowcount)


async def tombstone_key(db: Database, key: str) -> None:
    """A blob whose row is gone (the account was erased while the segment was written)."""
    async with db.transaction() as s:
        await tombstone(s, [key])


async def mark_events(db: Database, segment_id: str, flags: int) -> None:
    async with db.transaction() as s:
        await s.execute(update(Segment).where(Segment.id == segment_id).values(
            events=Segment.events.op("|")(flags)))


async def segments_in_state(db: Database, state: str, writer: str | None = None) -> list[Segment]:
    cond = [Segment.state == state] + ([Segment.writer == writer] if writer is not None else [])
    async with db.session() as s:
        return list((await s.execute(select(Segment).where(*cond))).scalars())


async def segments(db: Database, device_id: str, channel: int, stream: str = "main",
                   start: dt.datetime | None = None, end: dt.datetime | None = None) -> list[Segment]:
    """The channel stream's segments overlapping ``[start, end)``, oldest first."""
    cond = [Segment.device_id == device_id, Segment.channel == channel, Segment.stream == stream]
    if start is not None:
        cond.append(Segment.end > start)
    if end is not None:
        cond.append(Segment.start < end)
    async with db.session() as s:
        return list((await s.execute(select(Segment).where(*cond).order_by(Segment.start))).scalars())


async def set_keep(db: Database, segment_id: str, keep: bool) -> None:
    async with db.transaction() as s:
        await s.execute(update(Segment).where(Segment.id == segment_id).values(keep=keep))


async def remove_segments(db: Database, blobs: BlobStore, condition: ColumnElement[bool], reason: str) -> int:
    """Delete segment rows matching ``condition`` and (after the commit) their blobs."""
    report = await remove_rows(db, blobs, Segment.__tablename__, condition, reason)
    return report.counts.get(Segment.__tablename__, 0)


async def remove_segment(db: Database, blobs: BlobStore, segment_id: str, reason: str) -> int:
    return await remove_segments(db, blobs, Segment.id == segment_id, reason)


async def referenced_keys(db: Database, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` an index row references (the rest are orphans)."""
    async with db.session() as s:
        return set((await s.execute(select(Segment.storage_key).where(Segment.storage_key.in_(list(keys))))).scalars())


async def delete_recordings(db: Database, blobs: BlobStore, device_id: str, channel: int, *,
                            start: dt.datetime | None = None, end: dt.datetime | None = None) -> int:
    """The user deletes a channel's recordings (R3 "videos"): all, or those overlapping a
    range. Segments still being written are left to finish (they are the present)."""
    cond = [Segment.device_id == device_id, Segment.channel == channel, Segment.state != "writing"]
    if start is not None:
        cond.append(Segment.end > start)
    if end is not None:
        cond.append(Segment.start < end)
    return await remove_segments(db, blobs, and_(*cond), "user deleted recordings")


async def delete_recording(db: Database, blobs: BlobStore, device_id: str, channel: int, segment_id: str) -> int:
    """The user deletes one recording of the channel (0: no such finished segment there)."""
    return await remove_segments(db, blobs, and_(
        Segment.id == segment_id, Segment.device_id == device_id, Segment.channel == channel,
        Segment.state != "writing"), "user deleted a recording")


@dataclass
class ChannelSummary:
    segments: int
    bytes: int
    first: dt.datetime | None
    last: dt.datetime | None


async def channel_summary(db: Database, device_id: str, channel: int) -> ChannelSummary:
    async with db.session() as s:
        row = (await s.execute(select(func.count(Segment.id), func.coalesce(func.sum(Segment.size), 0),
                                      func.min(Segment.start), func.max(Segment.end)).where(
            Segment.device_id == device_id, Segment.channel == channel))).first()
    return ChannelSummary(int(row[0]), int(row[1]), row[2], row[3])


async def recent_segments(db: Database, device_id: str, channel: int, limit: int = 50,
                          before: dt.datetime | None = None) -> list[Segment]:
    """The channel's newest segments (every stream), newest first: what the settings page lists."""
    cond = [Segment.device_id == device_id, Segment.channel == channel]
    if before is not None:
        cond.append(Segment.start < before)
    async with db.session() as s:
        return list((await s.execute(select(Segment).where(*cond).order_by(Segment.start.desc()).limit(limit))).scalars())


def now() -> dt.datetime:
    return utcnow()
