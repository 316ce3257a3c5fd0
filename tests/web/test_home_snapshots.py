"""Home's device cards show the channel's last live snapshot (B4): the media worker keeps
the latest keyframe of a running stream as a declared blob, the card shows it through an
authorized route, a cover set by the owner still wins, and the picture goes with the
device's binding (export lists it, deleting the device or the account removes it)."""

from __future__ import annotations

import asyncio
import html as htmllib
import io
import re

import av
import httpx
import pytest
from PIL import Image
from sqlalchemy import select

from faoyam.devices import live_snapshots
from faoyam.devices.models import Channel
from faoyam.media import ChannelId, StreamHub
from faoyam.media.snapshot import decode_keyframe, latest_keyframe
from faoyam.privacy.blobrefs import sweep_tombstones
from tests.conftest import all_blob_bytes, bearer, register
from tests.devices.conftest import png
from tests.media.clipfeed import ClipFeeder, feeding
from tests.media.conftest import wait_for
from tests.web.test_device_pages import add, make_device, use_cookie
from tests.web.test_live_pages import owner_and_friend


@pytest.fixture
def settings(settings):
    settings.media_snapshot_seconds = 0.3  # a picture every pass: the test does not wait minutes
    return settings


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    import os

    from faoyam.media.testvideo import cached_clip

    os.environ.setdefault("FAOYAM_MEDIA_CACHE", str(tmp_path_factory.mktemp("media-cache")))
    return cached_clip(audio=True, bframes=2, seconds=4.0)


def streaming(ctx, device_id: str, clip, channel: int = 0, stream: str = "main"):
    """The camera pushing its channel (what it does while someone watches or records)."""
    return feeding(ctx.media_hubs.hub(ChannelId(device_id, channel, stream)), clip, prefill_ms=500, speed=2.0)


async def snapshot_key(ctx, device_id: str, channel: int = 0) -> str | None:
    async with ctx.db.session() as s:
        return (await s.execute(select(Channel.snapshot_key).where(
            Channel.device_id == device_id, Channel.index == channel))).scalar_one()


async def kept(ctx, device_id: str, channel: int = 0, other_than: str | None = None) -> str:
    """Wait until the media worker kept a (new) picture of the channel; its blob key."""
    keys: list = []

    async def check():
        key = await snapshot_key(ctx, device_id, channel)
        if key and key != other_than:
            keys.append(key)

    async def wait():
        while not keys:
            await check()
            await asyncio.sleep(0.1)

    await asyncio.wait_for(wait(), 15)
    return keys[0]


def card_images(page: str) -> list[str]:
    return [htmllib.unescape(u) for u in re.findall(r'<div class="device-cover">\s*<img[^>]*src="([^"]+)"', page)]


@pytest.mark.req("B4")
async def test_a_card_shows_the_last_snapshot_and_a_cover_still_wins(client, ctx, app, clip):
    owner, friend, dev, share_id = await owner_and_friend(client, ctx)
    use_cookie(client, owner)
    home = (await client.get("/home")).text
    assert card_images(home) == [], "no snapshot yet: the grey icon stays"
    assert (await client.get(f"/devices/{dev['id']}/live/0/last.jpg")).status_code == 404
    async with streaming(ctx, dev["id"], clip):
        first = await kept(ctx, dev["id"])
        second = await kept(ctx, dev["id"], other_than=first)  # replaced while the stream runs
    (src,) = card_images((await client.get("/home")).text)
    assert src.startswith(f"/devices/{dev['id']}/live/0/last.jpg?v=")
    r = await client.get(src)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    assert r.headers["cache-control"].startswith("private")
    assert Image.open(io.BytesIO(r.content)).size == (320, 240), "the stream's resolution"
    with av.open(io.BytesIO(r.content)) as jpeg:
        assert next(jpeg.decode(video=0)).width == 320
    # the replaced picture is gone from the store (tombstoned in the replacing transaction)
    await sweep_tombstones(ctx.db, ctx.blobs)
    with pytest.raises(Exception):
        await ctx.blobs.read(first)
    assert await ctx.blobs.read(second) == r.content or await snapshot_key(ctx, dev["id"]) != second

    # the invitee with live view sees it too; the Thai page is the same card
    use_cookie(client, friend)
    assert card_images((await client.get("/home?lang=th")).text) == [src]
    assert (await client.get(src)).status_code == 200
    # without live view: no picture on the card, and the route refuses
    r = await client.patch(f"/api/v1/devices/{dev['id']}/shares/{share_id}", json={"permissions": ["playback"]},
                           headers=bearer(owner))
    assert r.status_code == 200, r.text
    assert card_images((await client.get("/home")).text) == []
    r = await client.get(src)
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    stranger = await register(client, ctx, email="stranger@example.com", nickname="Stranger")
    assert (await client.get(src, headers=bearer(stranger))).status_code == 404
    client.cookies.clear()
    assert (await client.get(src)).status_code == 401, "never a public address"

    # a cover set by the owner wins over the snapshot
    use_cookie(client, owner)
    r = await client.put(f"/api/v1/devices/{dev['id']}/cover", content=png(color=(200, 30, 30)),
                         headers={**bearer(owner), "content-type": "image/png"})
    assert r.status_code == 204, r.text
    assert card_images((await client.get("/home")).text) == [f"/api/v1/devices/{dev['id']}/cover"]


