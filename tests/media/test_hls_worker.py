"""LL-HLS and snapshots through the media worker's own HTTP server, with URLs the web app
mints after the devices domain's authorization: the whole path a Safari user or the
Imou-compatible API takes. The app's lifespan runs the media worker (as one process with
every role); a test clip stands in for the camera pushing into the channel's hub.

Checked with PyAV (FFmpeg's HLS client and decoder): codec, resolution, monotonic
timestamps, consecutive frames; parts and init segments fetched with the token decode.
Refused: expired, tampered, wrong-use tokens; a revoked share or deleted link gets 403 on
its next request; an HLS output nobody asks for stops.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time

import av
import httpx
import pytest
from PIL import Image

from faoyam.media import ChannelId
from faoyam.media.tokens import mint
from tests.conftest import bearer, register
from tests.web.test_device_pages import add, make_device
from tests.web.test_live_pages import owner_and_friend

from .clipfeed import feeding
from .conftest import probe, strictly_increasing, wait_for
from .test_hls import parse_playlist, read_frames


@pytest.fixture
def settings(settings):
    settings.media_hls_idle_seconds = 3.0  # an unused output stops soon
    settings.media_snapshot_seconds = 0  # the keeper is tested in tests/web/test_home_snapshots.py
    return settings


@pytest.fixture
def worker(app, ctx):
    """The media worker the app started: its viewer server and where to reach it."""
    ctx.settings.media_public_url = f"http://127.0.0.1:{ctx.settings.media_http_port}"
    viewers, _, _ = ctx.live_server
    return viewers


def camera(ctx, device_id: str, clip, prefill_ms: int = 0, channel: int = 0, stream: str = "main"):
    """The device pushing its channel at real-time rate (what it does when asked over MQTT)."""
    return feeding(ctx.media_hubs.hub(ChannelId(device_id, channel, stream)), clip, prefill_ms=prefill_ms)


def tampered(url: str, **changes) -> str:
    """The URL with its token's payload changed (the signature kept)."""
    prefix, rest = url.split("/media/hls/")
    token, tail = rest.split("/", 1)
    payload, sig = token.split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body.update(changes)
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    return f"{prefix}/media/hls/{forged}.{sig}/{tail}"


async def hls_url(client, path: str, session=None) -> dict:
    r = await client.get(path, headers=bearer(session) if session else {})
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    return r.json()


@pytest.mark.req("B4")
async def test_an_hls_client_plays_the_channel_through_the_media_worker(client, ctx, worker, h264_clip):
    owner = await register(client, ctx, email="owner@example.com")
    await make_device(ctx)
    dev = await add(client, owner, name="Gate")
    body = await hls_url(client, f"/devices/{dev['id']}/live/0/hls", owner)
    assert body["url"].startswith(f"{ctx.settings.media_public_url}/media/hls/") and body["url"].endswith("/master.m3u8")
    assert body["plain_url"].endswith("/plain.m3u8") and body["expires_in"] == ctx.settings.media_token_seconds
    assert not worker.hls.streams, "no HLS output before the first request"
    async with camera(ctx, dev["id"], h264_clip):
        name, pts, codes = await asyncio.to_thread(read_frames, body["url"], 60)
        master = (await httpx.AsyncClient().get(body["url"])).text
        assert 'CODECS="avc1.' in master and "RESOLUTION=320x240" in master
        assert set(worker.hls.streams) == {ChannelId(dev["id"], 0, "main")}, "started on demand"
    assert name == "h264"
    assert len(pts) == 60 and strictly_increasing(pts), "monotonic timestamps"
    steps = [(b - a) % len(h264_clip.packets) for a, b in zip(codes, codes[1:])]
    assert all(step == 1 for step in steps), "consecutive frames, none lost or repeated"


