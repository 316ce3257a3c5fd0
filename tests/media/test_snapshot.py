"""Snapshots: the latest keyframe as a JPEG of the right size and picture, decoded once for
many cards, and refused politely when the stream is not running."""

from __future__ import annotations

import asyncio
import io

import httpx
import numpy as np
import pytest
from PIL import Image

from faoyam.media import ChannelId, StreamHubs
from faoyam.media.hls_routes import snapshot_app
from faoyam.media.snapshot import Snapshots
from faoyam.media.snapshot_keeper import SnapshotKeeper
from faoyam.media.testfeed import clip_tracks
from faoyam.media.testvideo import read_barcode

from .clipfeed import ClipFeeder

CAM = ChannelId("cam1")


def last_keyframe_index(clip, frames_fed: int) -> int:
    """The clip frame number (as drawn in its bar code) of the last keyframe fed."""
    fed = [clip.packets[i % len(clip.packets)] for i in range(frames_fed)]
    index = max(i for i, p in enumerate(fed) if p.keyframe)
    return index % len(clip.packets)


def barcode_of(jpeg: bytes) -> int:
    return read_barcode(np.asarray(Image.open(io.BytesIO(jpeg)).convert("L")))


@pytest.mark.req("B4")
@pytest.mark.parametrize("clip_name", ["h264_clip", "h265_clip"])
async def test_the_snapshot_is_the_latest_keyframe(request, clip_name):
    clip = request.getfixturevalue(clip_name)
    hubs = StreamHubs()
    feeder = ClipFeeder(hubs.hub(CAM), clip, audio=False)
    feeder.feed_ms(int(clip.duration_ms * 1.3))  # into the second loop: the keyframe is not the first one
    snapshots = Snapshots(hubs.get)
    jpeg = await snapshots.jpeg(CAM)
    image = Image.open(io.BytesIO(jpeg))
    assert image.format == "JPEG" and image.size == (clip.width, clip.height)
    # frame numbers restart in each loop of the clip: compare within the loop
    assert barcode_of(jpeg) % len(clip.packets) == last_keyframe_index(clip, feeder.video_sent)
    small = Image.open(io.BytesIO(await snapshots.jpeg(CAM, width=160)))
    assert small.size == (160, 120)


async def test_many_cards_at_once_cost_one_decode(h264_clip):
    hubs = StreamHubs()
    feeder = ClipFeeder(hubs.hub(CAM), h264_clip, audio=False)
    feeder.feed_ms(3000)
    snapshots = Snapshots(hubs.get, max_age=0)  # no time-based reuse: only the keyframe's identity
    results = await asyncio.gather(*(snapshots.jpeg(CAM, width=160) for _ in range(20)))
    assert len(set(results)) == 1 and snapshots.decodes == 1
    assert await snapshots.jpeg(CAM, width=160) == results[0] and snapshots.decodes == 1
    before = barcode_of(await snapshots.jpeg(CAM))
    assert snapshots.decodes == 2  # another width is another picture
    feeder.feed_ms(2000)  # a new GOP: a new keyframe
    after = await snapshots.jpeg(CAM)
    assert snapshots.decodes == 3 and barcode_of(after) != before


async def test_within_max_age_a_newer_keyframe_waits(h264_clip):
    hubs = StreamHubs()
    feeder = ClipFeeder(hubs.hub(CAM), h264_clip, audio=False)
    feeder.feed_ms(1000)
    snapshots = Snapshots(hubs.get, max_age=60)
    first = await snapshots.jpeg(CAM)
    feeder.feed_ms(2000)
    assert await snapshots.jpeg(CAM) == first and snapshots.decodes == 1


async def test_a_stream_that_starts_on_request_gives_its_first_keyframe(h264_clip):
    asked = []

    def start_camera(stream):  # what the devices domain does: ask the device to push
        asked.append(stream)
        asyncio.get_running_loop().call_soon(ClipFeeder(hubs.hub(stream), h264_clip).feed_ms, 500)

    hubs = StreamHubs(on_demand=start_camera)
    snapshots = Snapshots(hubs.hub, wait=5)
    jpeg = await snapshots.jpeg(CAM)
    assert asked == [CAM] and barcode_of(jpeg) == 0
    assert not hubs.hub(CAM).subscribers, "the snapshotter does not stay subscribed"


async def test_the_snapshot_route_checks_the_token_and_says_when_the_stream_is_down(h264_clip):
    hubs = StreamHubs()
    app = snapshot_app(Snapshots(hubs.get), lambda token: {"t1": CAM, "t2": ChannelId("off")}.get(token))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        assert (await client.get("/nope.jpg")).status_code == 403
        down = await client.get("/t2.jpg")
        assert down.status_code == 503 and down.json()["code"] == "stream-not-ready"
        ClipFeeder(hubs.hub(CAM), h264_clip).feed_ms(1000)
        ok = await client.get("/t1.jpg?width=200")
        assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(ok.content)).size == (200, 150)
        assert (await client.get("/t1.jpg?width=5")).status_code == 400


async def test_the_cache_stays_bounded_whatever_widths_are_asked(h264_clip):
    hubs = StreamHubs()
    ClipFeeder(hubs.hub(CAM), h264_clip).feed_ms(1000)
    snapshots = Snapshots(hubs.get, max_cached=8)
    for width in range(16, 56, 2):  # twenty different sizes
        assert await snapshots.jpeg(CAM, width=width)
    assert len(snapshots._cache) <= 8
    assert await snapshots.jpeg(CAM, width=54), "the newest are kept"


async def test_a_keyframe_that_does_not_decode_is_a_503_and_the_keeper_keeps_nothing(h264_clip):
    hubs = StreamHubs()
    hub = hubs.hub(CAM)
    hub.configure(clip_tracks(h264_clip, audio=False))
    hub.add(0, 0, 0, True, b"\x00\x00\x00\x05\x65garbage-that-claims-to-be-an-IDR" * 4)  # a lying camera
    hub.flush()
    app = snapshot_app(Snapshots(hubs.get), {"t1": CAM}.get)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/t1.jpg")
    assert r.status_code == 503 and r.json()["code"] == "snapshot-undecodable"
    stored: list = []

    async def store(stream, jpeg):
        stored.append(stream)
        return True

    keeper = SnapshotKeeper(hubs, store, interval=60)
    assert await keeper.pass_once() == 0 and stored == []
    # a good keyframe later: kept (the failed one waits an interval, the next pass of a new keeper takes it)
    ClipFeeder(hub, h264_clip).feed_ms(500)
    assert await SnapshotKeeper(hubs, store, interval=60).pass_once() == 1 and stored == [CAM]
