"""RTSP pull: a camera's RTSP URL into its hub — from the in-repo test server (TCP
interleaved) and from GStreamer's RTSP server (UDP and TCP, H.264 and H.265); frames arrive,
decode, and none is lost between the puller and the hub; a broken connection is re-opened
and the viewer stays."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from faoyam.media import ChannelId, StreamHub
from faoyam.media.annexb import AnnexBConverter, hvcc_record, split_annexb
from faoyam.media.tracks import h265_track
from faoyam.media.rtsp_pull import RtspPull

from ..gateway.rtsp_server import RtspServer
from .conftest import Collector, probe, strictly_increasing, wait_for

CAM = ChannelId("lan-cam")
GST_SERVER = Path(__file__).with_name("gst_rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def gstreamer_rtsp_available() -> bool:
    if not os.path.exists(SYSTEM_PYTHON):
        return False
    check = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return subprocess.run([SYSTEM_PYTHON, "-c", check], capture_output=True).returncode == 0


@contextlib.asynccontextmanager
async def gstreamer_rtsp(codec: str, audio: str = ""):
    proc = await asyncio.create_subprocess_exec(SYSTEM_PYTHON, str(GST_SERVER), codec, audio,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    try:
        port = int(await asyncio.wait_for(proc.stdout.readline(), 20))
        yield f"rtsp://127.0.0.1:{port}/cam"
    finally:
        proc.terminate()
        await proc.wait()


@contextlib.asynccontextmanager
async def pulling(url: str, **options):
    hub = StreamHub(CAM)
    viewer = Collector(hub.subscribe())
    pull = RtspPull(url, hub, **options).start()
    try:
        yield hub, viewer, pull
    finally:
        await pull.wait_stopped()
        viewer.sub.close()
        await viewer.task


def check_received(viewer: Collector, pull: RtspPull, codec: str, size: tuple[int, int]):
    got = probe(viewer.data)
    assert got.streams["video"] == (codec, *size)
    assert got.video[0][2], "the viewer starts at a keyframe"
    assert got.decoded == len(got.video), "every frame decodes"
    assert strictly_increasing([dts for dts, _, _ in got.video])
    return got


@pytest.mark.req("B4")
async def test_pull_from_the_in_repo_rtsp_server_over_tcp():
    server = await RtspServer(fps=10).start()
    try:
        async with pulling(server.url, transport="tcp") as (hub, viewer, pull):
            await wait_for(lambda: pull.video_packets >= 25, timeout=30, what="25 frames")
            pull.stop()
            await pull.wait_stopped()
            hub.flush()
            await asyncio.sleep(0)
            await wait_for(lambda: viewer.sub.samples_read >= pull.video_packets, what="the viewer to catch up")
            got = check_received(viewer, pull, "h264", (320, 240))
            assert hub.samples_in == pull.video_packets
            # each frame is one fragment; the viewer skips only what came before the first keyframe
            assert len(got.video) == pull.video_packets - viewer.sub.skipped_fragments, "nothing lost"
    finally:
        await server.stop()


class CuttableProxy:
    """A TCP proxy whose connections the test can cut (a camera's network dropping)."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.writers: list[asyncio.StreamWriter] = []
        self.connections = 0

    async def start(self):
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _client(self, reader, writer):
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src, dst):
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self):
        for w in self.writers:
            w.transport.abort()
        self.writers = []

    async def stop(self):
        self.cut()
        self.server.close()


async def test_a_lost_connection_is_reopened_and_the_viewer_stays():
    server = await RtspServer(fps=10).start()
    proxy = await CuttableProxy(server.port).start()
    try:
        url = f"rtsp://127.0.0.1:{proxy.port}/live/ch0"
        async with pulling(url, transport="tcp", backoff=(0.2, 1.0), read_timeout=2) as (hub, viewer, pull):
            await wait_for(lambda: pull.video_packets >= 10, timeout=30, what="frames before the cut")
            before = pull.video_packets
            proxy.cut()
            await wait_for(lambda: pull.connects >= 2 and pull.video_packets >= before + 15, timeout=30,
                           what="frames after reconnecting")
            assert viewer.sub.closed_reason is None and viewer.sub in hub.subscribers
        got = probe(viewer.data)
        assert got.decoded == len(got.video) >= before + 15
        assert strictly_increasing([dts for dts, _, _ in got.video]), "time stays monotonic across the reconnect"
    finally:
        await proxy.stop()
        await server.stop()


needs_gstreamer = pytest.mark.skipif(not gstreamer_rtsp_available(), reason="GStreamer's RTSP server not installed")


@needs_gstreamer
@pytest.mark.req("B4")
@pytest.mark.parametrize("codec, transport", [("h264", "udp"), ("h264", "tcp"), ("h265", "udp"), ("h265", "tcp")])
async def test_pull_from_gstreamers_rtsp_server(codec, transport):
    async with gstreamer_rtsp(codec) as url, pulling(url, transport=transport) as (hub, viewer, pull):
        await wait_for(lambda: pull.video_packets >= 50, timeout=40, what="50 frames")
        await wait_for(lambda: viewer.sub.samples_read >= 40, what="the viewer to read")
    got = check_received(viewer, pull, "h264" if codec == "h264" else "hevc", (320, 240))
    assert len(got.video) >= 40
    assert hub.muxer.tracks[0].codec == ("avc1" if codec == "h264" else "hvc1")


