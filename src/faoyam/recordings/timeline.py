"""The playback timeline of one channel stream: what was recorded when, the gaps, the events,
and the days that have recordings (the calendar) — each in one indexed statement.

All statements walk ``ix_recording_segments_channel_start`` (``device_id, channel, stream,
start``); none reads every row of a long range:

* **detail** (ranges up to :data:`DETAIL_MAX`, six hours): the segments in the range,
  merged into islands in SQL (gaps-and-islands with window functions: a segment that does not
  start where the previous one ended opens a new interval), so what comes back is one row per
  interval, not per segment — contiguous segments share their boundary exactly
  (docs/recording.md).
* **coarse** (longer ranges: the day view, the 30-day view): the range is cut into at most
  :data:`BUCKETS` buckets (4 min for a day, 2 h for 30 days: a few pixels of a timeline a
  thousand pixels wide), and each bucket costs two index seeks (its first segment's start, its last
  segment's end); a bucket's interval is ``[first start, last end]``, so gaps shorter than a
  bucket are not shown. The answer says so (``resolution_s``).
* **events**: the segments with event flags, through the partial index
  ``ix_recording_segments_events`` (only event segments are in it).
* **days**: the coarse statement with one bucket per local day.

Segments still being written (``state="writing"``) are not on the timeline: their end is not
known yet (the live view shows that minute).
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass, field

from sqlalchemy import and_, case, func, select, text

from faoyam.core.database import Database
from faoyam.recordings.models import Segment

# Merging islands with window functions costs ~5 µs a segment on SQLite (~40 ms for a day
# of 10-s segments on a loaded machine); two index seeks a bucket do not grow with the rows.
DETAIL_MAX = dt.timedelta(hours=6)
BUCKETS = 360
MIN_BUCKET_S = 60
# Longest a segment can be (60 s by default, cut at the next keyframe); the range condition
# on ``start`` looks back this far for the segment that overlaps the range's beginning.
MAX_SEGMENT = dt.timedelta(minutes=15)
DAY_LIMIT = 400


@dataclass
class Interval:
    start: dt.datetime
    end: dt.datetime
    events: int = 0

    def as_json(self) -> dict:
        return {"start": _iso(self.start), "end": _iso(self.end), "events": self.events}


@dataclass
class Timeline:
    start: dt.datetime
    end: dt.datetime
    resolution_s: int  # 0: exact (every gap between segments shown)
    intervals: list[Interval] = field(default_factory=list)
    gaps: list[Interval] = field(default_factory=list)
    events: list[Interval] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"start": _iso(self.start), "end": _iso(self.end), "resolution_s": self.resolution_s,
                "intervals": [i.as_json() for i in self.intervals],
                "gaps": [{"start": _iso(g.start), "end": _iso(g.end)} for g in self.gaps],
                "events": [e.as_json() for e in self.events],
                "recorded_s": round(sum((i.end - i.start).total_seconds() for i in self.intervals), 3)}


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _key(device_id: str, channel: int, stream: str):
    return and_(Segment.device_id == device_id, Segment.channel == channel, Segment.stream == stream)


def _in_range(start: dt.datetime, end: dt.datetime):
    return and_(Segment.start >= start - MAX_SEGMENT, Segment.start < end, Segment.end > start,
                Segment.state != "writing")


async def timeline(db: Database, device_id: str, channel: int, stream: str, start: dt.datetime,
                   end: dt.datetime) -> Timeline:
    """Recorded intervals, gaps and event markers of a channel stream within ``[start, end)``."""
    if end <= start:
        return Timeline(start, end, 0)
    detail = end - start <= DETAIL_MAX
    async with db.session() as s:
        if detail:
            raw = await _islands(s, device_id, channel, stream, start, end)
            resolution = 0
        else:
            step = max(MIN_BUCKET_S, math.ceil((end - start).total_seconds() / BUCKETS))
            raw = await _buckets(s, device_id, channel, stream, start, end, step)
            raw = _merge(raw, dt.timedelta(seconds=step))
            resolution = step
        events = await _events(s, device_id, channel, stream, start, end)
    intervals = [Interval(max(a, start), min(b, end)) for a, b in raw if b > start and a < end]
    for iv in intervals:  # flags of the events each interval holds
        for ev in events:
            if ev.start < iv.end and ev.end > iv.start:
                iv.events |= ev.events
    gaps, cursor = [], start
    for iv in intervals:
        if iv.start > cursor:
            gaps.append(Interval(cursor, iv.start))
        cursor = max(cursor, iv.end)
    if cursor < end:
        gaps.append(Interval(cursor, end))
    return Timeline(start, end, resolution, intervals, gaps, events)


async def _islands(s, device_id, channel, stream, start, end) -> list[tuple[dt.datetime, dt.datetime]]:
    prev_end = func.lag(Segment.end).over(order_by=Segment.start)
    marked = (select(Segment.start.label("start"), Segment.end.label("end"),
                     case((prev_end.is_(None), 1), (Segment.start > prev_end, 1), else_=0).label("brk"))
              .where(_key(device_id, channel, stream), _in_range(start, end))).subquery()
    numbered = select(marked.c.start, marked.c.end,
                      func.sum(marked.c.brk).over(order_by=marked.c.start).label("island")).subquery()
    rows = await s.execute(select(func.min(numbered.c.start), func.max(numbered.c.end))
                           .group_by(numbered.c.island).order_by(func.min(numbered.c.start)))
    return [(_parse(a), _parse(b)) for a, b in rows]  # min()/max(): SQLite's text, PostgreSQL's datetime


_BUCKET_SQL = {
    # k = 0..n-1, bucket k = [lo + k*step, lo + (k+1)*step); two index seeks per bucket. The
    # first is index-only; no state filter: a segment being written has end = start, so it
    # marks where recording goes on now and stretches nothing.
    "sqlite": """
