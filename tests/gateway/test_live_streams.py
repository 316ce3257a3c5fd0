"""Video on demand, end to end: a viewer subscribes to a hub, the device is asked over MQTT
to push, it pushes real H.264/H.265 over RTMP with a publish token, the viewer gets fMP4
that PyAV decodes; the viewer leaves, the device is told to stop and stops.

Also the publish tokens themselves (devices.streaming): bound to one device, channel and
stream, short-lived, and refused once the device is deleted."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time

import pytest
import pytest_asyncio

from faoyam.agent.media import SyntheticSource
from faoyam.devices import service, streaming
from faoyam.devices.models import Device
from faoyam.media import ChannelId
from faoyam.media import lifecycle as media
from faoyam.media.rtmp_publisher import PublishError, RtmpPublisher
from faoyam.media.testvideo import cached_clip
from tests.gateway.conftest import bind, eventually, make_user, new_device, online
from tests.media.conftest import Collector, probe
from tests.media.test_rtsp_pull import gstreamer_rtsp, gstreamer_rtsp_available


@pytest.fixture(autouse=True)
def _clip_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FAOYAM_MEDIA_CACHE", str(tmp_path_factory.getbasetemp() / "media-cache"))


@pytest_asyncio.fixture
async def live(svc):
    """The service (gateway on the test's broker) with the media role in the same process."""
    svc.settings = svc.settings.model_copy(update={"media_rtmp_port": 0, "media_stream_linger_seconds": 0.3})
    await media.start(svc)
    yield svc
    await media.stop(svc)


async def _bound_camera(ctx, **agent_kw):
    ident = await new_device(ctx, "camera")
    agent = await online(ctx, ident, **agent_kw)
    user = await make_user(ctx)
    device_id = await bind(ctx, ident, user)
    return agent, user, device_id


def _fragments(data: bytes) -> int:
    return data.count(b"moof")


@pytest.mark.req("B4")
@pytest.mark.parametrize("codec, name", [("h264", "h264"), ("h265", "hevc")])
async def test_watching_starts_the_push_and_leaving_stops_it(live, codec, name):
    agent, _user, device_id = await _bound_camera(live, media=SyntheticSource(codec=codec))
    assert not agent.pushers
    hub = live.media_hubs.hub(ChannelId(device_id, 0, "main"))
    sub = hub.subscribe()
    collector = Collector(sub)
    # the device was asked over MQTT and pushes with its token
    await eventually(lambda: (0, 0) in agent.pushers, 20)
    assert agent.pushers[(0, 0)].url.startswith(live.stream_demand.rtmp_url + "/" + device_id + ".0.main.")
    await eventually(lambda: hub.publisher is not None, 30)
    await eventually(lambda: _fragments(collector.data) >= 8, 30)

    got = probe(collector.data)
    assert got.streams["video"] == (name, 320, 240)
    assert got.decoded > 0
    dts = [d for d, _, _ in got.video]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)
    assert got.video[0][2]  # the viewer starts at a keyframe

    sub.close()
    await collector.task
    await eventually(lambda: not agent.pushers, 15)  # stop_stream arrived
    await eventually(lambda: hub.publisher is None, 15)  # and the push ended
    await eventually(lambda: live.stream_demand.stopped == 1, 10)  # the reply came back
    await agent.stop()


@pytest.mark.req("B4")
async def test_a_viewer_who_comes_back_within_the_linger_does_not_stop_the_push(live):
    agent, _user, device_id = await _bound_camera(live)
    live.stream_demand.linger_s = 30
    hub = live.media_hubs.hub(ChannelId(device_id, 0, "main"))
    sub = hub.subscribe()
    await eventually(lambda: hub.publisher is not None, 30)
    pusher = agent.pushers[(0, 0)]
    sub.close()
    again = hub.subscribe()
    await eventually(lambda: again.queued_bytes > 0, 15)
    assert agent.pushers.get((0, 0)) is pusher and pusher.connects == 1
    assert live.stream_demand.stopped == 0
    again.close()
    await agent.stop()


