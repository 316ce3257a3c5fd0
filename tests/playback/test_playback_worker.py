"""Playback through the media worker's routes, from real recorded segments, checked with PyAV:
the MSE stream starts at the keyframe at or before the instant and runs on across segments;
HLS VOD plays with FFmpeg's HLS client; a clip is one MP4 with its moov first that starts at
the requested keyframe and ends where asked; thumbnails decode; tokens are bound and expire."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json

import av
import httpx
import pytest
import websockets
from PIL import Image

from faoyam.media.fmp4_parse import boxes
from tests.playback.conftest import make_owned, ms, record

FPS = 25


def decode_all(data: bytes) -> list:
    """(pts seconds, keyframe) of every decoded video frame."""
    out = []
    with av.open(io.BytesIO(data)) as c:
        vs = c.streams.video[0]
        for frame in c.decode(vs):
            out.append((float(frame.pts * frame.time_base), frame.key_frame))
    return out


async def stream(url: str, at: dt.datetime, want_s: float, position: float = 1000.0):
    """Open the playback stream at ``at``; returns (texts, init + fragment bytes) once ``want_s``
    seconds of media arrived or the stream ended."""
    texts, binary = [], []
    async with websockets.connect(f"{url}?at={ms(at)}", max_size=None) as ws:
        await ws.send(json.dumps({"type": "position", "t": position, "speed": 1}))
        while True:
            try:
                msg = await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed:
                break
            if isinstance(msg, str):
                texts.append(json.loads(msg))
                if texts[-1]["type"] == "end":
                    break
            else:
                binary.append(msg)
                frames = decode_all(b"".join(binary)) if len(binary) > 1 else []
                if frames and frames[-1][0] >= want_s:
                    break
    return texts, b"".join(binary)


@pytest.mark.req("B5")
async def test_the_stream_starts_at_the_keyframe_before_the_instant_and_crosses_segments(
        ctx, owned, recorder, clip, worker):
    segs = await record(recorder, owned.channel(), clip)
    token = worker.token(owned.channel(), owned.user_id)
    at = segs[0].start + dt.timedelta(milliseconds=2500)  # keyframes every second: 2 s
    texts, data = await stream(worker.ws(token), at, want_s=100)
    assert texts[0]["type"] == "init" and texts[0]["mime"].startswith('video/mp4; codecs="avc1.')
    assert "mp4a.40.2" in texts[0]["mime"]
    piece = texts[1]
    assert piece["type"] == "piece" and piece["t"] == 0
    assert piece["wall"] == ms(segs[0].start) + 2000
    assert texts[-1]["type"] == "end"
    frames = decode_all(data)
    # the keyframe at 2 s, moved to 0 (its presentation time is 0 plus the B-frame delay)
    assert frames[0][1] and 0 <= frames[0][0] <= 0.1
    pts = [p - frames[0][0] for p, _ in frames]
    assert all(b > a for a, b in zip(pts, pts[1:]))
    assert len(frames) == 8 * FPS  # 2 s .. 10 s, across three segment boundaries
    assert pts[-1] == pytest.approx(8 - 1 / FPS, abs=0.002)


@pytest.mark.req("B5")
async def test_the_stream_waits_for_the_player(ctx, owned, recorder, clip, worker):
    """Flow control: no more than the lead (3 s here) ahead of the reported position."""
    segs = await record(recorder, owned.channel(), clip)
    token = worker.token(owned.channel(), owned.user_id)
    async with websockets.connect(f"{worker.ws(token)}?at={ms(segs[0].start)}", max_size=None) as ws:
        await ws.send(json.dumps({"type": "position", "t": 0, "speed": 1}))
        got = []
        with pytest.raises(TimeoutError):
            while True:
                msg = await asyncio.wait_for(ws.recv(), 1.5)
                if isinstance(msg, bytes):
                    got.append(msg)
        held = decode_all(b"".join(got))
        assert 2.9 <= held[-1][0] <= 4.2  # the lead and at most one fragment more
        await ws.send(json.dumps({"type": "position", "t": 6, "speed": 1}))
        msg = await asyncio.wait_for(ws.recv(), 5)  # moves on once the player does
        assert isinstance(msg, (bytes, str))


@pytest.mark.req("B5")
async def test_hls_vod_plays_with_ffmpegs_hls_client(ctx, owned, recorder, clip, clock, worker):
    first, second = await record(recorder, owned.channel(), clip, clock=clock, gap_s=30)
    token = worker.token(owned.channel(), owned.user_id)
    url = f"{worker.http(token)}/vod.m3u8?from={ms(first.start)}&to={ms(second.end)}"
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/vnd.apple.mpegurl")
    text = r.text
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in text and text.rstrip().endswith("#EXT-X-ENDLIST")
    assert text.count("#EXT-X-DISCONTINUITY") == 1  # the gap
    assert text.count("#EXT-X-MAP") == 2 and text.count("#EXT-X-BYTERANGE") == 4  # a GOP each

    def play() -> int:
        with av.open(url) as c:
            return sum(1 for _ in c.decode(c.streams.video[0]))
    assert await asyncio.to_thread(play) == 4 * FPS


@pytest.mark.req("B5")
async def test_a_clip_is_one_faststart_mp4_from_the_keyframe_to_the_end_asked(ctx, owned, recorder, clip, worker):
    segs = await record(recorder, owned.channel(), clip)
    token = worker.token(owned.channel(), owned.user_id)
    t0 = segs[0].start
    start, end = t0 + dt.timedelta(milliseconds=2300), t0 + dt.timedelta(milliseconds=7500)
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{worker.http(token)}/clip.mp4?from={ms(start)}&to={ms(end)}")
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    data = r.content
    order = [kind for kind, _, _ in boxes(data)]
    assert order[:2] == [b"ftyp", b"moov"] and b"moof" in order  # moov first: faststart
    frames = decode_all(data)
    assert frames[0][1] and 0 <= frames[0][0] <= 0.1  # the keyframe at 2 s, at 0 (+ B-frame delay)
    # 2.0 .. 7.5 s: it ends at the first fragment that starts at or after 7.5 s (the test
    # camera's fragments hold one or two frames)
    assert 5.5 * FPS <= len(frames) <= 5.5 * FPS + 2
    with av.open(io.BytesIO(data)) as c:
        assert c.duration / 1e6 == pytest.approx(5.5, abs=0.15)  # + a fragment, + the B-frame delay
        assert c.streams.audio  # sound comes along


@pytest.mark.req("B5")
async def test_clip_errors_are_problem_details(ctx, owned, recorder, clip, worker):
    segs = await record(recorder, owned.channel(), clip)
    token = worker.token(owned.channel(), owned.user_id)
    t0 = ms(segs[0].start)
    async with httpx.AsyncClient() as http:
        empty = await http.get(f"{worker.http(token)}/clip.mp4?from={t0 + 5000}&to={t0 + 5000}")
        long = await http.get(f"{worker.http(token)}/clip.mp4?from={t0}&to={t0 + 2 * 3600_000}")
        nothing = await http.get(f"{worker.http(token)}/clip.mp4?from={t0 - 600_000}&to={t0 - 300_000}")
    assert (empty.status_code, empty.json()["code"]) == (400, "clip-empty-range")
    assert (long.status_code, long.json()["code"]) == (413, "clip-too-long")
    assert (nothing.status_code, nothing.json()["code"]) == (404, "clip-nothing-recorded")
    assert empty.headers["content-type"] == "application/problem+json"


@pytest.mark.req("B5")
async def test_thumbnails_are_the_keyframe_before_the_instant_and_cached(ctx, owned, recorder, clip, worker):
    segs = await record(recorder, owned.channel(), clip)
    token = worker.token(owned.channel(), owned.user_id)
    at = ms(segs[1].start) + 1700
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{worker.http(token)}/thumb.jpg?at={at}&width=160")
        again = await http.get(f"{worker.http(token)}/thumb.jpg?at={at - 300}&width=160")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (160, 120)
    shown = dt.datetime.fromisoformat(r.headers["x-picture-time"])
    assert abs(shown - (segs[1].start + dt.timedelta(seconds=1))) < dt.timedelta(milliseconds=1)
    assert again.content == r.content
    assert worker.server.stats == {**worker.server.stats, "thumbs_made": 1, "thumb_hits": 1}


@pytest.mark.req("B5")
async def test_tokens_are_bound_to_the_channel_and_use_and_expire(ctx, owned, recorder, clip, worker):
    segs = await record(recorder, owned.channel(), clip)
    other = await make_owned(ctx)
    t0 = ms(segs[0].start)
    mine = worker.token(owned.channel(), owned.user_id)
    theirs = worker.token(other.channel(), other.user_id)
    live = worker.token(owned.channel(), owned.user_id, permission="live")
    expired = worker.token(owned.channel(), owned.user_id, ttl=-1)
    tampered = mine[:-3] + ("AAA" if not mine.endswith("AAA") else "BBB")
    q = f"from={t0}&to={t0 + 3000}"
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{worker.http(mine)}/vod.m3u8?{q}")).status_code == 200
        # another channel's token sees nothing of this one, not even by segment id
        assert (await http.get(f"{worker.http(theirs)}/vod.m3u8?{q}")).status_code == 404
        assert (await http.get(f"{worker.http(theirs)}/seg/{segs[0].id}.mp4")).status_code == 404
        assert (await http.get(f"{worker.http(mine)}/seg/{segs[0].id}.mp4",
                               headers={"Range": "bytes=0-99"})).status_code == 206
        assert (await http.get(f"{worker.http(live)}/vod.m3u8?{q}")).json()["code"] == "media-token-forbidden"
        r = await http.get(f"{worker.http(expired)}/clip.mp4?{q}")
        assert (r.status_code, r.json()["code"]) == (410, "media-token-expired")
        assert (await http.get(f"{worker.http(tampered)}/vod.m3u8?{q}")).status_code == 401
        worker.revoked.add(f"user:{owned.user_id}")
        worker.server.access._answers.clear()
        r = await http.get(f"{worker.http(mine)}/vod.m3u8?{q}")
        assert (r.status_code, r.json()["code"]) == (403, "media-revoked")
    async with websockets.connect(f"{worker.ws(expired)}?at={t0}") as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd.code == 4410


@pytest.mark.req("B5", "B9")
async def test_an_open_stream_is_closed_when_playback_is_withdrawn(ctx, owned, recorder, clip, worker):
    segs = await record(recorder, owned.channel(), clip)
    token = worker.token(owned.channel(), owned.user_id)
    async with websockets.connect(f"{worker.ws(token)}?at={ms(segs[0].start)}", max_size=None) as ws:
        await ws.send(json.dumps({"type": "position", "t": 0, "speed": 1}))
        assert isinstance(await asyncio.wait_for(ws.recv(), 5), str)  # init: it is streaming
        worker.revoked.add(f"user:{owned.user_id}")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd.code == 4403
