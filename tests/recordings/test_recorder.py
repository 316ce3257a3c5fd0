"""The recorder: hub → fMP4 segments in the blob store, indexed; verified with PyAV."""

from __future__ import annotations

import asyncio

import pytest

from faoyam.core.storage import BlobStore, StorageFull
from faoyam.media.recorder import scan_segment
from faoyam.media.testfeed import feed
from faoyam.recordings import service

from tests.recordings.conftest import decode, increasing, wait_for


async def _segments(ctx, owned, **kw):
    return await service.segments(ctx.db, owned.device_id, 0, **kw)


async def _check_segment(ctx, seg, codec="h264"):
    """The blob decodes, timestamps rise, and the index tells the truth about it."""
    data = await ctx.blobs.read(seg.storage_key)
    assert len(data) == seg.size
    got = decode(data)
    assert got.codec == codec and (got.width, got.height) == (seg.width, seg.height)
    assert got.frames == seg.frames == got.packets
    assert increasing(got.dts)
    span_ms = (got.dts[-1] - got.dts[0]) * 1000 + 40  # plus the last frame's 40 ms
    assert abs(span_ms - seg.duration_ms) <= 41
    scan = scan_segment(data)
    assert scan.good_size == len(data) and scan.fragments == seg.fragments
    points = service.unpack_keyframes(seg.keyframes)
    assert points and points[0] == (0, seg.init_size)
    for _, offset in points:
        assert data[offset + 4:offset + 8] == b"moof"
    return got


@pytest.mark.req("B5", "B12")
async def test_a_stream_is_recorded_as_segments_that_decode(ctx, owned, recorder, clip):
    channel = owned.channel()
    rec = recorder.record(channel)
    assert recorder.demand == [channel]  # the recorder makes the stream wanted
    hub = recorder.hubs.get(channel)
    frames = feed(hub, clip, loops=5)  # 10 s, keyframe every second
    await wait_for(lambda: rec.segments_closed == 3 and rec.segment is not None and rec.segment.frames == 25,
                   what="recorder caught up", state=lambda: (rec.segments_closed, rec.segment and rec.segment.frames, rec.status, rec.fragments_dropped, rec.lags))
    await recorder.stop_recording(channel)
    await recorder.drain()
    segs = await _segments(ctx, owned)
    # 3 s segments, cut at the first keyframe after 3 s: 3 + 3 + 3 + 1.
    assert [s.state for s in segs] == ["complete"] * 4
    assert [round(s.duration_ms / 1000) for s in segs] == [3, 3, 3, 1]
    assert sum(s.frames for s in segs) == frames
    for a, b in zip(segs, segs[1:]):
        assert b.start == a.end  # contiguous: no gap, no overlap
    for seg in segs:
        await _check_segment(ctx, seg)
        assert seg.codec.startswith("avc1.") and seg.backend == ctx.settings.blob_backend
    assert list(recorder.spool_dir.glob("*.fmp4")) == []  # every spool stored and removed


@pytest.mark.req("B5")
async def test_a_codec_change_starts_a_segment_with_its_own_init(ctx, owned, recorder, clip, clip_h265):
    channel = owned.channel()
    rec = recorder.record(channel)
    hub = recorder.hubs.get(channel)
    feed(hub, clip, loops=1)
    await wait_for(lambda: rec.segment is not None and rec.segment.frames == 50, what="H.264 recorded")
    feed(hub, clip_h265, loops=1)
    await wait_for(lambda: rec.segment is not None and rec.segment.frames == 50 and rec.codec.startswith("hvc1"),
                   what="H.265 recorded")
    await recorder.stop_recording(channel)
    await recorder.drain()
    segs = await _segments(ctx, owned)
    assert [s.codec[:4] for s in segs] == ["avc1", "hvc1"]
    assert [(s.width, s.height) for s in segs] == [(320, 240), (352, 288)]
    await _check_segment(ctx, segs[0], "h264")
    await _check_segment(ctx, segs[1], "hevc")


@pytest.mark.req("B5")
async def test_a_gap_is_a_gap_not_stretched(ctx, owned, recorder, clip, clock):
    channel = owned.channel()
    rec = recorder.record(channel)
    hub = recorder.hubs.get(channel)
    feed(hub, clip, loops=1)
    await wait_for(lambda: rec.segment is not None and rec.segment.frames == 50, what="first part")
    clock.advance(60)  # the camera was away a minute; the hub's timeline just continues
    feed(hub, clip, loops=1)
    await wait_for(lambda: rec.segments_closed == 1 and rec.segment is not None and rec.segment.frames == 50,
                   what="second part")
    await recorder.stop_recording(channel)
    await recorder.drain()
    first, second = await _segments(ctx, owned)
    assert first.duration_ms == second.duration_ms == 2000
    gap = (second.start - first.end).total_seconds()
    assert 55 < gap < 61