@pytest.mark.req("B4")
async def test_a_device_that_reconnects_while_watched_is_asked_to_push_again(live):
    """The camera loses MQTT and, rebooting, its push; when it is back online the viewer
    (still subscribed) gets video again because start_stream is sent again."""
    agent, _user, device_id = await _bound_camera(live)
    live.stream_demand.watch_s = 0.2
    hub = live.media_hubs.hub(ChannelId(device_id, 0, "main"))
    sub = hub.subscribe()
    collector = Collector(sub)
    await eventually(lambda: hub.publisher is not None, 30)
    await eventually(lambda: live.stream_demand.started == 1, 10)  # the reply came back
    first = hub.publisher

    agent.pause()  # MQTT gone without DISCONNECT: the broker publishes the will
    await agent.stop_pushing()  # and a rebooted camera has no push either
    gw = live.gateway
    await gw.wait_until(lambda: not gw.is_connected(agent.serial), 15)
    await eventually(lambda: hub.publisher is None, 15)
    assert live.stream_demand.started == 1  # nothing to ask while it is offline

    agent.resume()
    await eventually(lambda: (0, 0) in agent.pushers, 20)  # start_stream arrived again
    await eventually(lambda: hub.publisher is not None and hub.publisher is not first, 30)
    await eventually(lambda: live.stream_demand.started == 2, 10)
    assert live.stream_demand.restarted == 1
    assert sub.closed_reason is None  # the viewer stayed throughout
    fresh = _fragments(collector.data)
    await eventually(lambda: _fragments(collector.data) >= fresh + 3, 15)  # and video flows to it again
    sub.close()
    await collector.task
    await eventually(lambda: not agent.pushers, 15)
    await agent.stop()


# Publish tokens -------------------------------------------------------------------------


async def _publish(ctx, key: str) -> RtmpPublisher:
    publisher = RtmpPublisher(f"{ctx.stream_demand.rtmp_url}/{key}", timeout=10)
    await publisher.connect()
    return publisher


async def _generation(ctx, device_id: str) -> int:
    async with ctx.db.session() as s:
        return (await s.get(Device, device_id)).credential_generation


@pytest.mark.req("B4", "B10")
async def test_a_token_opens_only_its_own_device_channel_and_stream(live):
    _agent_a, _ua, a = await _bound_camera(live)
    agent_b, _ub, b = await _bound_camera(live)
    gen_a = await _generation(live, a)
    key = live.key
    token_a = streaming.mint_token(key, a, 0, "main", gen_a)
    assert await streaming.check_token(live, token_a) == (a, 0, "main")

    # B's own token relabelled for A (or for another channel/stream) fails the HMAC
    token_b = streaming.mint_token(key, b, 0, "main", await _generation(live, b))
    forged = token_b.replace(b, a, 1)
    assert await streaming.check_token(live, forged) is None
    assert await streaming.check_token(live, token_a.replace(".0.main.", ".0.sub.")) is None
    assert await streaming.check_token(live, token_a.replace(f"{a}.0.", f"{a}.1.")) is None
    # a channel the camera does not have, even correctly signed
    assert await streaming.check_token(live, streaming.mint_token(key, a, 3, "main", gen_a)) is None
    # expired
    old = streaming.mint_token(key, a, 0, "main", gen_a, ttl_s=60, now=time.time() - 120)
    assert await streaming.check_token(live, old) is None
    # another deployment's key
    assert await streaming.check_token(live, streaming.mint_token(b"x" * 32, a, 0, "main", gen_a)) is None
    for junk in ("", "a.b.c", "../../etc", "x" * 400, f"{a}.0.main.99999999999.{'0' * 32}"):
        assert await streaming.check_token(live, junk) is None

    # over RTMP: the forged key is refused by the server, A's own is accepted for A's hub
    with pytest.raises(PublishError):
        await _publish(live, forged)
    publisher = await _publish(live, token_a)
    await eventually(lambda: live.media_hubs.get(ChannelId(a, 0, "main")) is not None
                     and live.media_hubs.get(ChannelId(a, 0, "main")).publisher is not None, 10)
    assert live.media_hubs.get(ChannelId(b, 0, "main")) is None
    await publisher.close()
    await agent_b.stop()