WITH RECURSIVE b(k) AS (SELECT 0 UNION ALL SELECT k + 1 FROM b WHERE k + 1 < :n),
 r AS MATERIALIZED (SELECT k, strftime('%Y-%m-%d %H:%M:%f', :lo, '+' || (k * :step) || ' seconds') AS a,
              strftime('%Y-%m-%d %H:%M:%f', :lo, '+' || ((k + 1) * :step) || ' seconds') AS z FROM b)
SELECT k,
 (SELECT start FROM recording_segments WHERE device_id = :d AND channel = :c AND stream = :s
   AND start >= r.a AND start < r.z ORDER BY start LIMIT 1) AS first_start,
 (SELECT "end" FROM recording_segments WHERE device_id = :d AND channel = :c AND stream = :s
   AND start >= r.a AND start < r.z ORDER BY start DESC LIMIT 1) AS last_end
FROM r""",
    "postgresql": """
SELECT k,
 (SELECT start FROM recording_segments WHERE device_id = :d AND channel = :c AND stream = :s
   AND start >= r.a AND start < r.z ORDER BY start LIMIT 1) AS first_start,
 (SELECT "end" FROM recording_segments WHERE device_id = :d AND channel = :c AND stream = :s
   AND start >= r.a AND start < r.z ORDER BY start DESC LIMIT 1) AS last_end
