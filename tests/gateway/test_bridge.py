"""The RTSP bridge: a camera reachable by rtsp:// shows up as a cloud camera; snapshots
are pulled from the live RTSP stream with PyAV. The RTSP server is a real one, served here
(``rtsp_server.py``: RTP/H.264 over RTSP-interleaved TCP), pulled by FFmpeg's client."""

from __future__ import annotations

import base64
import io

import av
import pytest
from PIL import Image

from faoyam.agent.bridge import RtspBridge, load_or_create, redact_url
from faoyam.agent.media import AvSource, SyntheticSource
from faoyam.devices import ports
from faoyam.devices.gateway import factory_register
from tests.gateway.rtsp_server import RtspServer


@pytest.mark.req("B4", "B6")
async def test_rtsp_camera_bridged_as_a_cloud_device(service_factory, tmp_path):
    svc = await service_factory("embedded")
    gw = svc.gateway
    rtsp = await RtspServer().start()
    ident, new = load_or_create(tmp_path / "bridge.json", "Porch")
    assert new
    await factory_register(svc, ident.factory_device())
    bridge = RtspBridge(ident, rtsp.url, "127.0.0.1", svc.mqtt_port).start()
    try:
        await gw.wait_until(lambda: gw.is_connected(ident.serial), 20)
        snap = await gw.command(ident.serial, "snapshot", {"channel": 0}, timeout=20)
        img = Image.open(io.BytesIO(base64.b64decode(snap["jpeg"])))
        assert img.format == "JPEG" and img.size == (320, 240)
        assert rtsp.clients >= 1  # it really pulled the stream
        with pytest.raises(ports.NotSupported):
            await gw.command(ident.serial, "ptz_move", {"channel": 0, "pan": 1})
        assert bridge.config["source"] == f"rtsp://127.0.0.1:{rtsp.port}/live/ch0"  # no credentials kept
        assert "user:secret" not in (tmp_path / "bridge.json").read_text()
    finally:
        await bridge.stop()
        await rtsp.stop()


async def test_rtsp_source_copies_h264_packets_and_file_urls_work(tmp_path):
    rtsp = await RtspServer().start()
    try:
        import asyncio

        pkts = await asyncio.to_thread(lambda: list(AvSource(rtsp.url).packets(0, seconds=1.0)))
        assert pkts and pkts[0].keyframe
    finally:
        await rtsp.stop()
    # the same PyAV path on a recorded file
    path = tmp_path / "clip.mp4"
    src = SyntheticSource(width=160, height=120, fps=10)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        for i in range(10):
            for pkt in s.encode(av.VideoFrame.from_ndarray(src.frame(0, i / 10), format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    jpeg = await AvSource(str(path)).snapshot()
    assert Image.open(io.BytesIO(jpeg)).size == (160, 120)
    assert redact_url("rtsp://admin:pw@10.0.0.2:554/a?x=1") == "rtsp://10.0.0.2:554/a"