@pytest.mark.req("B4", "B10")
async def test_a_deleted_device_token_is_refused(live):
    agent, user, device_id = await _bound_camera(live)
    token = streaming.mint_token(live.key, device_id, 0, "main", await _generation(live, device_id))
    assert await streaming.check_token(live, token) is not None
    await service.delete_device(live, user, device_id)
    assert await streaming.check_token(live, token) is None
    with pytest.raises(PublishError):
        await _publish(live, token)
    assert live.rtmp_server.rejected >= 1
    await agent.stop()


@pytest.mark.req("B4")
async def test_the_pusher_reconnects_after_the_server_drops_it(live):
    agent, _user, device_id = await _bound_camera(live)
    hub = live.media_hubs.hub(ChannelId(device_id, 0, "main"))
    sub = hub.subscribe()
    await eventually(lambda: hub.publisher is not None, 30)
    first = hub.publisher
    first.close("test: connection lost")
    await eventually(lambda: hub.publisher is not None and hub.publisher is not first, 30)
    await eventually(lambda: agent.pushers[(0, 0)].connects >= 2, 10)
    assert sub.closed_reason is None  # the viewer stayed subscribed
    sub.close()
    await agent.stop()


# It used to hang after the other tests of this file: under load the bridge was still
# stopping its push (a stop_stream) when the test stopped it, and StreamPusher.stop caught
# CancelledError around wait_for — the agent's own cancel — so its task never ended.
async def relayed_by_bridge(service_factory, tmp_path, name: str, rtsp_url) -> tuple[object, list]:
    """A bridge in front of the RTSP camera at ``rtsp_url()`` (an async context manager that
    yields the URL): its stream reaches the hub packet for packet — never the looped
    recording of a camera it cannot relay. Returns the hub and the probed video."""
    from faoyam.agent.bridge import RtspBridge, load_or_create

    ctx = await service_factory("embedded")
    ctx.settings = ctx.settings.model_copy(update={"media_rtmp_port": 0, "media_stream_linger_seconds": 0.2})
    await media.start(ctx)
    ident, _ = load_or_create(tmp_path / "bridge.json", name)
    await service.factory_register(ctx, ident.factory_device())
    try:
        async with rtsp_url() as url:
            bridge = RtspBridge(ident, url, "127.0.0.1", ctx.mqtt_port)

            async def no_recording(*_a):
                raise AssertionError("the camera is relayed live, not recorded and looped")

            bridge.media.clip = no_recording
            bridge.start()
            try:
                await ctx.gateway.wait_until(lambda: ctx.gateway.is_connected(ident.serial), 20)
                device_id = await bind(ctx, ident, await make_user(ctx))
                hub = ctx.media_hubs.hub(ChannelId(device_id, 0, "main"))
                sub = hub.subscribe()
                collector = Collector(sub)
                await eventually(lambda: _fragments(collector.data) >= 6, 40)
                got = probe(collector.data)
                sub.close()
                await collector.task
                await eventually(lambda: not bridge.pushers, 15)
                return hub, got
            finally:
                await bridge.stop()
    finally:
        await media.stop(ctx)


@contextlib.asynccontextmanager
async def our_rtsp_server():
    from tests.gateway.rtsp_server import RtspServer

    rtsp = await RtspServer().start()
    try:
        yield rtsp.url
    finally:
        await rtsp.stop()


@pytest.mark.req("B4")
async def test_the_rtsp_bridge_relays_the_camera_s_own_packets_live(service_factory, tmp_path):
    hub, got = await relayed_by_bridge(service_factory, tmp_path, "Porch", our_rtsp_server)
    assert got.streams["video"] == ("h264", 320, 240)  # the camera's picture, not the simulator's
    assert got.decoded > 0
    dts = [d for d, _, _ in got.video]
    assert dts == sorted(dts)


