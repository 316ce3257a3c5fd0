"""Retention by age (RET4) and quota per channel, and the emergency clean-up."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from faoyam.core.database import new_id
from faoyam.core.storage import BlobStore
from faoyam.privacy.models import ErasureRecord
from faoyam.recordings import service
from faoyam.recordings.retention import apply_retention, emergency_cleanup

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


async def _seg(ctx, owned, age_days: float, *, size: int = 100, events: int = 0, keep: bool = False,
               channel: int = 0) -> str:
    seg_id, key = new_id(), BlobStore.new_key("recording_segment")
    await ctx.blobs.write(key, b"x" * size)
    start = NOW - dt.timedelta(days=age_days)
    await service.open_segment(ctx.db, segment_id=seg_id, device_id=owned.device_id, channel=channel, stream="main",
                               start=start, codec="avc1", width=1, height=1, backend="local", storage_key=key)
    await service.finish_segment(ctx.db, seg_id, service.SegmentInfo(
        end=start + dt.timedelta(minutes=1), duration_ms=60_000, size=size, init_size=0, fragments=60, frames=1500,
        keyframes=b"", events=events))
    if keep:
        await service.set_keep(ctx.db, seg_id, True)
    return seg_id


async def _ids(ctx, owned, channel=0):
    return {s.id for s in await service.segments(ctx.db, owned.device_id, channel)}


@pytest.mark.req("RET4", "B5", "B12")
async def test_recordings_are_deleted_when_the_recording_period_ends(ctx, owned):
    await service.set_channel_settings(ctx.db, owned.device_id, 0, service.ChannelSettings(retention_days=3))
    old = [await _seg(ctx, owned, 3.5 + i) for i in range(7)]
    old_event = await _seg(ctx, owned, 4, events=service.MOTION)
    kept = await _seg(ctx, owned, 10, keep=True)
    young = await _seg(ctx, owned, 2.9)
    other = await _seg(ctx, owned, 5, channel=1)  # channel 1 has no settings: the default 7 days
    keys = {seg.id: seg.storage_key for seg in await service.segments(ctx.db, owned.device_id, 0)}
    report = await apply_retention(ctx.db, ctx.blobs, NOW, batch=3)  # bounded batches
    assert report.by_age == 8
    assert await _ids(ctx, owned) == {kept, young}
    assert await _ids(ctx, owned, 1) == {other}
    for seg_id in [*old, old_event]:
        assert not await ctx.blobs.exists(keys[seg_id])
    assert await ctx.blobs.exists(keys[kept])
    async with ctx.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(ErasureRecord).where(
            ErasureRecord.reason == "retention")) == 3  # 3 + 3 + 2 rows
    assert (await apply_retention(ctx.db, ctx.blobs, NOW)).by_age == 0  # idempotent


@pytest.mark.req("B12")
async def test_a_quota_deletes_the_oldest_but_never_events_or_kept(ctx, owned):
    await service.set_channel_settings(ctx.db, owned.device_id, 0,
                                       service.ChannelSettings(retention_days=30, quota_bytes=450))
    a = await _seg(ctx, owned, 6)
    b = await _seg(ctx, owned, 5, events=service.ALARM)
    c = await _seg(ctx, owned, 4, keep=True)
    d = await _seg(ctx, owned, 3)
    e = await _seg(ctx, owned, 2)
    f = await _seg(ctx, owned, 1)
    report = await apply_retention(ctx.db, ctx.blobs, NOW)
    assert report.by_quota == 2  # 600 bytes > 450: a and d go (b and c are protected)
    assert await _ids(ctx, owned) == {b, c, e, f}


async def test_the_emergency_clean_up_makes_room_oldest_first(ctx, owned, monkeypatch):
    segs = [await _seg(ctx, owned, 10 - i, size=100) for i in range(6)]
    protected = await _seg(ctx, owned, 20, events=service.MOTION)
    freed = []
    real_remove = service.remove_segments

    async def remove_and_count(db, blobs, cond, reason):
        n = await real_remove(db, blobs, cond, reason)
        freed.extend([100] * n)
        return n

    monkeypatch.setattr(service, "remove_segments", remove_and_count)
    # 50 bytes free; every deleted segment frees 100; 250 wanted.
    n = await emergency_cleanup(ctx.db, ctx.blobs, lambda: 50 + sum(freed), 250, batch=1)
    assert n == 2
    assert await _ids(ctx, owned) == set(segs[2:]) | {protected}
    # Nothing deletable left: it stops instead of spinning, the protected segment stays.
    assert await emergency_cleanup(ctx.db, ctx.blobs, lambda: 0, 250, batch=2) == 4
    assert await _ids(ctx, owned) == {protected}


async def test_the_service_runs_retention_as_a_job(app, ctx):
    assert "recordings.retention" in ctx.scheduler.jobs
    assert await ctx.scheduler.run_now("recordings.retention") is not None