async def test_the_hub_never_waits_for_a_slow_store_and_the_channel_pauses(ctx, owned, recorder, clip, monkeypatch):
    """Uploads that hang: the channel pauses (visible status) once max_pending segments wait,
    a viewer of the same hub gets every fragment, and recording resumes when the store does."""
    gate = asyncio.Event()
    real_open = ctx.blobs.open_writer

    class Held:
        def __init__(self, key):
            self.inner = real_open(key)

        async def __aenter__(self):
            await gate.wait()
            return await self.inner.__aenter__()

        async def __aexit__(self, *exc):
            return await self.inner.__aexit__(*exc)

    monkeypatch.setattr(ctx.blobs, "open_writer", Held)
    real_adopt = ctx.blobs.adopt

    async def adopt(key, path, chunk_size=1 << 20):  # the local store renames: hold that too
        await gate.wait()
        return await real_adopt(key, path, chunk_size)

    monkeypatch.setattr(ctx.blobs, "adopt", adopt)
    recorder.max_pending = 3
    channel = owned.channel()
    rec = recorder.record(channel)
    hub = recorder.hubs.get(channel)
    viewer = hub.subscribe()
    feed(hub, clip, loops=10)  # 20 s: 6 segments of 3 s, but only 3 may wait
    await wait_for(lambda: rec.status == "paused: storage too slow", what="paused")
    assert ("paused: storage too slow" in [s for _, s in recorder.statuses])
    assert viewer.lags == 0 and sum(1 for _ in viewer.take()) > 0  # the viewer lost nothing
    gate.set()
    await wait_for(lambda: rec.pending == 0, what="uploads done")
    feed(hub, clip, loops=2)
    await wait_for(lambda: rec.status == "recording", what="resumed")
    await recorder.stop_recording(channel)
    await recorder.drain()
    segs = await _segments(ctx, owned)
    assert len(segs) >= 4 and [s.state for s in segs] == ["complete"] * len(segs)
    for seg in segs:
        await _check_segment(ctx, seg)


@pytest.mark.req("B12")
async def test_a_failing_store_pauses_the_channel_and_what_was_written_stays_valid(ctx, owned, recorder, clip,
                                                                                   monkeypatch):
    real_open = ctx.blobs.open_writer
    failing = {"on": False}

    def open_writer(key):
        if failing["on"]:
            raise StorageFull(28, "blob store is full")
        return real_open(key)

    monkeypatch.setattr(ctx.blobs, "open_writer", open_writer)
    real_adopt = ctx.blobs.adopt

    async def adopt(key, path, chunk_size=1 << 20):  # the local store renames: fail that too
        if failing["on"]:
            raise StorageFull(28, "blob store is full")
        return await real_adopt(key, path, chunk_size)

    monkeypatch.setattr(ctx.blobs, "adopt", adopt)
    channel = owned.channel()
    rec = recorder.record(channel)
    hub = recorder.hubs.get(channel)
    feed(hub, clip, loops=2)  # 4 s: one segment stored
    await wait_for(lambda: recorder.uploaded == 1, what="first segment stored")
    failing["on"] = True
    feed(hub, clip, loops=2)
    await wait_for(lambda: rec.status == "paused: storage full", what="paused")
    assert (channel, "paused: storage full") in recorder.statuses  # the alarms issue hooks in here
    stored = (await _segments(ctx, owned))[0]
    await _check_segment(ctx, stored)  # untouched by the failures
    failing["on"] = False
    await wait_for(lambda: rec.upload_failing is None and rec.pending == 0, what="retried")
    feed(hub, clip, loops=2)
    await wait_for(lambda: rec.status == "recording", what="resumed")
    await recorder.stop_recording(channel)
    await recorder.drain()
    segs = await _segments(ctx, owned)
    assert all(s.state == "complete" for s in segs) and len(segs) >= 3
    for seg in segs:
        await _check_segment(ctx, seg)