@pytest.mark.req("B4")
async def test_parts_and_init_segments_come_with_the_token_and_decode(client, ctx, worker, h264_clip):
    owner = await register(client, ctx, email="owner@example.com")
    await make_device(ctx)
    dev = await add(client, owner)
    body = await hls_url(client, f"/devices/{dev['id']}/live/0/hls?stream=sub", owner)
    base = body["url"].rsplit("/", 1)[0]
    async with camera(ctx, dev["id"], h264_clip, stream="sub"), httpx.AsyncClient(timeout=20) as http:
        first = await http.get(f"{base}/playlist.m3u8", headers={"Origin": "http://app.example"})
        assert first.headers["access-control-allow-origin"] == "*", "hls.js on another origin may read it"
        pl = parse_playlist(first.text)
        assert pl["attrs"]["CAN-BLOCK-RELOAD"] == "YES" and pl["part_target"] <= 0.5
        # a blocking reload for the hinted part returns once it exists, then the part itself
        msn, part = (int(x) for x in pl["hint"].removeprefix("part/").removesuffix(".m4s").split("."))
        held = await http.get(f"{base}/playlist.m3u8", params={"_HLS_msn": msn, "_HLS_part": part})
        assert held.status_code == 200 and f"part/{msn}.{part}.m4s" in held.text
        held_pl = parse_playlist(held.text)
        init = (await http.get(f"{base}/{held_pl['maps'][-1]}")).content
        # every part of the newest complete segment, in order, decodes as one stream
        segment = held_pl["segments"][-1]
        parts = [(await http.get(f"{base}/{p['uri']}")) for p in segment["parts"]]
        assert all(r.status_code == 200 and r.content[4:8] == b"moof" for r in parts)
        assert segment["parts"][0]["independent"]
        whole = (await http.get(f"{base}/{segment['uri']}")).content
    from_parts = probe(init + b"".join(r.content for r in parts))
    assert from_parts.streams["video"] == ("h264", 320, 240)
    assert from_parts.decoded == len(from_parts.video) > 0
    assert strictly_increasing([dts for dts, _, _ in from_parts.video])
    assert probe(init + whole).video == from_parts.video, "the segment is its parts"


@pytest.mark.req("B4")
async def test_bad_tokens_are_refused_as_problems(client, ctx, worker, h264_clip):
    owner = await register(client, ctx, email="owner@example.com")
    await make_device(ctx)
    dev = await add(client, owner)
    cam = ChannelId(dev["id"], 0, "main")
    grant = f"user:{owner['user_id']}"
    base = f"{ctx.settings.media_public_url}/media/hls"
    good = (await hls_url(client, f"/devices/{dev['id']}/live/0/hls", owner))["url"]
    async with camera(ctx, dev["id"], h264_clip), httpx.AsyncClient(timeout=20) as http:
        async def refused(url: str) -> tuple[int, str]:
            r = await http.get(url)
            assert r.headers["content-type"] == "application/problem+json", r.text
            return r.status_code, r.json()["code"]

        assert await refused(f"{base}/{mint(ctx.key, cam, grant, permission='hls', ttl=-1)}/master.m3u8") == (
            410, "media-token-expired")
        assert await refused(tampered(good, c=1)) == (401, "media-token-bad")  # another channel
        assert await refused(tampered(good, d="0" * 32)) == (401, "media-token-bad")  # another device
        assert await refused(good.replace("/media/hls/", "/media/hls/x")) == (401, "media-token-bad")
        live = mint(ctx.key, cam, grant)  # a one-use WebSocket token is no HLS token
        assert await refused(f"{base}/{live}/master.m3u8") == (403, "media-token-forbidden")
        snap = mint(ctx.key, cam, grant, permission="snapshot")
        assert await refused(f"{base}/{snap}/playlist.m3u8") == (403, "media-token-forbidden")
        # a token of another viewer's camera plays that camera only: the stream is the token's
        assert (await http.get(good)).status_code == 200
        assert set(worker.hls.streams) == {cam}


