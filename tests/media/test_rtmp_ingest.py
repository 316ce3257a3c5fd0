"""RTMP push into the hub, end to end over TCP: our publisher, Debian's ffmpeg and GStreamer
as third-party encoders, and everything a hostile or broken publisher can do."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess

import pytest

from faoyam.media import ChannelId, RtmpServer, StreamHubs
from faoyam.media.rtmp_publisher import PublishError, RtmpPublisher
from faoyam.media.rtmp_chunks import VIDEO, encode_message
from faoyam.media import flv

from .conftest import Collector, probe, push, strictly_increasing, wait_for

CAM1 = ChannelId("cam1")


def video_count(clip, loops=1):
    return len(clip.packets) * loops


@pytest.mark.req("B4")
async def test_our_publisher_h264_with_aac_arrives_frame_for_frame(ingest, h264_clip):
    viewer = Collector(ingest.hub().subscribe())
    await push(ingest.url(), h264_clip, loops=2)
    total = video_count(h264_clip, 2) + 2 * len(h264_clip.audio_packets)
    await wait_for(lambda: viewer.sub.samples_read == total, what="all samples at the viewer")
    got = probe(viewer.data)
    assert got.streams["video"] == ("h264", 320, 240) and got.streams["audio"][0] == "aac"
    assert len(got.video) == got.decoded == video_count(h264_clip, 2)
    assert len(got.audio) == 2 * len(h264_clip.audio_packets)
    assert strictly_increasing([d for d, _, _ in got.video]) and strictly_increasing([d for d, _, _ in got.audio])
    assert got.video[0][2]


@pytest.mark.req("B4")
async def test_h265_over_enhanced_rtmp(ingest, h265_clip):
    viewer = Collector(ingest.hub().subscribe())
    await push(ingest.url(), h265_clip)
    await wait_for(lambda: viewer.sub.samples_read == len(h265_clip.packets), what="all frames")
    got = probe(viewer.data)
    assert got.streams["video"] == ("hevc", 320, 240)
    assert len(got.video) == got.decoded == len(h265_clip.packets)
    assert ingest.hub().muxer.tracks[0].codec == "hvc1"


async def test_the_default_128_byte_chunk_size_works_too(ingest, h264_clip, monkeypatch):
    """A publisher that never sends Set Chunk Size: every frame arrives in 128-byte chunks."""
    from faoyam.media import rtmp_publisher
    monkeypatch.setattr(rtmp_publisher, "CHUNK_SIZE", 128)
    viewer = Collector(ingest.hub().subscribe())
    await push(ingest.url(), h264_clip)
    await wait_for(lambda: viewer.sub.samples_read == len(h264_clip.packets) + len(h264_clip.audio_packets))
    assert probe(viewer.data).decoded == len(h264_clip.packets)


async def run_pusher(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    proc = await asyncio.create_subprocess_exec(*cmd, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def ffmpeg_push(clip_path, url) -> list[str]:
    return ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i", str(clip_path),
            "-c", "copy", "-f", "flv", url]


@pytest.mark.req("B4")
@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="Debian's ffmpeg is not installed (apt-get install ffmpeg)")
async def test_ffmpeg_push_plays(ingest, short_clip):
    viewer = Collector(ingest.hub().subscribe())
    result = await run_pusher(ffmpeg_push(short_clip.path, ingest.url()))
    assert result.returncode == 0, result.stderr.decode()
    await wait_for(lambda: viewer.sub.samples_read == len(short_clip.packets) + len(short_clip.audio_packets),
                   what="ffmpeg's frames")
    got = probe(viewer.data)
    assert got.streams["video"] == ("h264", 320, 240) and got.streams["audio"][0] == "aac"
    assert len(got.video) == got.decoded == len(short_clip.packets)
    assert len(got.audio) == len(short_clip.audio_packets)
    assert strictly_increasing([d for d, _, _ in got.video])
    assert sorted(p for _, p, _ in got.video) == sorted((p.dts + p.cts) * 90 for p in short_clip.packets)


def gstreamer_ready() -> bool:
    if not shutil.which("gst-inspect-1.0"):
        return False
    return all(subprocess.run(["gst-inspect-1.0", element], capture_output=True).returncode == 0
               for element in ("rtmp2sink", "flvmux", "qtdemux", "h264parse"))


@pytest.mark.req("B4")
@pytest.mark.skipif(not gstreamer_ready(), reason="GStreamer with rtmp2sink is not installed "
                    "(apt-get install gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)")
async def test_gstreamer_rtmp2sink_push_plays(ingest, short_clip):
    viewer = Collector(ingest.hub().subscribe())
    cmd = ["gst-launch-1.0", "-q", "filesrc", f"location={short_clip.path}", "!", "qtdemux", "name=d",
           "d.video_0", "!", "queue", "!", "h264parse", "!", "flvmux", "name=m", "streamable=true", "!",
           "rtmp2sink", f"location={ingest.url()}", "d.audio_0", "!", "queue", "!", "aacparse", "!", "m."]
    result = await run_pusher(cmd)
    assert result.returncode == 0, result.stderr.decode()
    await wait_for(lambda: viewer.sub.samples_read == len(short_clip.packets) + len(short_clip.audio_packets),
                   what="GStreamer's frames")
    got = probe(viewer.data)
    assert got.streams["video"] == ("h264", 320, 240)
    assert len(got.video) == got.decoded == len(short_clip.packets)
    assert strictly_increasing([d for d, _, _ in got.video])


async def test_an_async_authorizer_and_the_stream_it_names(h264_clip):
    async def authorize(app, key):
        await asyncio.sleep(0.01)  # a database look-up
        return ChannelId("nvr", 3, "sub") if (app, key) == ("live", "tok?x=1") else None

    hubs = StreamHubs()
    server = await RtmpServer(hubs, authorize, read_interval=0).start()  # unbatched reads
    try:
        viewer = Collector(hubs.hub(ChannelId("nvr", 3, "sub")).subscribe())
        await push(f"rtmp://127.0.0.1:{server.port}/live/tok?x=1", h264_clip)
        await wait_for(lambda: viewer.sub.samples_read == len(h264_clip.packets) + len(h264_clip.audio_packets))
    finally:
        await server.close()


# -- bad input --

async def test_a_wrong_stream_key_is_refused_and_logged(ingest, h264_clip, caplog):
    caplog.set_level(logging.INFO, "faoyam.media")
    with pytest.raises(PublishError, match="BadName"):
        await push(ingest.url("cam1-wrong"), h264_clip)
    with pytest.raises(PublishError):
        await push(ingest.url("cam1-secret", app="other"), h264_clip)
    assert ingest.server.rejected == 2
    assert "publish refused" in caplog.text
    assert ingest.hubs.get(CAM1) is None, "a refused push creates no hub"


@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="Debian's ffmpeg is not installed")
async def test_ffmpeg_with_a_wrong_key_fails(ingest, short_clip):
    result = await run_pusher(ffmpeg_push(short_clip.path, ingest.url("nope")))
    assert result.returncode != 0
    assert ingest.server.rejected == 1


async def publishing_viewer(ingest, clip):
    """A viewer already watching cam1, fed one clip by our publisher."""
    viewer = Collector(ingest.hub().subscribe())
    await push(ingest.url(), clip)
    await wait_for(lambda: viewer.sub.samples_read == len(clip.packets) + len(clip.audio_packets))
    return viewer


async def test_garbage_on_the_port_is_closed_and_the_hub_keeps_its_viewers(ingest, h264_clip, caplog):
    caplog.set_level(logging.INFO, "faoyam.media")
    viewer = await publishing_viewer(ingest, h264_clip)
    for garbage in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4000), b"\x03" + os.urandom(5000)):
        reader, writer = await asyncio.open_connection("127.0.0.1", ingest.server.port)
        writer.write(garbage)
        data = await asyncio.wait_for(reader.read(), 10)  # EOF: the server hung up
        writer.close()
        assert len(data) <= 1 + 2 * 1536  # at most its handshake answer
    await wait_for(lambda: "not RTMP" in caplog.text, what="the log line")
    await push(ingest.url(), h264_clip)  # the camera goes on; the viewer never left
    await wait_for(lambda: viewer.sub.samples_read == 2 * (len(h264_clip.packets) + len(h264_clip.audio_packets)))
    assert viewer.sub.closed_reason is None


async def test_a_garbage_packet_mid_stream_closes_that_connection_only(ingest, h264_clip, caplog):
    caplog.set_level(logging.INFO, "faoyam.media")
    viewer = await publishing_viewer(ingest, h264_clip)
    publisher = await push(ingest.url(), h264_clip, close=False)
    publisher.send_raw(encode_message(6, VIDEO, 1, 999_000, b"\x17\x01\x00\x00\x00" + b"\xff" * 100, 65536))
    await publisher.drain()
    await wait_for(lambda: "not length-prefixed" in caplog.text, what="the log line")
    await wait_for(lambda: ingest.hub().publisher is None, what="the connection closed")
    await publisher.close()
    await push(ingest.url(), h264_clip)  # it reconnects
    per_clip = len(h264_clip.packets) + len(h264_clip.audio_packets)
    await wait_for(lambda: viewer.sub.samples_read == 3 * per_clip, what="the frames after the reconnect")
    got = probe(viewer.data)
    assert len(got.video) == got.decoded == 3 * len(h264_clip.packets)
    assert strictly_increasing([d for d, _, _ in got.video]), "timestamps stay monotonic across reconnects"
    assert viewer.data.count(b"ftyp") == 1, "the same configuration does not resend the init segment"


@pytest.mark.parametrize("tag,reason", [
    (lambda h265: flv.video_tag("avc1", flv.CONFIG, data=h265.config), "AVC configuration without an SPS"),
    (lambda h265: bytes((0x12, 0)) + b"\0" * 50, "unsupported FLV video codec id 2"),
    (lambda h265: b"\x90" + b"av01" + b"\0" * 10, "unsupported enhanced-RTMP video codec"),
    (lambda h265: bytes((0x2F, 1)) + b"\0" * 20, "unsupported FLV audio format 2"),
])
async def test_a_stream_that_lies_about_its_codec_is_closed(ingest, h264_clip, h265_clip, caplog, tag, reason):
    """E.g. an H.265 configuration record in a tag that says H.264, or codecs we do not carry."""
    caplog.set_level(logging.INFO, "faoyam.media")
    viewer = await publishing_viewer(ingest, h264_clip)
    publisher = RtmpPublisher(ingest.url())
    await publisher.connect()
    body = tag(h265_clip)
    publisher.send_raw(encode_message(6, 8 if reason.startswith("unsupported FLV audio") else VIDEO, 1, 0,
                                      body, 65536))
    await publisher.drain()
    await wait_for(lambda: reason in caplog.text, what=f"the log line ({reason})")
    await wait_for(lambda: ingest.hub().publisher is None)
    await publisher.close()
    assert viewer.sub.closed_reason is None and ingest.hub().muxer.tracks[0].codec == "avc1"


async def test_media_before_publish_is_refused(ingest, caplog):
    caplog.set_level(logging.INFO, "faoyam.media")
    publisher = RtmpPublisher(ingest.url())
    publisher._stream_id = 1
    # handshake and connect by hand, then media without publish
    reader, writer = await asyncio.open_connection("127.0.0.1", ingest.server.port)
    writer.write(b"\x03" + b"\0" * 1536)
    s = await reader.readexactly(1 + 2 * 1536)
    writer.write(s[1:1537] + encode_message(6, VIDEO, 1, 0, b"\x17\x01\0\0\0\0\0\0\1x", 128))
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    assert "media before an authorized publish" in caplog.text


async def test_a_silent_publisher_is_disconnected_after_the_idle_timeout(h264_clip, caplog):
    caplog.set_level(logging.INFO, "faoyam.media")
    hubs = StreamHubs()
    server = await RtmpServer(hubs, lambda app, key: CAM1, read_interval=0.05, idle_timeout=0.4,
                              handshake_timeout=0.4).start()
    try:
        viewer = Collector(hubs.hub(CAM1).subscribe())
        publisher = await push(f"rtmp://127.0.0.1:{server.port}/live/k", h264_clip, close=False)
        await wait_for(lambda: viewer.sub.samples_read > 0)
        await wait_for(lambda: hubs.hub(CAM1).publisher is None, what="the idle timeout")
        assert "no media for 0.4 s" in caplog.text
        assert viewer.sub.closed_reason is None, "viewers wait for the camera to come back"
        await publisher.close()
        # a connection that never gets as far as publishing is closed as well
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        assert "did not start publishing in time" in caplog.text
    finally:
        await server.close()


async def test_a_camera_that_reconnects_replaces_its_stale_connection(ingest, h264_clip):
    first = await push(ingest.url(), h264_clip, close=False)
    hub = ingest.hub()
    old_session = hub.publisher
    second = await push(ingest.url(), h264_clip, close=False)
    await wait_for(lambda: hub.publisher is not None and hub.publisher is not old_session)
    assert old_session.closed_reason.startswith("replaced")
    await first.close()
    await second.close()


async def test_the_owner_is_told_when_the_last_viewer_leaves(ingest, h264_clip):
    publisher = await push(ingest.url(), h264_clip, close=False)
    sub = ingest.hub().subscribe()
    await sub.read()
    sub.close()
    assert ingest.idle == [CAM1]
    assert ingest.hubs.get(CAM1) is not None, "the hub stays while its camera publishes"
    await publisher.close()
    await wait_for(lambda: ingest.hubs.get(CAM1) is None, what="the hub released")


@pytest.mark.req("B4", "B5")
async def test_a_stream_only_the_recorder_reads_is_read_in_longer_batches(h264_clip):
    """Background consumers (the recorder) let ingest read the camera every
    ``background_interval``; the first live viewer brings the stream back to every tick."""
    hubs = StreamHubs()
    server = await RtmpServer(hubs, lambda app, key: CAM1, read_interval=0.05, background_interval=0.3).start()
    try:
        hub = hubs.hub(CAM1)
        recorder = Collector(hub.subscribe(background=True))
        publisher = await push(f"rtmp://127.0.0.1:{server.port}/live/k", h264_clip, close=False)
        total = len(h264_clip.packets) + len(h264_clip.audio_packets)
        await wait_for(lambda: recorder.sub.samples_read == total, what="the clip at the background consumer")
        assert hub.live_subscribers == 0
        session, polls = hub.publisher, []
        real_poll = session._poll

        def counting_poll():
            polls.append(server.now)  # the tick's clock, the one the schedule is kept by
            real_poll()

        session._poll = counting_poll
        await wait_for(lambda: len(polls) >= 4, what="four background reads")
        assert min(b - a for a, b in zip(polls, polls[1:])) >= 0.3 - 0.05 / 2

        viewer = Collector(hub.subscribe())
        assert hub.live_subscribers == 1
        seen = len(polls)
        await wait_for(lambda: any(b - a < 0.3 - 0.05 / 2 for a, b in zip(polls[seen:], polls[seen + 1:])),
                       what="reads at the live interval once a viewer watches")
        viewer.sub.close()
        assert hub.live_subscribers == 0
        await publisher.close()
    finally:
        await server.close()
