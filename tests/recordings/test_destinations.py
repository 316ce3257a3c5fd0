"""Where recordings go: the box, the cloud, or both (B12). The deployment's store (the box:
the local directory, or S3 on the S3 leg) and a cloud S3 store (SeaweedFS), as
``TwoStores``: each segment lands where its channel says, reads find it, and deleting it
removes it from every store it was in."""

from __future__ import annotations

import pytest
import pytest_asyncio

from faoyam.core.storage import BlobNotFound
from faoyam.core.storage_two import TwoStores
from faoyam.media.hub import StreamHubs
from faoyam.media.recorder import Recorder
from faoyam.media.testfeed import feed
from faoyam.privacy.blobrefs import sweep_tombstones
from faoyam.recordings import service

from tests.recordings.conftest import decode, make_owned, wait_for


@pytest_asyncio.fixture
async def two(ctx, s3_server):
    cloud = await s3_server.fresh_store()
    box = ctx.blobs
    ctx.blobs = TwoStores(box, cloud)  # what make_blob_store gives with recording_cloud_bucket set
    yield box, cloud
    ctx.blobs = box
    await cloud.close()


async def _has(store, key: str) -> bool:
    try:
        await store.stat(key)
    except BlobNotFound:
        return False
    return True


@pytest.mark.req("B12")
async def test_each_channel_records_to_its_destination_and_deleting_removes_every_copy(ctx, two, tmp_path, clip):
    box, cloud = two
    rec = Recorder(ctx.db, ctx.blobs, StreamHubs(), tmp_path / "spool", backend=ctx.settings.blob_backend,
                   segment_s=60.0, flush_s=0.2)
    owners = {dest: await make_owned(ctx) for dest in ("local", "cloud", "both")}
    try:
        for dest, owned in owners.items():
            await service.set_channel_settings(ctx.db, owned.device_id, 0, service.ChannelSettings(destination=dest))
        await rec.sync()
        for owned in owners.values():
            feed(rec.hubs.get(owned.channel()), clip, loops=1)
        for owned in owners.values():
            ch = rec.channels[owned.channel()]
            await wait_for(lambda: ch.segment is not None and ch.segment.frames == 50, what="recorded")
            await rec.stop_recording(owned.channel())
        await rec.drain()
    finally:
        await rec.close()
    where = {}
    for dest, owned in owners.items():
        (seg,) = await service.segments(ctx.db, owned.device_id, 0)
        where[dest] = (await _has(box, seg.storage_key), await _has(cloud, seg.storage_key), seg.backend)
        got = decode(await ctx.blobs.read(seg.storage_key))  # found wherever it is
        assert got.frames == seg.frames == 50
    assert where == {"local": (True, False, ctx.settings.blob_backend), "cloud": (False, True, "s3"),
                     "both": (True, True, "both")}
    listed = {k async for k in ctx.blobs.keys("recording_segment/")}
    assert len(listed) == 3  # each once, "both" too
    # The user deletes them: gone from every store.
    keys = []
    for owned in owners.values():
        keys += [s.storage_key for s in await service.segments(ctx.db, owned.device_id, 0)]
        assert await service.delete_recordings(ctx.db, ctx.blobs, owned.device_id, 0) == 1
    await sweep_tombstones(ctx.db, ctx.blobs)
    for key in keys:
        assert not await _has(box, key) and not await _has(cloud, key)


async def test_without_a_cloud_store_every_destination_is_the_deployments_store(ctx, recorder):
    key, backend = recorder.segment_key("both")
    assert "/" in key and not key.split("/")[1].startswith(("both-", "cloud-"))
    assert backend == ctx.settings.blob_backend
