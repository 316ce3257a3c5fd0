"""Event-only recording: the pre-roll from the hub's fragments, the post-roll after the last
event, the event flags on the segment; verified with PyAV."""

from __future__ import annotations

import pytest

from faoyam.media.testfeed import feed
from faoyam.recordings import service

from tests.recordings.conftest import decode, increasing, wait_for


def _event_settings(pre: int, post: int) -> service.ChannelSettings:
    return service.ChannelSettings(mode="event", pre_roll_s=pre, post_roll_s=post)


@pytest.mark.req("B5")
async def test_an_event_records_from_the_pre_roll_to_the_post_roll(ctx, owned, recorder, clip):
    recorder.segment_s = 60.0
    channel = owned.channel()
    await service.set_channel_settings(ctx.db, owned.device_id, 0, _event_settings(pre=1, post=2))
    assert await recorder.sync() == {channel}
    rec = recorder.channels[channel]
    hub = recorder.hubs.get(channel)
    assert recorder.demand == [channel]  # the camera pushes: the pre-roll needs its stream
    feed(hub, clip, loops=2)  # media 0-4 s, keyframes every second; nothing is written yet
    await wait_for(lambda: rec.last_dts >= 4 * 90000 - 3600, what="pre-roll held",
                   state=lambda: (rec.last_dts, rec.status))
    assert rec.segment is None and rec.status == "armed: waiting for an event"
    assert list(recorder.spool_dir.glob("*.fmp4")) == []
    held = [f.dts / 90000 for _, _, f in rec.preroll if f.keyframe]
    assert held == [3.0]  # the newest keyframe at least 1 s before the live edge
    # An event at media time 4 s: record 3 s (pre-roll, to a keyframe) ... 6 s (2 s post-roll).
    assert recorder.on_event(owned.device_id, 0, service.MOTION)
    feed(hub, clip, loops=2, shift_ms=4000)  # media 4-8 s
    await wait_for(lambda: rec.segments_closed == 1 and rec.last_dts >= 8 * 90000 - 3600, what="event recorded",
                   state=lambda: (rec.segments_closed, rec.last_dts, rec.status))
    await wait_for(lambda: rec.pending == 0, what="stored")
    (seg,) = await service.segments(ctx.db, owned.device_id, 0)
    assert seg.state == "complete" and seg.events & service.MOTION
    assert seg.frames == 75 and abs(seg.duration_ms - 3000) <= 40
    got = decode(await ctx.blobs.read(seg.storage_key))
    assert got.frames == 75 and increasing(got.dts)
    assert abs(got.dts[0] - 3.0) < 0.05 and abs(got.dts[-1] + 0.04 - 6.0) < 0.05
    assert rec.status == "armed: waiting for an event" and rec.segment is None  # armed again


@pytest.mark.req("B5")
async def test_a_second_event_extends_the_post_roll(ctx, owned, recorder, clip):
    recorder.segment_s = 60.0
    channel = owned.channel()
    await service.set_channel_settings(ctx.db, owned.device_id, 0, _event_settings(pre=0, post=3))
    await recorder.sync()
    rec = recorder.channels[channel]
    hub = recorder.hubs.get(channel)
    feed(hub, clip, loops=1)  # 0-2 s
    await wait_for(lambda: rec.last_dts >= 2 * 90000 - 3600, what="held")
    recorder.on_event(owned.device_id, 0, service.MOTION)  # at 2 s: to 5 s
    feed(hub, clip, loops=1, shift_ms=2000)  # 2-4 s
    await wait_for(lambda: rec.last_dts >= 4 * 90000 - 3600, what="first event")
    recorder.on_event(owned.device_id, 0, service.ALARM)  # at 4 s: to 7 s, the same recording
    feed(hub, clip, loops=2, shift_ms=4000)  # 4-8 s
    await wait_for(lambda: rec.segments_closed >= 1 and rec.pending == 0 and rec.last_dts >= 8 * 90000 - 3600,
                   what="stored")
    segs = await service.segments(ctx.db, owned.device_id, 0)
    assert len(segs) == 1
    assert segs[0].events == service.MOTION | service.ALARM
    # Pre-roll 0 still starts at a keyframe: the current GOP's, at 1 s; to 7 s.
    assert abs(segs[0].duration_ms - 6000) <= 40
