"""The timeline of a channel from real recorded segments: intervals merged, gaps, events,
the calendar's days; the detail and the coarse statement agree."""

from __future__ import annotations

import datetime as dt

import pytest

from faoyam.recordings import service, timeline
from tests.playback.conftest import record


@pytest.mark.req("B5")
async def test_contiguous_segments_are_one_interval(ctx, owned, recorder, clip):
    ch = owned.channel()
    segs = await record(recorder, ch, clip)
    assert len(segs) == 4
    start, end = segs[0].start, segs[-1].end
    lo, hi = start - dt.timedelta(minutes=5), end + dt.timedelta(minutes=5)
    tl = await timeline.timeline(ctx.db, owned.device_id, 0, "main", lo, hi)
    assert tl.resolution_s == 0
    assert [(i.start, i.end) for i in tl.intervals] == [(start, end)]
    assert [(g.start, g.end) for g in tl.gaps] == [(lo, start), (end, hi)]
    assert tl.events == [] and tl.as_json()["recorded_s"] == pytest.approx(10, abs=0.1)
    # a range inside the recording is clipped to the range
    inner = await timeline.timeline(ctx.db, owned.device_id, 0, "main", start + dt.timedelta(seconds=4),
                                    start + dt.timedelta(seconds=5))
    assert [(i.start, i.end) for i in inner.intervals] == [(start + dt.timedelta(seconds=4),
                                                            start + dt.timedelta(seconds=5))]
    # the coarse statement (a 40-day range) finds the same recording, at its resolution
    coarse = await timeline.timeline(ctx.db, owned.device_id, 0, "main", end - dt.timedelta(days=40),
                                     end + dt.timedelta(hours=1))
    assert coarse.resolution_s >= 3600  # buckets of 80 min: shorter gaps are not shown
    assert len(coarse.intervals) == 1
    assert coarse.intervals[0].start == start and coarse.intervals[0].end == end


@pytest.mark.req("B5")
async def test_a_gap_and_events_are_on_the_timeline(ctx, owned, recorder, clip, clock):
    ch = owned.channel()
    first, second = await record(recorder, ch, clip, clock=clock, gap_s=60)
    await service.mark_events(ctx.db, second.id, service.MOTION)
    lo, hi = first.start - dt.timedelta(seconds=1), second.end + dt.timedelta(seconds=1)
    tl = await timeline.timeline(ctx.db, owned.device_id, 0, "main", lo, hi)
    assert [(i.start, i.end) for i in tl.intervals] == [(first.start, first.end), (second.start, second.end)]
    assert (first.end, second.start) in [(g.start, g.end) for g in tl.gaps]
    assert [i.events for i in tl.intervals] == [0, service.MOTION]
    assert [(e.start, e.end, e.events) for e in tl.events] == [(second.start, second.end, service.MOTION)]
    body = tl.as_json()
    assert body["intervals"][1]["events"] == 1 and body["events"][0]["start"].endswith("Z")
    # another stream or channel has nothing
    other = await timeline.timeline(ctx.db, owned.device_id, 1, "main", lo, hi)
    assert other.intervals == [] and [(g.start, g.end) for g in other.gaps] == [(lo, hi)]


@pytest.mark.req("B5")
async def test_the_calendar_lists_days_with_recordings(ctx, owned, recorder, clip):
    ch = owned.channel()
    segs = await record(recorder, ch, clip)
    day = segs[0].start.astimezone(dt.UTC).date()
    days = await timeline.recorded_days(ctx.db, owned.device_id, 0, "main", day - dt.timedelta(days=10),
                                        day + dt.timedelta(days=10))
    assert days == [day] or (segs[0].start.date() != segs[-1].start.date() and day in days)
    assert await timeline.recorded_days(ctx.db, owned.device_id, 0, "main", day + dt.timedelta(days=1),
                                        day + dt.timedelta(days=5)) == []
