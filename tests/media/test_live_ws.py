"""Live view over WebSocket, end to end over TCP: a hub fed with real H.264 → the worker's
endpoint served by uvicorn on a free port → a websockets client; what it received is checked
with PyAV (codec, size, frames, monotonic timestamps), and so are refusals and revocation."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket

import pytest
import pytest_asyncio
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from faoyam.media import ChannelId, StreamHubs
from faoyam.media.live_http import Close, LiveServer
from faoyam.media.testfeed import feed, feed_realtime, fragments
from faoyam.media.tokens import mint

from .conftest import probe, strictly_increasing, wait_for

KEY = b"live-test-secret"
CAM = ChannelId("c" * 32, 0, "main")


class Worker:
    def __init__(self, live: LiveServer, port: int):
        self.live, self.port = live, port

    def url(self, channel: ChannelId = CAM, grant: str = "user:u1", **mint_args) -> str:
        return f"ws://127.0.0.1:{self.port}/media/live/{mint(KEY, channel, grant, **mint_args)}"

    @property
    def hubs(self) -> StreamHubs:
        return self.live.hubs


async def serve(live: LiveServer):
    config = uvicorn.Config(live.app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                            log_config=None, lifespan="on", ws="websockets-sansio")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await wait_for(lambda: server.started, what="uvicorn started")
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, port


@pytest_asyncio.fixture
async def worker_factory():
    running = []

    async def start(**options) -> Worker:
        live = LiveServer(StreamHubs(), KEY, **options)
        server, task, port = await serve(live)
        running.append((server, task))
        return Worker(live, port)

    yield start
    for server, task in running:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@pytest_asyncio.fixture
async def worker(worker_factory) -> Worker:
    return await worker_factory(poll_interval=0.1, start_timeout=2.0)


class Viewer:
    """A websockets client keeping every message, in order."""

    def __init__(self, ws):
        self.ws = ws
        self.texts: list[dict] = []
        self.binaries: list[bytes] = []
        self.order: list[str] = []
        self.close_code: int | None = None
        self.task = asyncio.create_task(self._run())

    async def _run(self):
        try:
            async for message in self.ws:
                if isinstance(message, str):
                    self.texts.append(json.loads(message))
                    self.order.append("text")
                else:
                    self.binaries.append(message)
                    self.order.append("init" if message[4:8] == b"ftyp" else "fragment")
        except ConnectionClosed:
            pass
        self.close_code = self.ws.close_code

    @property
    def video_samples(self) -> int:
        return sum(f.samples for data in self.binaries for f in fragments(data) if f.track_id == 1)

    @property
    def data(self) -> bytes:
        return b"".join(self.binaries)


async def watch(url: str) -> Viewer:
    return Viewer(await connect(url, max_size=None))


def gop_frames(clip) -> int:
    last_key = max(i for i, p in enumerate(clip.packets) if p.keyframe)
    return len(clip.packets) - last_key


@pytest.mark.req("B4")
async def test_a_late_joiner_gets_the_codec_then_init_then_the_current_gop_and_everything_after(worker, h264_clip):
    hub = worker.hubs.hub(CAM)
    feed(hub, h264_clip)  # the camera has been running for a while
    viewer = await watch(worker.url())
    await wait_for(lambda: viewer.video_samples >= gop_frames(h264_clip), what="the current GOP")
    feed(hub, h264_clip, shift_ms=h264_clip.duration_ms)  # and goes on
    expected = gop_frames(h264_clip) + len(h264_clip.packets)
    await wait_for(lambda: viewer.video_samples >= expected, what="every frame")

    assert viewer.order[:2] == ["text", "init"] and set(viewer.order[2:]) == {"fragment"}
    codec = hub.muxer.tracks[0].mime_codec
    assert viewer.texts[0]["mime"] == f'video/mp4; codecs="{codec},mp4a.40.2"' and codec.startswith("avc1.")
    assert viewer.texts[0]["tracks"][0] == {"kind": "video", "codec": codec, "width": 320, "height": 240}
    got = probe(viewer.data)
    assert got.streams["video"] == ("h264", 320, 240) and got.streams["audio"][0] == "aac"
    assert len(got.video) == got.decoded == expected
    assert got.video[0][2], "the first frame is a keyframe"
    assert strictly_increasing([dts for dts, _, _ in got.video])
    assert strictly_increasing([dts for dts, _, _ in got.audio])
    await viewer.ws.close()
    await wait_for(lambda: not worker.live.sessions and not hub.subscribers, what="the session to end")


@pytest.mark.req("B4")
async def test_a_real_time_stream_arrives_frame_by_frame(worker, short_clip):
    hub = worker.hubs.hub(CAM)
    viewer = await watch(worker.url())
    await wait_for(lambda: worker.live.sessions, what="the session")
    frames = await feed_realtime(hub, short_clip, loops=1, audio=False)
    await wait_for(lambda: viewer.video_samples == frames, what="every frame")
    got = probe(viewer.data)
    assert len(got.video) == got.decoded == frames == len(short_clip.packets)
    assert len(viewer.binaries) > frames / 2, "fragments go out as they are made, not saved up"


@pytest.mark.req("B4")
async def test_a_codec_change_sends_a_new_description_and_init_segment(worker, h264_clip, h265_clip):
    hub = worker.hubs.hub(CAM)
    feed(hub, h264_clip, audio=False)
    viewer = await watch(worker.url())
    await wait_for(lambda: viewer.video_samples >= gop_frames(h264_clip), what="the H.264 GOP")
    feed(hub, h265_clip, audio=False, shift_ms=h264_clip.duration_ms)
    await wait_for(lambda: len(viewer.texts) == 2 and viewer.video_samples >= gop_frames(h264_clip) + len(h265_clip.packets),
                   what="the H.265 part")
    assert viewer.texts[1]["mime"].startswith('video/mp4; codecs="hvc1.')
    second_init = viewer.order.index("init", 2)
    assert viewer.order[second_init - 1] == "text"
    init_positions = [i for i, b in enumerate(viewer.binaries) if b[4:8] == b"ftyp"]
    assert probe(b"".join(viewer.binaries[init_positions[1]:])).streams["video"] == ("hevc", 320, 240)


async def closed_with(url: str) -> tuple[int, str]:
    async with connect(url) as ws:
        with pytest.raises(ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 10)
        return ws.close_code, ws.close_reason


def tampered(url: str) -> str:
    prefix, token = url.rsplit("/", 1)
    payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["c"] = 1
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{prefix}/{forged}.{sig}"


@pytest.mark.req("B4")
async def test_bad_tokens_are_refused_with_a_code_that_says_why(worker, h264_clip):
    feed(worker.hubs.hub(CAM), h264_clip)
    assert await closed_with(worker.url(ttl=-1)) == (Close.EXPIRED, "expired")
    assert await closed_with(tampered(worker.url())) == (Close.BAD_TOKEN, "bad-signature")
    assert await closed_with(worker.url()[:-3]) == (Close.BAD_TOKEN, "bad-signature")
    assert (await closed_with(worker.url().replace("/live/", "/live/x.")))[0] == Close.BAD_TOKEN
    playback = f"ws://127.0.0.1:{worker.port}/media/live/{mint(KEY, CAM, 'user:u1', permission='playback')}"
    assert await closed_with(playback) == (Close.FORBIDDEN, "wrong-permission")
    assert not worker.live.sessions


@pytest.mark.req("B4")
async def test_a_url_opens_one_session_only(worker, h264_clip):
    feed(worker.hubs.hub(CAM), h264_clip)
    url = worker.url()
    first = await watch(url)
    await wait_for(lambda: first.binaries, what="the first viewer's video")
    assert await closed_with(url) == (Close.EXPIRED, "token already used")
    assert first.close_code is None, "the first viewer keeps watching"
    await first.ws.close()


@pytest.mark.req("B4")
async def test_a_camera_that_sends_nothing_is_reported_offline(worker):
    code, reason = await closed_with(worker.url(ChannelId("d" * 32)))
    assert code == Close.OFFLINE and "no video" in reason
    assert worker.hubs.get(ChannelId("d" * 32)) is None, "the empty hub is released"


@pytest.mark.req("B4", "B9")
async def test_revoking_a_grant_closes_its_sessions_and_only_those(worker_factory, h264_clip):
    revoked: set[str] = set()
    polls: list[str] = []

    async def is_revoked(grant) -> bool:
        polls.append(grant.grant)
        return grant.grant in revoked

    worker = await worker_factory(revoked=is_revoked, poll_interval=0.1)
    feed(worker.hubs.hub(CAM), h264_clip)
    friend = [await watch(worker.url(grant="user:friend")) for _ in range(3)]  # three tabs
    link = await watch(worker.url(grant="link:l1"))
    await wait_for(lambda: all(v.binaries for v in friend + [link]), what="video for every viewer")
    polls.clear()
    await wait_for(lambda: len(polls) >= 6, what="a few polls")
    checks = polls[:]
    # Per session it would be three friend checks for each link check.
    assert abs(checks.count("user:friend") - checks.count("link:l1")) <= 1, "one check per grant per poll"

    revoked.add("user:friend")
    await wait_for(lambda: all(v.close_code for v in friend), what="the friend's sessions to close")
    assert {v.close_code for v in friend} == {Close.FORBIDDEN}
    assert link.close_code is None and len(worker.live.sessions) == 1
    # A fresh token for a revoked grant opens nothing either.
    assert await closed_with(worker.url(grant="user:friend")) == (Close.FORBIDDEN, "revoked")
    await link.ws.close()


async def test_a_failing_revocation_check_keeps_sessions_open(worker_factory, h264_clip):
    async def broken(grant) -> bool:
        raise RuntimeError("database unavailable")

    worker = await worker_factory(revoked=broken, poll_interval=0.05)
    hub = worker.hubs.hub(CAM)
    feed(hub, h264_clip)
    viewer = await watch(worker.url())
    await wait_for(lambda: viewer.binaries, what="video")
    before = viewer.video_samples
    feed(hub, h264_clip, shift_ms=h264_clip.duration_ms)
    await wait_for(lambda: viewer.video_samples > before, what="more video after failed checks")
    assert viewer.close_code is None
    await viewer.ws.close()


async def stuck_viewer(url: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads a byte, with a
    tiny receive window so the server's writes block almost at once."""
    host_port, path = url.removeprefix("ws://").split("/", 1)
    host, port = host_port.split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET /{path} HTTP/1.1\r\nHost: {host_port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await asyncio.get_running_loop().sock_sendall(sock, request.encode())
    return sock


@pytest.mark.req("B4")
async def test_a_viewer_that_never_reads_stays_bounded_is_dropped_and_others_get_everything(worker_factory, h264_clip):
    queue = 600_000
    worker = await worker_factory(viewer_queue_bytes=queue, poll_interval=0.05)
    hub = worker.hubs.hub(CAM)
    feed(hub, h264_clip)
    good = await watch(worker.url(grant="user:good"))
    sock = await stuck_viewer(worker.url(grant="user:stuck"))
    try:
        await wait_for(lambda: len(worker.live.sessions) == 2, what="both sessions")
        stuck = next(s for s in worker.live.sessions if s.grant.grant == "user:stuck")
        peak, loops = 0, 30  # 2 minutes of video
        fed = loops * sum(len(p.data) for p in h264_clip.packets)
        for n in range(1, loops + 1):
            feed(hub, h264_clip, shift_ms=n * h264_clip.duration_ms)
            peak = max(peak, stuck.sub.queued_bytes)
            await asyncio.sleep(0)  # let the good viewer's writer run, as the ingest loop would
            await wait_for(lambda: good.video_samples >= gop_frames(h264_clip) + n * len(h264_clip.packets),
                           what="the good viewer keeps up")
        biggest = max(len(f.data) for f in hub.current_gop)
        assert peak <= queue + biggest, "the stuck viewer's queue is bounded"
        await wait_for(lambda: stuck not in worker.live.sessions, what="the stuck viewer to be dropped")
        assert stuck.close_code == Close.TOO_SLOW and stuck.sub not in hub.subscribers
        # Writes block once the socket buffers are full (uvicorn waits for the transport to
        # drain below its high-water mark): most of the stream never left the hub.
        assert stuck.bytes_sent < fed / 2
        got = probe(good.data, decode=False)
        assert len(got.video) == gop_frames(h264_clip) + loops * len(h264_clip.packets)
        assert strictly_increasing([dts for dts, _, _ in got.video])
        assert good.close_code is None
    finally:
        sock.close()
        await good.ws.close()


def test_the_close_codes_are_distinct_and_in_the_application_range():
    codes = {name: value for name, value in vars(Close).items() if name.isupper()}
    assert len(set(codes.values())) == len(codes)
    assert all(4000 <= c < 5000 for name, c in codes.items() if name not in ("ENDED", "GOING_AWAY"))