@needs_gstreamer
@pytest.mark.parametrize("audio, transport, codec", [("aac", "tcp", "aac"), ("alaw", "udp", "pcm_alaw")])
async def test_pulled_audio_arrives_with_the_video(audio, transport, codec):
    async with gstreamer_rtsp("h264", audio) as url, pulling(url, transport=transport) as (hub, viewer, pull):
        await wait_for(lambda: pull.video_packets >= 40 and pull.audio_packets >= 20, timeout=40,
                       what="audio and video")
        await wait_for(lambda: viewer.sub.samples_read >= 40, what="the viewer to read")
    got = check_received(viewer, pull, "h264", (320, 240))
    assert got.streams["audio"][0] == codec
    assert len(got.audio) >= 10 and strictly_increasing([dts for dts, _, _ in got.audio])


def test_parameter_sets_in_band_make_the_track_and_a_new_size_a_new_one(h264_clip):
    from faoyam.media.testvideo import cached_clip
    other = cached_clip(width=160, height=120, seconds=1.0, gop_seconds=1.0)

    def annexb(clip, packet):
        units = split_annexb(b"".join(b"\x00\x00\x00\x01" + u for u in _records(clip.config)))
        sample = packet.data
        body, pos = [], 0
        while pos < len(sample):
            n = int.from_bytes(sample[pos:pos + 4], "big")
            body.append(sample[pos + 4:pos + 4 + n])
            pos += 4 + n
        return b"".join(b"\x00\x00\x00\x01" + u for u in units + body)

    conv = AnnexBConverter("h264")  # nothing from the SDP: parameter sets come with the keyframe
    assert conv.convert(b"\x00\x00\x01\x41\x9a\x01") is None, "a slice before any SPS cannot be used"
    sample, key = conv.convert(annexb(h264_clip, h264_clip.packets[0]))
    assert key and conv.changed and (conv.track.width, conv.track.height) == (320, 240)
    conv.convert(annexb(h264_clip, h264_clip.packets[0]))
    assert not conv.changed
    conv.convert(annexb(other, other.packets[0]))
    assert conv.changed and (conv.track.width, conv.track.height) == (160, 120)


def _records(avcc: bytes) -> list[bytes]:
    """SPS and PPS of an avcC record (for building an Annex B stream in the test)."""
    units, pos = [], 6
    for count_pos in (5, None):
        count = avcc[5] & 0x1F if count_pos else avcc[pos]
        if count_pos is None:
            pos += 1
        for _ in range(count):
            n = int.from_bytes(avcc[pos:pos + 2], "big")
            units.append(avcc[pos + 2:pos + 2 + n])
            pos += 2 + n
    return units


def test_an_hvcc_record_built_from_parameter_sets_matches_ffmpegs(h265_clip):
    config, arrays, pos = h265_clip.config, {}, 23
    for _ in range(config[22]):
        kind, count = config[pos] & 0x3F, int.from_bytes(config[pos + 1:pos + 3], "big")
        pos += 3
        for _ in range(count):
            n = int.from_bytes(config[pos:pos + 2], "big")
            arrays.setdefault(kind, []).append(config[pos + 2:pos + 2 + n])
            pos += 2 + n
    ours = h265_track(hvcc_record(arrays[32], arrays[33], arrays[34]))
    theirs = h265_track(config)
    assert ours.mime_codec == theirs.mime_codec  # profile, tier, level, constraints: what Safari checks
    assert (ours.width, ours.height) == (theirs.width, theirs.height)
    assert ours.config[:13] == config[:13] and ours.config[16:18] == config[16:18]  # PTL, chroma, bit depths


# VLC ---------------------------------------------------------------------------------
# Debian's VLC (`apt-get install vlc-bin vlc-plugin-base`) serves a file over RTSP with its
# RTP stream output: `cvlc FILE --sout '#rtp{sdp=rtsp://HOST:PORT/PATH}'`. It refuses to run
# as root, so the test runs it as `nobody` (setpriv) from a world-readable copy of the clip.
# Its RTSP server offers RTP over UDP only: a TCP-interleaved SETUP is refused (FFmpeg
# reports "Protocol not supported"), so VLC is tested over UDP and TCP against GStreamer.
CVLC = shutil.which("cvlc")


@contextlib.asynccontextmanager
async def vlc_rtsp(clip_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    home = tempfile.mkdtemp(prefix="faoyam-vlc-")
    os.chmod(home, 0o777)
    media = Path(home) / "clip.mp4"
    shutil.copyfile(clip_path, media)
    os.chmod(media, 0o644)
    cmd = [CVLC, "-I", "dummy", "-q", str(media), "--loop", "--sout", f"#rtp{{sdp=rtsp://127.0.0.1:{port}/cam}}"]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
    proc = await asyncio.create_subprocess_exec(*cmd, env={**os.environ, "HOME": home},
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async def listening():
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                    writer.close()
                    return
                except OSError:
                    await asyncio.sleep(0.1)
        await asyncio.wait_for(listening(), 20)
        yield f"rtsp://127.0.0.1:{port}/cam"
    finally:
        proc.terminate()
        await proc.wait()
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.req("B4")
@pytest.mark.skipif(CVLC is None, reason="VLC (vlc-bin) not installed")
async def test_pull_from_vlcs_rtsp_server_over_udp(h264_clip):
    async with vlc_rtsp(h264_clip.path) as url, pulling(url, transport="udp") as (hub, viewer, pull):
        await wait_for(lambda: pull.video_packets >= 40, timeout=40, what="40 frames from VLC")
        await wait_for(lambda: viewer.sub.samples_read >= 30, what="the viewer to read")
    got = check_received(viewer, pull, "h264", (h264_clip.width, h264_clip.height))
    assert len(got.video) >= 30
