"""LL-HLS: playlists follow RFC 8216bis, blocking reload waits for the part, and a real HLS
client (FFmpeg's, through PyAV) plays the stream over HTTP — H.264 and H.265 as is."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket

import av
import httpx
import pytest
import uvicorn

from faoyam.media import ChannelId, StreamHub, StreamHubs
from faoyam.media.fmp4_parse import parse_fragment
from faoyam.media.hls import HlsOutputs, HlsSegmenter
from faoyam.media.hls_routes import hls_app

from .clipfeed import ClipFeeder
from .conftest import probe, strictly_increasing, wait_for

CAM = ChannelId("cam1")
TOKENS = {"good-token": CAM}


def verify(token: str):
    return TOKENS.get(token)


def parse_playlist(text: str) -> dict:
    """The tags a client relies on, parsed the way a client would."""
    lines = text.strip().split("\n")
    assert lines[0] == "#EXTM3U"
    out = {"segments": [], "parts": [], "maps": [], "hint": None, "attrs": {}}
    pending_parts: list = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-TARGETDURATION:"):
            out["target"] = int(line.split(":")[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            out["media_sequence"] = int(line.split(":")[1])
        elif line.startswith("#EXT-X-PART-INF:"):
            out["part_target"] = float(line.split("PART-TARGET=")[1])
        elif line.startswith("#EXT-X-SERVER-CONTROL:"):
            out["attrs"] = dict(kv.split("=") for kv in line.split(":", 1)[1].split(","))
        elif line.startswith("#EXT-X-MAP:"):
            out["maps"].append(re.search(r'URI="([^"]+)"', line).group(1))
        elif line.startswith("#EXT-X-PART:"):
            part = {"duration": float(re.search(r"DURATION=([\d.]+)", line).group(1)),
                    "uri": re.search(r'URI="([^"]+)"', line).group(1),
                    "independent": "INDEPENDENT=YES" in line}
            pending_parts.append(part)
            out["parts"].append(part)
        elif line.startswith("#EXTINF:"):
            out["segments"].append({"duration": float(line[8:].rstrip(",")), "uri": lines[i + 1],
                                    "parts": pending_parts})
            pending_parts = []
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            out["hint"] = re.search(r'URI="([^"]+)"', line).group(1)
    out["open_parts"] = pending_parts
    return out


def fed_segmenter(clip, seconds: int, *, part_target: float = 0.3):
    hub = StreamHub(CAM)
    seg = HlsSegmenter(part_target=part_target)
    sub = hub.subscribe()
    feeder = ClipFeeder(hub, clip)
    feeder.feed_ms(seconds * 1000)
    for chunk in sub.take():
        if chunk[4:8] == b"ftyp":
            seg.on_init(chunk, sub.tracks)
        else:
            seg.on_fragment(chunk)
    return seg, feeder


@pytest.mark.req("B4")
def test_playlist_follows_the_ll_hls_rules(h264_clip):
    seg, _ = fed_segmenter(h264_clip, 9)
    pl = parse_playlist(seg.render())
    assert pl["segments"], "complete segments are listed"
    for s in pl["segments"]:
        assert round(s["duration"]) <= pl["target"], "EXTINF rounded never exceeds TARGETDURATION"
    assert pl["part_target"] == pytest.approx(0.3)
    assert float(pl["attrs"]["PART-HOLD-BACK"]) >= 2 * pl["part_target"]
    assert pl["attrs"]["CAN-BLOCK-RELOAD"] == "YES"
    assert pl["parts"] and all(p["duration"] <= pl["part_target"] + 1e-6 for p in pl["parts"])
    for s in pl["segments"]:
        if s["parts"]:
            assert s["parts"][0]["independent"], "a segment's first part starts with its keyframe"
            assert sum(p["duration"] for p in s["parts"]) == pytest.approx(s["duration"], abs=1e-3)
            assert all(p["duration"] >= 0.85 * pl["part_target"] for p in s["parts"][:-1])
    assert pl["hint"] and pl["hint"].startswith(f"part/{seg.current.msn}.")
    assert pl["maps"] == ["init/1.mp4"]


def test_media_sequence_moves_with_the_window(h264_clip):
    seg, feeder = fed_segmenter(h264_clip, 4)
    first = parse_playlist(seg.render())
    sub = feeder.hub.subscribe()
    sub.take()
    for _ in range(8):  # 8 more GOPs of 2 s: the window (6) slides
        feeder.feed_ms(2000)
        for chunk in sub.take():
            seg.on_fragment(chunk)
    later = parse_playlist(seg.render())
    assert later["media_sequence"] > first["media_sequence"]
    assert len(later["segments"]) == seg.window
    numbers = [int(s["uri"].split("/")[1].split(".")[0]) for s in later["segments"]]
    assert numbers == list(range(later["media_sequence"], later["media_sequence"] + seg.window))


@pytest.mark.req("B4")
def test_segments_and_parts_decode_with_every_frame_in_order(h264_clip):
    seg, _ = fed_segmenter(h264_clip, 8)
    init = seg.inits[1]
    whole = init + b"".join(s.data for s in seg.segments)
    got = probe(whole)
    # every frame of every complete segment (the current one is still open)
    frames = sum(sum(len(r.payloads) for r in parse_fragment(p.data, seg.tracks) if r.video)
                 for s in seg.segments for p in s.parts)
    assert got.decoded == len(got.video) == frames > 100
    assert strictly_increasing([dts for dts, _, _ in got.video])
    assert got.streams["audio"][0] == "aac"
    for s in seg.segments:
        one = probe(init + s.data)
        assert one.video[0][2] and one.decoded == len(one.video), "each segment decodes on its own"


def test_a_codec_change_starts_a_discontinuity_with_a_new_map(h264_clip, h265_clip):
    seg, _ = fed_segmenter(h264_clip, 4)
    hub = StreamHub(CAM)
    sub = hub.subscribe()
    ClipFeeder(hub, h265_clip, audio=False).feed_ms(3000)
    for chunk in sub.take():
        if chunk[4:8] == b"ftyp":
            seg.on_init(chunk, sub.tracks)
        else:
            seg.on_fragment(chunk)
    text = seg.render()
    assert text.count("#EXT-X-DISCONTINUITY\n") == 1
    pl = parse_playlist(text)
    assert pl["maps"] == ["init/1.mp4", "init/2.mp4"]
    assert b"hvc1" in seg.inits[2]


# -- over HTTP --

@contextlib.asynccontextmanager
async def hls_service(hub_for, part_target=0.3, window=6):
    outputs = HlsOutputs(hub_for, part_target=part_target, window=window, idle_timeout=60)
    app = hls_app(outputs, verify)
    yield outputs, app
    await outputs.close()


@pytest.mark.req("B4")
async def test_blocking_reload_returns_once_the_part_exists(h264_clip):
    hubs = StreamHubs()
    async with hls_service(hubs.hub) as (outputs, app):
        outputs.get(CAM)
        feeder = ClipFeeder(hubs.hub(CAM), h264_clip)
        feeder.feed_ms(2500)  # one complete segment, and the next one begun
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            pl = parse_playlist((await client.get("/good-token/playlist.m3u8")).text)
            seg = outputs.get(CAM).segmenter
            msn, part = seg.current.msn, len(seg.current.parts)
            waiting = asyncio.create_task(client.get(f"/good-token/playlist.m3u8?_HLS_msn={msn}&_HLS_part={part}"))
            hinted = asyncio.create_task(client.get(f"/good-token/{pl['hint']}"))
            await asyncio.sleep(0.3)
            assert not waiting.done(), "the request is held while the part does not exist"
            feeder.feed_ms(400)
            response = await asyncio.wait_for(waiting, 5)
            assert response.status_code == 200
            held = parse_playlist(response.text)
            assert any(p["uri"] == f"part/{msn}.{part}.m4s" for p in held["parts"])
            part_response = await asyncio.wait_for(hinted, 5)
            assert part_response.status_code == 200 and part_response.content[4:8] == b"moof"


async def test_bad_directives_and_tokens_are_refused_as_problems(h264_clip):
    hubs = StreamHubs()
    async with hls_service(hubs.hub) as (outputs, app):
        outputs.get(CAM)  # the HLS output is running before the camera sends
        ClipFeeder(hubs.hub(CAM), h264_clip).feed_ms(5000)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            bad = await client.get("/stolen/playlist.m3u8")
            assert bad.status_code == 403 and bad.headers["content-type"] == "application/problem+json"
            assert (await client.get("/good-token/playlist.m3u8?_HLS_part=1")).status_code == 400
            assert (await client.get("/good-token/playlist.m3u8?_HLS_msn=x")).status_code == 400
            ahead = await client.get("/good-token/playlist.m3u8?_HLS_msn=999")
            assert ahead.status_code == 400 and ahead.json()["code"] == "hls-msn-ahead"
            assert (await client.get("/good-token/segment/999999.m4s")).status_code == 404
            master = await client.get("/good-token/master.m3u8")
            assert 'CODECS="avc1.' in master.text and "RESOLUTION=320x240" in master.text
            plain = await client.get("/good-token/plain.m3u8")
            assert "#EXT-X-PART" not in plain.text and "#EXTINF" in plain.text


def free_socket() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.asynccontextmanager
async def serve(app):
    """``app`` served by uvicorn on a free port: yields the base URL."""
    sock = free_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_for(lambda: server.started, what="uvicorn to start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def read_frames(url: str, count: int) -> tuple[str, list[int], list[int]]:
    """FFmpeg's HLS client: open ``url``, decode ``count`` frames: (codec, pts, barcodes)."""
    from faoyam.media.testvideo import read_barcode
    pts, codes = [], []
    with av.open(url, options={"live_start_index": "-3"}, timeout=20) as container:
        stream = container.streams.video[0]
        name = stream.codec_context.name
        for frame in container.decode(stream):
            pts.append(frame.pts)
            codes.append(read_barcode(frame.to_ndarray(format="gray")))
            if len(pts) >= count:
                break
    return name, pts, codes


