"""The live URL routes pick what the browser can play: an H.265 camera's own stream for a
browser that plays HEVC, else its H.264 sub-stream, else the media worker's transcode —
from the streams the device reported in its configuration. For a share link too."""

from __future__ import annotations

import pytest

from faoyam.devices.models import Device
from faoyam.media import ChannelId
from faoyam.media.tokens import verify
from tests.conftest import bearer
from tests.web.test_device_pages import use_cookie
from tests.web.test_live_pages import initial_urls, owner_and_friend, token_of

H265_WITH_SUB = {"mainStream": {"codec": "h265", "resolution": "1920x1080"},
                 "subStream": {"codec": "h264", "resolution": "640x360"}}
H265_ONLY = {"mainStream": {"codec": "h265", "resolution": "1920x1080"}}


async def reports(ctx, device_id: str, config: dict) -> None:
    """What the gateway stores from the device's configuration report."""
    async with ctx.db.transaction() as s:
        (await s.get(Device, device_id)).config = config


def stream_of(ctx, url: str) -> str:
    return verify(ctx.key, token_of(url)).channel.stream


@pytest.mark.req("B4")
@pytest.mark.parametrize("config, without_hevc", [
    ({"mainStream": {"codec": "h264"}}, "main"),
    (H265_WITH_SUB, "sub"),
    (H265_ONLY, "main.h264"),
])
async def test_the_url_opens_what_the_browser_can_play(client, ctx, config, without_hevc):
    owner, friend, dev, _ = await owner_and_friend(client, ctx)
    await reports(ctx, dev["id"], config)
    url = f"/devices/{dev['id']}/live/0/url"
    for who in (owner, friend):
        r = await client.get(url + "?stream=main&hevc=0", headers=bearer(who))
        assert r.status_code == 200 and r.json()["stream"] == without_hevc == stream_of(ctx, r.json()["url"])
        r = await client.get(url + "?stream=main&hevc=1", headers=bearer(who))
        assert r.json()["stream"] == "main", "a browser that plays HEVC gets the camera's stream as it is"
    # the page's first URL assumes no HEVC, and says when an HEVC browser should ask again
    use_cookie(client, friend)
    page = (await client.get(f"/devices/{dev['id']}/live/0")).text
    (initial,) = initial_urls(page)
    assert stream_of(ctx, initial) == without_hevc
    assert ("data-hevc-choice" in page) == (without_hevc != "main")
    grid = (await client.get("/live")).text
    assert [stream_of(ctx, u) for u in initial_urls(grid)] == [without_hevc]


@pytest.mark.req("B4")
async def test_a_player_that_could_not_play_what_it_got_falls_back_to_h264(client, ctx):
    owner, _, dev, _ = await owner_and_friend(client, ctx)
    url = f"/devices/{dev['id']}/live/0/url"
    # nothing reported (a bridged or ffmpeg-pushed camera): as it is, until the player says no
    r = await client.get(url + "?hevc=0", headers=bearer(owner))
    assert r.json()["stream"] == "main"
    r = await client.get(url + "?hevc=0&fallback=1", headers=bearer(owner))
    assert r.json()["stream"] == "main.h264"
    verify(ctx.key, token_of(r.json()["url"]), channel=ChannelId(dev["id"], 0, "main.h264"))
    await reports(ctx, dev["id"], H265_WITH_SUB)
    r = await client.get(url + "?hevc=1&fallback=1", headers=bearer(owner))
    assert r.json()["stream"] == "sub"
    # the player cannot ask for a transcode (or anything else) itself
    assert (await client.get(url + "?stream=main.h264", headers=bearer(owner))).status_code == 422


@pytest.mark.req("B4", "B9")
async def test_a_share_link_viewer_gets_the_same_choice(client, ctx):
    owner, _, dev, _ = await owner_and_friend(client, ctx)
    await reports(ctx, dev["id"], H265_ONLY)
    r = await client.post(f"/api/v1/devices/{dev['id']}/share-links", json={"hours": 1}, headers=bearer(owner))
    token = r.json()["token"]
    client.cookies.clear()
    r = await client.get(f"/s/{token}/live/0/url?hevc=0")
    assert r.status_code == 200 and r.json()["stream"] == "main.h264"
    assert (await client.get(f"/s/{token}/live/0/url?hevc=1")).json()["stream"] == "main"
    page = (await client.get(f"/s/{token}/live/0")).text
    assert stream_of(ctx, initial_urls(page)[0]) == "main.h264" and "data-hevc-choice" in page