async def test_a_full_local_disk_cuts_the_spool_at_the_last_whole_write(ctx, owned, recorder, clip, clock):
    channel = owned.channel()
    rec = recorder.record(channel)
    hub = recorder.hubs.get(channel)
    real_write = recorder.spool_write
    writes = []

    def spool_write(fh, data):
        writes.append(len(data))
        if len(writes) == 3:
            fh.write(data[: len(data) // 2])  # half of it fits, then the disk is full
            raise OSError(28, "No space left on device")
        real_write(fh, data)

    recorder.spool_write = spool_write
    recorder.segment_s = 60.0
    for n in (1, 2, 3):
        # Each part is 2 s of media read in one batch: more than flush_s, so written at once.
        feed(hub, clip, loops=1)
        await wait_for(lambda: len(writes) == n, what=f"write {n}")
    await wait_for(lambda: rec.status == "paused: local disk full", what="paused")
    await wait_for(lambda: rec.pending == 0 and recorder.uploaded == 1, what="the part that fits stored")
    seg, = await _segments(ctx, owned)
    assert seg.frames == 100  # the two whole writes; the half-written third one is cut off
    await _check_segment(ctx, seg)
    clock.advance(5)  # the retry delay has passed: recording resumes at the next keyframe
    feed(hub, clip, loops=1)
    await wait_for(lambda: rec.status == "recording", what="resumed")
    await recorder.stop_recording(channel)
    await recorder.drain()
    segs = await _segments(ctx, owned)
    assert len(segs) == 2
    for seg in segs:
        await _check_segment(ctx, seg)


@pytest.mark.req("B5")
async def test_the_settings_say_which_channels_record(ctx, owned, recorder):
    main, sub = owned.channel(), owned.channel(stream="sub")
    assert await recorder.sync() == set()  # no settings: nothing is recorded
    await service.set_channel_settings(ctx.db, owned.device_id, 0, service.ChannelSettings(streams=["main", "sub"]))
    assert await recorder.sync() == {main, sub}
    assert set(recorder.channels) == {main, sub} and set(recorder.demand) == {main, sub}
    never = service.ChannelSettings(schedule=[0] * 7)
    await service.set_channel_settings(ctx.db, owned.device_id, 0, never)
    assert await recorder.sync() == set()
    assert recorder.channels == {} and recorder.status(main) == "off"


async def test_the_recorder_cleans_up_when_the_local_disk_is_nearly_full(ctx, owned, recorder, clip):
    channel = owned.channel()
    rec = recorder.record(channel)
    feed(recorder.hubs.get(channel), clip, loops=4)
    await wait_for(lambda: rec.segments_closed >= 2 and recorder.uploaded >= 2, what="two segments stored")
    recorder.free_bytes, recorder.min_free_bytes = (lambda: 0), 1
    # Local segments go, oldest first (the one being written stays); S3 is not this disk.
    assert await recorder.check_disk() == (2 if ctx.settings.blob_backend == "local" else 0)
    recorder.free_bytes = lambda: 10
    assert await recorder.check_disk() == 0


async def test_a_closed_segment_is_renamed_into_the_local_store_not_copied(ctx, owned, recorder, clip, monkeypatch):
    """The local backend adopts the spool file (same inode: no byte copied); S3 streams it."""
    inodes: dict[str, int] = {}
    real_adopt = ctx.blobs.adopt

    async def adopt(key, path, chunk_size=1 << 20):
        inodes[key] = path.stat().st_ino
        return await real_adopt(key, path, chunk_size)

    monkeypatch.setattr(ctx.blobs, "adopt", adopt)
    channel = owned.channel()
    rec = recorder.record(channel)
    feed(recorder.hubs.get(channel), clip, loops=2)
    await wait_for(lambda: rec.segment is not None and rec.segment.frames == 25, what="recorded")
    await recorder.stop_recording(channel)
    await recorder.drain()
    segs = await _segments(ctx, owned)
    assert len(segs) == 2 and set(inodes) == {s.storage_key for s in segs}
    for seg in segs:
        await _check_segment(ctx, seg)
        if ctx.settings.blob_backend == "local":
            assert ctx.blobs._path(seg.storage_key).stat().st_ino == inodes[seg.storage_key]
    assert list(recorder.spool_dir.glob("*.fmp4")) == []


async def test_a_database_that_refuses_the_finished_row_a_moment_is_asked_again(ctx, owned, recorder, clip, monkeypatch):
    """The blob is stored but the row update fails (SQLite busy under load): retried, so the
    row ends complete instead of staying 'writing' until the next start's repair."""
    real = service.finish_segment
    refusals = []

    async def finish(db, seg_id, info, **kw):
        if len(refusals) < 2:
            refusals.append(seg_id)
            raise RuntimeError("database is locked")
        return await real(db, seg_id, info, **kw)

    monkeypatch.setattr(service, "finish_segment", finish)
    channel = owned.channel()
    rec = recorder.record(channel)
    feed(recorder.hubs.get(channel), clip, loops=1)
    await wait_for(lambda: rec.segment is not None and rec.segment.frames == 50, what="recorded")
    await recorder.stop_recording(channel)
    await recorder.drain()
    (seg,) = await _segments(ctx, owned)
    assert len(refusals) == 2 and seg.state == "complete"
    await _check_segment(ctx, seg)