@pytest.mark.req("B4")
@pytest.mark.skipif(not gstreamer_rtsp_available(), reason="needs GStreamer's RTSP server (python3-gi)")
async def test_the_rtsp_bridge_relays_an_h265_camera_live_over_enhanced_rtmp(service_factory, tmp_path):
    """A camera that is a third-party RTSP server (GStreamer, x265) sending H.265: relayed
    packet for packet (no looped recording), arriving as HEVC the viewer decodes."""
    hub, got = await relayed_by_bridge(service_factory, tmp_path, "Garage", lambda: gstreamer_rtsp("h265"))
    assert hub.muxer.tracks[0].codec == "hvc1"
    assert got.streams["video"] == ("hevc", 320, 240)
    assert got.decoded > 0 and got.video[0][2]
    dts = [d for d, _, _ in got.video]
    assert dts == sorted(dts) and len(set(dts)) == len(dts)


def test_annexb_samples_and_parameter_sets_become_mp4_form():
    import av

    from faoyam.agent.media import annexb_to_avcc, avcc_config

    packets = list(SyntheticSource(width=160, height=120, fps=10).packets(0, seconds=1.0))
    assert packets[0].data.startswith(b"\x00\x00\x00\x01")  # libx264 writes Annex-B
    config = avcc_config(packets[0].data)
    assert config[0] == 1 and config[5] == 0xE1
    decoder = av.CodecContext.create("h264", "r")
    decoder.extradata = config
    frames = 0
    for packet in packets:
        sample = annexb_to_avcc(packet.data)
        assert b"\x00\x00\x00\x01" not in sample[:4]
        frames += len(decoder.decode(av.Packet(sample)))
    frames += len(decoder.decode(None))
    assert frames == len(packets) and decoder.width == 160
    assert avcc_config(b"\x00\x00\x00\x01\x65abc") is None  # no SPS/PPS: nothing made up


@pytest.mark.req("B4")
@pytest.mark.skipif(not shutil.which("ffmpeg"), reason="Debian's ffmpeg is not installed (apt-get install ffmpeg)")
async def test_an_encoder_pushes_by_itself_with_a_push_url_and_the_key_dies_with_the_device(live, tmp_path):
    """``faoyam devices push-url``: ffmpeg pushes a file to a device channel; a viewer of that
    channel gets it; deleting the device revokes the key."""
    ident = await new_device(live, "camera")
    agent = await online(live, ident)
    user = await make_user(live)
    device_id = await bind(live, ident, user)
    await agent.stop()  # the encoder, not the device's own agent, pushes this channel
    with pytest.raises(Exception) as refused:
        await streaming.encoder_stream_key(live, ident.serial, channel=5)
    assert getattr(refused.value, "code", None) == "channel-not-found"
    with pytest.raises(Exception) as unknown:
        await streaming.encoder_stream_key(live, "FYC9999999X")
    assert getattr(unknown.value, "code", None) == "device-not-found"

    key = await streaming.encoder_stream_key(live, ident.serial, ttl_s=600)
    url = f"{live.stream_demand.rtmp_url}/{key}"
    clip = cached_clip(audio=True, seconds=2.0, gop_seconds=1.0)
    collector = Collector(live.media_hubs.hub(ChannelId(device_id, 0, "main")).subscribe())
    push = await asyncio.create_subprocess_exec(
        "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-re", "-i", str(clip.path),
        "-c", "copy", "-f", "flv", url, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(push.communicate(), 60)
    assert push.returncode == 0, err.decode()
    await eventually(lambda: collector.sub.samples_read >= len(clip.packets) + len(clip.audio_packets), 30)
    # the viewer's last fragment may still be on its way to the collector: wait for the frames
    await eventually(lambda: probe(collector.data).decoded >= len(clip.packets), 30)
    got = probe(collector.data)
    assert got.streams["video"] == ("h264", clip.width, clip.height) and got.decoded == len(clip.packets)

    assert await streaming.check_token(live, key) == (device_id, 0, "main")
    await service.delete_device(live, user, device_id)
    assert await streaming.check_token(live, key) is None