@pytest.mark.req("B4", "B9")
async def test_revoking_a_share_or_deleting_a_link_stops_hls_at_the_next_request(client, ctx, worker, h264_clip):
    owner, friend, dev, share_id = await owner_and_friend(client, ctx)
    friend_url = (await hls_url(client, f"/devices/{dev['id']}/live/0/hls", friend))["url"]
    r = await client.post(f"/api/v1/devices/{dev['id']}/share-links", json={"hours": 1}, headers=bearer(owner))
    link, link_id = r.json()["token"], r.json()["id"]
    link_url = (await hls_url(client, f"/s/{link}/live/0/hls"))["url"]
    owner_url = (await hls_url(client, f"/devices/{dev['id']}/live/0/hls", owner))["url"]
    playlist = {u: u.replace("/master.m3u8", "/playlist.m3u8") for u in (friend_url, link_url, owner_url)}
    async with camera(ctx, dev["id"], h264_clip), httpx.AsyncClient(timeout=20) as http:
        for url in playlist.values():
            assert (await http.get(url)).status_code == 200

        async def refused_after(url: str) -> float:
            start = time.monotonic()
            while True:
                r = await http.get(playlist[url])
                if r.status_code == 403:
                    assert r.json()["code"] == "media-revoked"
                    return time.monotonic() - start
                assert r.status_code == 200
                if time.monotonic() - start > 10:
                    raise AssertionError("still served 10 s after the revocation")
                await asyncio.sleep(0.1)

        r = await client.delete(f"/api/v1/devices/{dev['id']}/shares/{share_id}", headers=bearer(owner))
        assert r.status_code == 204, r.text
        print(f"\nHLS refused {await refused_after(friend_url):.2f} s after the share was revoked")
        assert (await http.get(playlist[link_url])).status_code == 200, "the link is not affected"
        r = await client.delete(f"/api/v1/devices/{dev['id']}/share-links/{link_id}", headers=bearer(owner))
        assert r.status_code == 204
        print(f"HLS refused {await refused_after(link_url):.2f} s after the link was deleted")
        assert (await http.get(playlist[friend_url])).status_code == 403, "revoked stays revoked"
        assert (await http.get(playlist[owner_url])).status_code == 200, "the owner still watches"
    # nobody: the share's and the link's HLS URLs are gone from the web app too
    assert (await client.get(f"/devices/{dev['id']}/live/0/hls", headers=bearer(friend))).status_code == 404
    assert (await client.get(f"/s/{link}/live/0/hls")).status_code == 404


@pytest.mark.req("B4")
async def test_an_hls_session_outlives_its_token_while_used_and_the_output_stops_when_unused(
        client, ctx, worker, h264_clip):
    owner = await register(client, ctx, email="owner@example.com")
    await make_device(ctx)
    dev = await add(client, owner)
    cam = ChannelId(dev["id"], 0, "main")
    base = f"{ctx.settings.media_public_url}/media/hls"
    token = mint(ctx.key, cam, f"user:{owner['user_id']}", permission="hls", ttl=1.5)
    unused = mint(ctx.key, cam, f"user:{owner['user_id']}", permission="hls", ttl=1.5)
    expires = int(time.time() + 1.5)
    async with camera(ctx, dev["id"], h264_clip), httpx.AsyncClient(timeout=20) as http:
        assert (await http.get(f"{base}/{token}/playlist.m3u8")).status_code == 200
        while time.time() <= expires + 0.5:  # keep playing past the token's expiry
            assert (await http.get(f"{base}/{token}/playlist.m3u8")).status_code == 200
            await asyncio.sleep(0.2)
        assert (await http.get(f"{base}/{token}/playlist.m3u8")).status_code == 200, "the session goes on"
        r = await http.get(f"{base}/{unused}/playlist.m3u8")
        assert r.status_code == 410, "a token first shown after its expiry opens nothing"
        hub = ctx.media_hubs.get(cam)
        assert len(hub.subscribers) == 1, "one HLS output for the stream"
        # no request for media_hls_idle_seconds: the output stops and lets go of the hub
        await wait_for(lambda: not worker.hls.streams, timeout=15, what="the unused HLS output to stop")
        await wait_for(lambda: not hub.subscribers, what="the hub to lose its HLS subscriber")


@pytest.mark.req("B4")
async def test_a_snapshot_url_gives_the_latest_keyframe_at_the_stream_resolution(client, ctx, worker, h264_clip):
    owner, friend, dev, _ = await owner_and_friend(client, ctx, permissions=("playback",))
    r = await client.get(f"/devices/{dev['id']}/live/0/snapshot/url", headers=bearer(friend))
    assert r.status_code == 403 and r.json()["code"] == "permission-missing"
    body = (await client.get(f"/devices/{dev['id']}/live/0/snapshot/url", headers=bearer(owner))).json()
    assert "/media/snapshot/" in body["url"] and body["url"].endswith(".jpg")
    async with camera(ctx, dev["id"], h264_clip, prefill_ms=2500), httpx.AsyncClient(timeout=20) as http:
        r = await http.get(body["url"])
        small = await http.get(body["url"], params={"width": 160})
        hls = (await hls_url(client, f"/devices/{dev['id']}/live/0/hls", owner))["url"]
        wrong = await http.get(hls.replace("/media/hls/", "/media/snapshot/").replace("/master.m3u8", ".jpg"))
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(r.content)).size == (320, 240)
    with av.open(io.BytesIO(r.content)) as jpeg:
        frame = next(jpeg.decode(video=0))
        assert (frame.width, frame.height) == (320, 240)
    assert Image.open(io.BytesIO(small.content)).size == (160, 120)
    assert wrong.status_code == 403 and wrong.json()["code"] == "media-token-forbidden"
