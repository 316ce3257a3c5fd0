"""The live WebSocket serving a transcoded stream: a token for ``…/main.h264`` (what the web
app mints for a browser without HEVC when the camera has no H.264 sub-stream) gets H.264
made from the camera's H.265 by one shared transcoder, started by the first such viewer
and stopped when the last one leaves; viewers of the camera's own stream still get HEVC."""

from __future__ import annotations


import pytest

from faoyam.media.transcode import h264_stream_of

from .clipfeed import feeding
from .conftest import probe, strictly_increasing, wait_for
from .test_live_ws import CAM, watch, worker, worker_factory  # noqa: F401 - fixtures


def camera(hub, clip):
    return feeding(hub, clip, prefill_ms=1000)


@pytest.mark.req("B4")
async def test_a_transcode_token_gets_h264_from_one_shared_transcoder_stopped_with_its_last_viewer(worker, h265_clip):
    source = worker.hubs.hub(CAM)
    async with camera(source, h265_clip):
        a = await watch(worker.url(h264_stream_of(CAM)))
        b = await watch(worker.url(h264_stream_of(CAM)))
        native = await watch(worker.url(CAM))
        await wait_for(lambda: a.video_samples >= 30 and b.video_samples >= 30 and native.video_samples >= 30,
                       timeout=30, what="frames for every viewer")
        transcoders = worker.live.transcoders
        assert list(transcoders.running) == [CAM], "one transcode for both H.264 viewers"
        transcoder = transcoders.running[CAM]
        assert a.texts[0]["mime"].startswith('video/mp4; codecs="avc1.') and a.texts[0]["tracks"][0]["codec"].startswith("avc1.")
        assert native.texts[0]["mime"].startswith('video/mp4; codecs="hvc1.'), "the camera's own stream as it is"
        await a.ws.close()
        await wait_for(lambda: len(worker.live.sessions) == 2, what="a's session to end")
        assert transcoder.running, "b still watches"
        await b.ws.close()
        await wait_for(lambda: not transcoders.running, what="the transcode to stop with its last viewer")
        await wait_for(lambda: not transcoder.running, what="its worker thread to end")
        assert len(source.subscribers) == 1, "only the native viewer is left on the camera's hub"
        await native.ws.close()
    got = probe(a.data)
    assert got.streams["video"] == ("h264", 320, 240)
    assert got.video[0][2] and got.decoded == len(got.video) >= 30
    assert strictly_increasing([dts for dts, _, _ in got.video])
    assert probe(native.data).streams["video"][0] == "hevc"