@pytest.mark.req("B4", "B9")
async def test_a_share_link_reads_the_snapshot_of_its_channels_only(client, ctx, app, clip):
    owner = await register(client, ctx, email="owner@example.com")
    await make_device(ctx, kind="nvr", channels=2)
    dev = await add(client, owner)
    r = await client.post(f"/api/v1/devices/{dev['id']}/share-links", json={"hours": 1, "channels": [1]},
                          headers=bearer(owner))
    token = r.json()["token"]
    async with streaming(ctx, dev["id"], clip, channel=1, stream="sub"), streaming(ctx, dev["id"], clip, channel=0):
        await kept(ctx, dev["id"], 1)
        await kept(ctx, dev["id"], 0)
    r = await client.get(f"/s/{token}/live/1/last.jpg")
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).size == (320, 240)
    assert r.headers["referrer-policy"] == "no-referrer"
    assert (await client.get(f"/s/{token}/live/0/last.jpg")).status_code == 404
    use_cookie(client, owner)
    (src,) = card_images((await client.get("/home")).text)
    assert "/live/0/last.jpg" in src, "an NVR's card shows its first channel"


@pytest.mark.req("B4", "R1", "R3", "B10")
async def test_the_snapshot_is_exported_and_goes_with_the_device_and_the_account(client, ctx, app, clip):
    owner = await register(client, ctx, email="owner@example.com")
    await make_device(ctx)
    dev = await add(client, owner)
    async with streaming(ctx, dev["id"], clip):
        key = await kept(ctx, dev["id"])
    picture = await ctx.blobs.read(key)
    doc = (await client.get("/api/v1/privacy/export", headers=bearer(owner))).json()
    assert "live_snapshot" in {b["kind"] for b in doc["blobs"].values()}
    (channel,) = doc["records"]["device_channels"]["rows"]
    assert channel["snapshot_key"] == key and channel["snapshot_at"]
    assert "B4" in doc["processing"]

    # deleting the device tombstones the picture; the sweep removes it from the store
    r = await client.delete(f"/api/v1/devices/{dev['id']}", headers=bearer(owner))
    assert r.status_code in (200, 204), r.text
    await sweep_tombstones(ctx.db, ctx.blobs)
    assert picture[100:164] not in await all_blob_bytes(ctx)
    assert await snapshot_key(ctx, dev["id"]) is None

    # an account erased with its device: the picture goes too
    await make_device(ctx, serial="FYWEB0000002", code="WEB124")
    dev2 = await add(client, owner, serial="FYWEB0000002", code="WEB124")
    async with streaming(ctx, dev2["id"], clip):
        key2 = await kept(ctx, dev2["id"])
    picture2 = await ctx.blobs.read(key2)
    assert (await client.delete("/api/v1/me", headers=bearer(owner))).status_code == 200
    await sweep_tombstones(ctx.db, ctx.blobs)
    assert picture2[100:164] not in await all_blob_bytes(ctx)


async def test_a_channel_of_an_unbound_device_keeps_no_picture(client, ctx, app, clip):
    """A camera still pushing after its device was removed: nothing is written (or left)."""
    owner = await register(client, ctx, email="owner@example.com")
    await make_device(ctx)
    dev = await add(client, owner)
    assert (await client.delete(f"/api/v1/devices/{dev['id']}", headers=bearer(owner))).status_code in (200, 204)
    viewers, _, _ = ctx.live_server
    async with streaming(ctx, dev["id"], clip):
        await wait_for(lambda: viewers.keeper.kept == 0 and ctx.media_hubs.get(ChannelId(dev["id"])).current_gop,
                       what="a GOP in the hub")
        assert await viewers.keeper.pass_once() == 0
    assert await snapshot_key(ctx, dev["id"]) is None
    assert [k async for k in ctx.blobs.keys() if k.startswith("live_snapshot/")] == []


def keyframe_jpeg(clip) -> bytes:
    """What the keeper would store: the clip's first keyframe, decoded to JPEG."""
    hub = StreamHub(ChannelId("shot"))
    ClipFeeder(hub, clip).feed_ms(500)
    track, sample, _ = latest_keyframe(hub)
    return decode_keyframe(track, sample)


@pytest.mark.browser
@pytest.mark.req("B4")
async def test_the_card_picture_loads_in_chromium(ctx, live_server, browser, shoot, clip):
    """The card's <img> loads through the authorized route in a real browser (cookie, CSP)."""
    from faoyam.devices.ports import FactoryDevice
    from faoyam.devices.registry import factory_register
    from tests.web.test_browser import _account, _signed_in_page

    base = live_server.url
    await factory_register(ctx, FactoryDevice(serial="FYCAM00077", kind="camera", model="FY-C2", channels=1,
                                              safety_code="K7M2Q9", factory_secret="factory-secret-77"))
    owner = await _account(base, ctx, "owner@example.com", "Anong")
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post("/api/v1/devices", json={"serial": "FYCAM00077", "safety_code": "K7M2Q9", "name": "Garden"},
                            headers=bearer(owner))
        assert r.status_code == 201, r.text
    device_id = r.json()["id"]
    assert await live_snapshots.store_snapshot(ctx, device_id, 0, keyframe_jpeg(clip))
    errors: list[str] = []
    context, page = await _signed_in_page(browser, base, owner, errors)
    try:
        await page.goto(base + "/home")
        img = page.locator(f'[data-device="{device_id}"] .device-cover img')
        await img.wait_for(state="visible")
        await page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=await img.element_handle())
        assert await img.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [320, 240]
        await shoot(page, "27-home-snapshot-card")
        assert errors == []
    finally:
        await context.close()
