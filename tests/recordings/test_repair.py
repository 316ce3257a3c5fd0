"""The repair pass, case by case: what a crash can leave, and what repair makes of it."""

from __future__ import annotations

import datetime as dt

from faoyam.core.database import new_id, utcnow
from faoyam.core.storage import BlobStore
from faoyam.media.hub import StreamHub
from faoyam.media.recorder import repair, scan_segment, spool_identity
from faoyam.media.testfeed import feed
from faoyam.privacy.blobrefs import sweep_tombstones
from faoyam.recordings import service

from tests.recordings.conftest import decode, increasing


def _fmp4(clip, loops=2) -> tuple[bytes, list[int]]:
    """An init and fragments as the hub makes them; returns the bytes and fragment ends."""
    hub = StreamHub("x")
    sub = hub.subscribe(queue_bytes=1 << 30)
    feed(hub, clip, loops=loops)
    chunks = sub.take()
    ends, pos = [], 0
    for c in chunks:
        pos += len(c)
        ends.append(pos)
    return b"".join(chunks), ends[1:]


async def _writing_row(ctx, owned, spool_dir, key=None) -> tuple[str, str]:
    seg_id, key = new_id(), key or BlobStore.new_key("recording_segment")
    await service.open_segment(ctx.db, segment_id=seg_id, device_id=owned.device_id, channel=0, stream="main",
                               start=utcnow() - dt.timedelta(minutes=1), codec="avc1.64001e", width=320,
                               height=240, backend="local", storage_key=key, writer=spool_identity(spool_dir))
    return seg_id, key


async def test_a_partial_spool_is_cut_at_its_last_whole_fragment(ctx, owned, clip, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    data, ends = _fmp4(clip)
    whole = ends[-3]
    seg_id, key = await _writing_row(ctx, owned, spool)
    (spool / f"{seg_id}.fmp4").write_bytes(data[:whole + 100])  # a fragment half written
    report = await repair(ctx.db, ctx.blobs, spool)
    assert (report.repaired, report.bytes_cut) == (1, 100)
    seg, = await service.segments(ctx.db, owned.device_id, 0)
    assert seg.state == "repaired" and seg.size == whole
    stored = await ctx.blobs.read(key)
    assert stored == data[:whole]
    got = decode(stored)
    assert got.frames == seg.frames and increasing(got.dts)
    assert seg.duration_ms == scan_segment(stored).duration_ms > 0
    assert list(spool.glob("*.fmp4")) == []


async def test_uploaded_but_unrecorded_is_adopted_and_nothing_is_removed(ctx, owned, clip, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    data, _ = _fmp4(clip)
    seg_id, key = await _writing_row(ctx, owned, spool)
    await ctx.blobs.write(key, data)  # the crash came between the upload and the row update
    report = await repair(ctx.db, ctx.blobs, spool)
    assert report.adopted == 1
    seg, = await service.segments(ctx.db, owned.device_id, 0)
    assert (seg.state, seg.size, seg.frames) == ("repaired", len(data), 100)


async def test_rows_without_anything_spools_without_rows_and_orphan_blobs(ctx, owned, clip, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    data, ends = _fmp4(clip)
    await _writing_row(ctx, owned, spool)  # no spool, no blob: nothing to finish it from
    seg2, _ = await _writing_row(ctx, owned, spool)
    (spool / f"{seg2}.fmp4").write_bytes(data[:ends[0] - 10])  # the init and not one whole fragment
    (spool / f"{new_id()}.fmp4").write_bytes(data)  # its row was erased while it was written
    orphan = BlobStore.new_key("recording_segment")
    await ctx.blobs.write(orphan, data)
    other_node, _ = await _writing_row(ctx, owned, tmp_path)  # another worker's: not ours to touch
    report = await repair(ctx.db, ctx.blobs, spool, orphan_grace=dt.timedelta(0))
    assert (report.removed, report.spools_deleted, report.orphans) == (2, 1, 1)
    segs = await service.segments(ctx.db, owned.device_id, 0)
    assert [s.id for s in segs] == [other_node]
    await sweep_tombstones(ctx.db, ctx.blobs, now=utcnow() + dt.timedelta(minutes=1))
    assert not await ctx.blobs.exists(orphan)
    assert list(spool.glob("*.fmp4")) == []