FROM (SELECT k, CAST(:lo AS timestamptz) + make_interval(secs => k * :step) AS a,
             CAST(:lo AS timestamptz) + make_interval(secs => (k + 1) * :step) AS z
      FROM generate_series(0, CAST(:n AS integer) - 1) AS k) AS r""",
}


_BUCKET_TEXT = {name: text(sql) for name, sql in _BUCKET_SQL.items()}


async def _buckets(s, device_id, channel, stream, start, end, step: int,
                   ) -> list[tuple[int, dt.datetime | None, dt.datetime | None]]:
    n = math.ceil((end - start).total_seconds() / step)
    dialect = s.bind.dialect.name
    lo = start.astimezone(dt.UTC)
    lo_param = lo.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") if dialect == "sqlite" else lo
    stmt = _BUCKET_TEXT["postgresql" if dialect == "postgresql" else "sqlite"]
    rows = await s.execute(stmt, {"n": n, "lo": lo_param, "step": step, "d": device_id, "c": channel, "s": stream})
    out = []
    for k, first, last in rows:
        if first is not None:
            out.append((k, _parse(first), _parse(last)))
    return out


def _merge(buckets, slack: dt.timedelta) -> list[tuple[dt.datetime, dt.datetime]]:
    """Bucket spans into intervals: neighbours closer than a bucket are one interval."""
    out: list[list[dt.datetime]] = []
    for _, a, b in buckets:
        if out and a - out[-1][1] <= slack:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


_EVENTS_SQL = text("""
SELECT start, "end", events FROM recording_segments
WHERE device_id = :d AND channel = :c AND stream = :s AND start >= :lo AND start < :hi AND "end" > :a
  AND events != 0
ORDER BY start""")  # a literal 0, not a bound parameter: only then may the planner use the partial index
# (which covers these columns: no state filter, a segment being written shows as its start)


async def _events(s, device_id, channel, stream, start, end) -> list[Interval]:
    # text, not the ORM's columns: a 30-day range has a thousand event segments, and
    # SQLite's datetime strings parse ten times faster with fromisoformat than SQLAlchemy's
    rows = await s.execute(_EVENTS_SQL, {"d": device_id, "c": channel, "s": stream,
                                         **_bounds(s, start - MAX_SEGMENT, end, start)})
    out: list[Interval] = []
    for a, b, flags in rows:
        a, b = _parse(a), _parse(b)
        if out and out[-1].end >= a and out[-1].events == flags:
            out[-1].end = max(out[-1].end, b)  # one marker for an event over several segments
        else:
            out.append(Interval(a, b, flags))
    return out


def _bounds(s, lo: dt.datetime, hi: dt.datetime, a: dt.datetime) -> dict:
    """Bind values as the column stores them: naive UTC text on SQLite, aware on PostgreSQL."""
    if s.bind.dialect.name == "sqlite":
        def f(t):
            return t.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return {"lo": f(lo), "hi": f(hi), "a": f(a)}
    return {"lo": lo, "hi": hi, "a": a}


def _parse(value) -> dt.datetime:
    """A stored UTC instant: SQLite hands back its text, PostgreSQL a datetime."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


async def recorded_days(db: Database, device_id: str, channel: int, stream: str, first: dt.date,
                        last: dt.date, tz: str = "UTC") -> list[dt.date]:
    """The local days in ``[first, last]`` (in ``tz``) with at least one recorded segment: one
    statement, two index seeks a day. Days are 24 h from local midnight of ``first``."""
    zone = zoneinfo.ZoneInfo(tz)
    days = min((last - first).days + 1, DAY_LIMIT)
    if days <= 0:
        return []
    lo = dt.datetime.combine(first, dt.time(), zone)
    async with db.session() as s:
        found = await _buckets(s, device_id, channel, stream, lo, lo + dt.timedelta(days=days), 86400)
    return [first + dt.timedelta(days=k) for k, _, _ in found]


# What playback reads -----------------------------------------------------------------------

async def segments_from(db: Database, device_id: str, channel: int, stream: str, at: dt.datetime,
                        until: dt.datetime | None = None, limit: int = 50) -> list[Segment]:
    """Up to ``limit`` stored segments from the one holding ``at`` (or the next after it)
    onwards, oldest first, ending before ``until``: one index range."""
    cond = [_key(device_id, channel, stream), Segment.start >= at - MAX_SEGMENT, Segment.end > at,
            Segment.state != "writing"]
    if until is not None:
        cond.append(Segment.start < until)
    async with db.session() as s:
        return list((await s.execute(select(Segment).where(*cond).order_by(Segment.start).limit(limit))).scalars())


async def segment_by_id(db: Database, segment_id: str) -> Segment | None:
    async with db.session() as s:
        return await s.get(Segment, segment_id)
