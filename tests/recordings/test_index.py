"""The recordings index and settings: declared personal data, exported and erased with the
account, deleted by the user; keyframe positions packed compactly for seeking."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest
from sqlalchemy import func, select

from faoyam.core.database import utcnow
from faoyam.core.errors import Problem
from faoyam.core.storage import BlobStore
from faoyam.privacy.export import export_json
from faoyam.privacy.subjects import erase_subject, resolve_subject
from faoyam.recordings import service
from faoyam.recordings.models import RecordingSettings, Segment


def test_keyframes_pack_to_eight_bytes_each_and_seek():
    points = [(0, 1200), (1000, 90_000), (2000, 181_000)]
    packed = service.pack_keyframes(points)
    assert len(packed) == 24
    assert service.unpack_keyframes(packed) == points
    assert service.keyframe_at(packed, 1500) == (1000, 90_000)
    assert service.keyframe_at(packed, 0) == (0, 1200)
    assert service.keyframe_at(packed, 99_999) == (2000, 181_000)
    assert service.keyframe_at(b"", 10) is None


def test_schedule_by_weekday_and_hour():
    monday_9_to_17 = sum(1 << h for h in range(9, 17))
    s = service.ChannelSettings(schedule=[monday_9_to_17, 0, 0, 0, 0, 0, 0])
    assert s.scheduled(dt.datetime(2026, 11, 30, 10, 0))  # a Monday
    assert not s.scheduled(dt.datetime(2026, 11, 30, 8, 59))
    assert not s.scheduled(dt.datetime(2026, 12, 1, 10, 0))  # Tuesday
    assert service.ChannelSettings().scheduled(dt.datetime(2026, 12, 1, 3))
    assert not service.ChannelSettings(mode="off").scheduled(dt.datetime(2026, 12, 1, 3))


@pytest.mark.req("B5", "B12")
async def test_settings_have_defaults_and_refuse_bad_values(ctx, owned):
    assert await service.channel_settings(ctx.db, owned.device_id, 0) == service.ChannelSettings()
    new = service.ChannelSettings(mode="event", destination="both", retention_days=30, quota_bytes=10 << 30,
                                  streams=["main", "sub"])
    await service.set_channel_settings(ctx.db, owned.device_id, 0, new)
    assert await service.channel_settings(ctx.db, owned.device_id, 0) == new
    for bad in (dict(mode="sometimes"), dict(destination="moon"), dict(streams=["sub"]), dict(retention_days=0),
                dict(quota_bytes=-1), dict(schedule=[1, 2, 3])):
        with pytest.raises(Problem) as err:
            await service.set_channel_settings(ctx.db, owned.device_id, 0, service.ChannelSettings(**bad))
        assert err.value.status == 422
    assert await service.channel_settings(ctx.db, owned.device_id, 0) == new  # nothing half-written


async def _segment(ctx, owned, start: dt.datetime, data: bytes = b"\0\0\0\x08free", **kw) -> Segment:
    seg_id = kw.pop("segment_id", None) or f"{start.timestamp():032.0f}"[-32:]
    key = BlobStore.new_key("recording_segment")
    await ctx.blobs.write(key, data)
    await service.open_segment(ctx.db, segment_id=seg_id, device_id=owned.device_id, channel=kw.pop("channel", 0),
                               stream="main", start=start, codec="avc1.64001e", width=320, height=240,
                               backend=ctx.settings.blob_backend, storage_key=key)
    await service.finish_segment(ctx.db, seg_id, service.SegmentInfo(
        end=start + dt.timedelta(seconds=60), duration_ms=60_000, size=len(data), init_size=0, fragments=60,
        frames=1500, keyframes=service.pack_keyframes([(0, 0)]), **kw))
    async with ctx.db.session() as s:
        return await s.get(Segment, seg_id)


@pytest.mark.req("B5", "B12", "R1", "R3")
async def test_segments_are_exported_and_erased_with_the_account(ctx, owned):
    marker = b"\0\0\0\x10free" + b"SEGMENT-MARKER"
    seg = await _segment(ctx, owned, utcnow() - dt.timedelta(hours=1), marker)
    await service.set_channel_settings(ctx.db, owned.device_id, 0, service.ChannelSettings(retention_days=9))
    async with ctx.db.session() as s:
        subject = await resolve_subject(s, owned.user_id)
    doc = json.loads(b"".join([c async for c in export_json(ctx.db, ctx.blobs, subject)]))
    text = json.dumps(doc)
    assert seg.storage_key in text and "recording_segments" in text and "recording_settings" in text
    assert base64.b64encode(marker).decode() in text  # the video itself is in the export
    await erase_subject(ctx.db, ctx.blobs, subject)
    async with ctx.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(Segment)) == 0
        assert await s.scalar(select(func.count()).select_from(RecordingSettings)) == 0
    assert not await ctx.blobs.exists(seg.storage_key)


@pytest.mark.req("B5", "R3")
async def test_the_user_deletes_a_range_or_everything(ctx, owned):
    t0 = utcnow() - dt.timedelta(hours=5)
    segs = [await _segment(ctx, owned, t0 + dt.timedelta(minutes=i), segment_id=f"seg{i:029d}") for i in range(5)]
    removed = await service.delete_recordings(ctx.db, ctx.blobs, owned.device_id, 0,
                                              start=t0 + dt.timedelta(minutes=1, seconds=30),
                                              end=t0 + dt.timedelta(minutes=3))
    assert removed == 2  # minutes 1 and 2 overlap [1:30, 3:00)
    left = await service.segments(ctx.db, owned.device_id, 0)
    assert [s.id for s in left] == [segs[0].id, segs[3].id, segs[4].id]
    assert not await ctx.blobs.exists(segs[1].storage_key)
    assert await ctx.blobs.exists(segs[0].storage_key)
    assert await service.delete_recordings(ctx.db, ctx.blobs, owned.device_id, 0) == 3
    assert [k async for k in ctx.blobs.keys("recording_segment/")] == []


async def test_finishing_a_segment_whose_row_was_erased_says_so(ctx, owned):
    seg = await _segment(ctx, owned, utcnow())
    await service.remove_segment(ctx.db, ctx.blobs, seg.id, "test")
    info = service.SegmentInfo(end=utcnow(), duration_ms=1, size=1, init_size=0, fragments=1, frames=1, keyframes=b"")
    assert await service.finish_segment(ctx.db, seg.id, info) is False
