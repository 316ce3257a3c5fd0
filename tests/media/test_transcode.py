"""The on-demand H.265 → H.264 transcode: started by the first H.264 viewer, H.264 out that
decodes to the camera's frames, keyframes where the camera's are, stopped with the last viewer."""

from __future__ import annotations

import asyncio
import contextlib

import av
import pytest

from faoyam.media import ChannelId, StreamHubs
from faoyam.media.testvideo import read_barcode
from faoyam.media.transcode import Transcoders, h264_stream_of

from .clipfeed import feeding
from .conftest import Collector, probe, strictly_increasing, wait_for

CAM = ChannelId("hevc-cam")


@contextlib.asynccontextmanager
async def running_camera(clip, audio: bool = False):
    hubs = StreamHubs()
    async with feeding(hubs.hub(CAM), clip, prefill_ms=1000, speed=2.0, audio=audio):
        yield hubs


def decoded_barcodes(data: bytes) -> tuple[list[int], tuple[int, int]]:
    import io
    codes, size = [], (0, 0)
    with av.open(io.BytesIO(data)) as container:
        for frame in container.decode(video=0):
            codes.append(read_barcode(frame.to_ndarray(format="gray")))
            size = (frame.width, frame.height)
    return codes, size


@pytest.mark.req("B4")
async def test_h265_in_h264_out_with_the_cameras_frames(h265_clip):
    async with running_camera(h265_clip) as hubs:
        transcoders = Transcoders(hubs.hub, width=640)
        viewer = Collector(transcoders.subscribe(CAM))
        await wait_for(lambda: viewer.sub.samples_read >= 40, timeout=30, what="40 transcoded frames")
        viewer.sub.close()
        await viewer.task
        await transcoders.close()
    got = probe(viewer.data)
    assert got.streams["video"] == ("h264", 320, 240), "H.264, never scaled up"
    assert got.video[0][2] and got.decoded == len(got.video) >= 40
    assert strictly_increasing([dts for dts, _, _ in got.video])
    codes, _ = decoded_barcodes(viewer.data)
    steps = [(b - a) % len(h265_clip.packets) for a, b in zip(codes, codes[1:])]
    assert all(step == 1 for step in steps), "the camera's frames, in order, none lost"
    # the camera's keyframes (one a second) stay keyframes: segments line up with its GOP
    keys = [i for i, (_, _, key) in enumerate(got.video) if key]
    assert len(keys) >= 2 and all((codes[k] % 25) == 0 for k in keys)


@pytest.mark.req("B4")
async def test_it_starts_with_the_first_viewer_scales_and_stops_with_the_last(h265_clip):
    async with running_camera(h265_clip) as hubs:
        source = hubs.hub(CAM)
        transcoders = Transcoders(hubs.hub, width=160)
        assert not transcoders.running and len(source.subscribers) == 0
        a = Collector(transcoders.subscribe(CAM))
        b = Collector(transcoders.subscribe(CAM))
        assert len(transcoders.running) == 1 and len(source.subscribers) == 1, "one transcode for all viewers"
        await wait_for(lambda: a.sub.samples_read >= 10 and b.sub.samples_read >= 10, timeout=30, what="frames")
        transcoder = transcoders.running[CAM]
        a.sub.close()
        assert transcoder.running, "one viewer left: still needed"
        b.sub.close()
        await asyncio.gather(a.task, b.task)
        assert not transcoders.running and len(source.subscribers) == 0
        await wait_for(lambda: not transcoder.running, what="the worker thread to end")
        assert h264_stream_of(CAM) not in transcoders.outputs
    _, size = decoded_barcodes(a.data)
    assert size == (160, 120)


async def test_audio_is_copied_into_the_h264_stream():
    from faoyam.media.testvideo import cached_clip
    clip = cached_clip(codec="h265", audio=True, seconds=2.0, gop_seconds=1.0)
    async with running_camera(clip, audio=True) as hubs:
        transcoders = Transcoders(hubs.hub)
        viewer = Collector(transcoders.subscribe(CAM))
        await wait_for(lambda: viewer.sub.samples_read >= 60, timeout=30, what="audio and video")
        viewer.sub.close()
        await viewer.task
        await transcoders.close()
    got = probe(viewer.data)
    assert got.streams["video"][0] == "h264" and got.streams["audio"][0] == "aac"
    assert len(got.audio) >= 10 and strictly_increasing([dts for dts, _, _ in got.audio])