@pytest.mark.req("B4")
@pytest.mark.parametrize("clip_name, codec", [("h264_clip", "h264"), ("h265_clip", "hevc")])
async def test_an_hls_client_plays_the_stream_over_http(request, clip_name, codec):
    clip = request.getfixturevalue(clip_name)
    hubs = StreamHubs()
    # a wide window: a client slow to start on a loaded machine still finds the segments it saw
    async with hls_service(hubs.hub, window=30) as (outputs, app), serve(app) as base:
        outputs.get(CAM)
        feeder = ClipFeeder(hubs.hub(CAM), clip)
        feeder.feed_ms(6000)  # a few segments already there, as for a client joining a running stream
        running = asyncio.create_task(feeder.run(speed=1.0))
        try:
            name, pts, codes = await asyncio.to_thread(read_frames, f"{base}/good-token/playlist.m3u8", 60)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
    assert name == codec
    assert len(pts) == 60 and strictly_increasing(pts), "frames arrive with monotonic timestamps"
    steps = [(b - a) % len(clip.packets) for a, b in zip(codes, codes[1:])]
    assert all(step == 1 for step in steps), "consecutive frames of the clip, none lost or repeated"


async def test_a_blocking_reload_for_a_part_that_never_comes_answers_503(h264_clip):
    hubs = StreamHubs()
    async with hls_service(hubs.hub) as (outputs, app):
        outputs.get(CAM)
        ClipFeeder(hubs.hub(CAM), h264_clip).feed_ms(2500)  # then the camera goes quiet
        seg = outputs.get(CAM).segmenter
        await wait_for(lambda: seg.segments and seg.current and seg.current.parts, what="the segmenter to catch up")
        seg.target_duration = 1  # a 3 s hold (3 target durations) keeps the test short
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            late = await client.get(f"/good-token/playlist.m3u8?_HLS_msn={seg.last_msn + 1}&_HLS_part=0")
    assert late.status_code == 503 and late.json()["code"] == "hls-part-late"
