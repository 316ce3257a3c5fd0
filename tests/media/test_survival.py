"""What real cameras do to the ingest, end to end over RTMP into the hub and out to a
viewer as fMP4 (checked with PyAV): timestamps that go backwards or are missing, B-frames,
a new resolution mid-stream, and a camera that goes silent — longer than the idle timeout
(configurable: a fraction of a second here, not a real minute) — and comes back."""

from __future__ import annotations

import dataclasses

import pytest

from faoyam.media import ChannelId, RtmpServer, StreamHubs
from faoyam.media.rtmp_publisher import RtmpPublisher
from faoyam.media.testvideo import cached_clip

from .conftest import Collector, probe, push, strictly_increasing, wait_for

CAM = ChannelId("cam1")


async def _publisher(ingest) -> RtmpPublisher:
    publisher = RtmpPublisher(ingest.url())
    await publisher.connect()
    return publisher


@pytest.mark.req("B4")
@pytest.mark.parametrize("damage", ["backwards", "missing"])
async def test_backwards_or_missing_timestamps_reach_the_viewer_monotonic(ingest, h264_clip, damage):
    """The second pass of the clip restarts at 0 (a camera whose clock jumped back) or has
    every timestamp 0 (a camera that sends none); the viewer still gets strictly
    increasing decode times and every frame decodes — B-frames (the clip has them) included."""
    viewer = Collector(ingest.hub().subscribe())
    publisher = await _publisher(ingest)
    publisher.send_configs(h264_clip)
    video = h264_clip.packets
    assert any(p.cts for p in video), "the clip has B-frames (composition offsets)"
    for packet in video:
        publisher.send_video(h264_clip.codec, packet)
    for packet in video:
        dts = packet.dts if damage == "backwards" else 0
        publisher.send_video(h264_clip.codec, dataclasses.replace(packet, dts=dts))
    await publisher.drain()
    await wait_for(lambda: viewer.sub.samples_read >= 2 * len(video), what="every frame at the viewer")
    await publisher.close()
    got = probe(viewer.data)
    assert len(got.video) == 2 * len(video)
    assert got.decoded == len(got.video), "every frame decodes"
    assert strictly_increasing([d for d, _, _ in got.video])
    # the viewer's presentation order within the damaged pass is the camera's (B-frames kept)
    assert sum(1 for d, p, _ in got.video if p > d) >= sum(1 for p in video if p.cts)


def _init_segments(data: bytes) -> list[bytes]:
    """The byte stream cut before each ``ftyp`` box (each init segment and its fragments)."""
    starts = []
    pos = data.find(b"ftyp")
    while pos >= 0:
        starts.append(pos - 4)
        pos = data.find(b"ftyp", pos + 4)
    return [data[a:b] for a, b in zip(starts, starts[1:] + [len(data)])]


@pytest.mark.req("B4")
async def test_a_new_resolution_mid_stream_gives_the_viewer_a_new_init_segment(ingest, h264_clip):
    small = cached_clip(width=160, height=128, seconds=2.0, gop_seconds=1.0)
    viewer = Collector(ingest.hub().subscribe())
    publisher = await _publisher(ingest)
    publisher.send_configs(h264_clip)
    for packet in h264_clip.packets:
        publisher.send_video(h264_clip.codec, packet)
    await publisher.drain()
    # The viewer has read the first picture size before the change: the hub replaces what a
    # viewer still has *queued* from before a new init segment (docs/live-view.md).
    await wait_for(lambda: viewer.sub.samples_read >= len(h264_clip.packets), what="the first part")
    offset = h264_clip.packets[-1].dts + 40
    publisher.send_configs(small)  # the camera switched to a smaller picture
    for packet in small.packets:
        publisher.send_video(small.codec, dataclasses.replace(packet, dts=packet.dts + offset))
    await publisher.drain()
    total = len(h264_clip.packets) + len(small.packets)
    await wait_for(lambda: ingest.hub().samples_in >= total, what="both parts at the hub")
    await publisher.close()  # the end of the stream sends out what the muxer still holds
    await wait_for(lambda: viewer.sub.samples_read >= total, what="both parts at the viewer")
    parts = _init_segments(viewer.data)
    assert len(parts) == 2, "one new init segment at the change"
    first, second = probe(parts[0]), probe(parts[1])
    assert first.streams["video"] == ("h264", 320, 240) and len(first.video) == first.decoded == len(h264_clip.packets)
    assert second.streams["video"] == ("h264", 160, 128) and len(second.video) == second.decoded == len(small.packets)
    assert second.video[0][2], "the new part starts at a keyframe"
    assert second.video[0][0] > first.video[-1][0], "and continues the timeline"


@pytest.mark.req("B4")
async def test_a_camera_silent_past_the_idle_timeout_is_dropped_and_its_viewer_gets_it_back(h264_clip):
    """A camera that sends nothing (here for longer than a 0.4 s idle timeout, standing in
    for a minute) is disconnected; the viewer stays subscribed, and when the camera
    reconnects the same viewer receives decodable video again."""
    hubs = StreamHubs()
    server = await RtmpServer(hubs, lambda app, key: CAM, read_interval=0.05, idle_timeout=0.4).start()
    try:
        hub = hubs.hub(CAM)
        viewer = Collector(hub.subscribe())
        url = f"rtmp://127.0.0.1:{server.port}/live/k"
        silent = await push(url, h264_clip, close=False)
        per_push = len(h264_clip.packets) + len(h264_clip.audio_packets)
        await wait_for(lambda: viewer.sub.samples_read >= per_push, what="the first push")
        await wait_for(lambda: hub.publisher is None, what="the idle timeout")
        assert viewer.sub.closed_reason is None
        await silent.close()
        before = viewer.sub.samples_read
        await push(url, h264_clip)  # the camera is back
        await wait_for(lambda: viewer.sub.samples_read >= before + per_push, what="video again")
        got = probe(viewer.data)
        assert got.decoded == len(got.video) >= 2 * len(h264_clip.packets)
        assert strictly_increasing([d for d, _, _ in got.video])
    finally:
        await server.close()
