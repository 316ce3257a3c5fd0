"""Live-view pages and media URLs: who gets a URL (owner, a share with live view, a share
link), what the URL is bound to, and the devices-backed revocation check the media worker polls."""

from __future__ import annotations

import html as htmllib
import re

import pytest

from faoyam.media import ChannelId
from faoyam.media.grants import devices_revocation, still_allowed
from faoyam.media.tokens import verify
from tests.conftest import bearer, register
from tests.web.test_device_pages import add, make_device, use_cookie


def initial_urls(page: str) -> list[str]:
    return [htmllib.unescape(u) for u in re.findall(r'data-initial-url="([^"]+)"', page)]


def token_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


async def owner_and_friend(client, ctx, *, channels: int = 1, permissions=("live",), share_channels=None):
    owner = await register(client, ctx, email="owner@example.com", nickname="Owner")
    friend = await register(client, ctx, email="friend@example.com", nickname="Friend")
    await make_device(ctx, kind="nvr" if channels > 1 else "camera", channels=channels)
    dev = await add(client, owner, name="Gate")
    body = {"contact": "friend@example.com", "permissions": list(permissions)}
    if share_channels is not None:
        body["channels"] = share_channels
    r = await client.post(f"/api/v1/devices/{dev['id']}/shares", json=body, headers=bearer(owner))
    assert r.status_code == 201, r.text
    share_id = r.json()["id"]
    r = await client.post(f"/api/v1/device-shares/{share_id}/accept", headers=bearer(friend))
    assert r.status_code == 200, r.text
    return owner, friend, dev, share_id


@pytest.mark.req("B4")
async def test_the_owner_gets_a_live_page_with_a_signed_url_for_that_channel_and_viewer(client, ctx):
    owner, _, dev, _ = await owner_and_friend(client, ctx)
    use_cookie(client, owner)
    r = await client.get(f"/devices/{dev['id']}/live/0")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    assert 'src="/static/js/live-player.js"' in r.text and "data-live-audio" in r.text and "data-live-fullscreen" in r.text
    (url,) = initial_urls(r.text)
    assert url.startswith(f"ws://testserver:{ctx.settings.media_http_port}/media/live/")
    # The page's policy lets the player reach the media worker and play from a MediaSource.
    csp = r.headers["content-security-policy"]
    assert f"connect-src 'self' ws://testserver:{ctx.settings.media_http_port};" in csp
    assert "media-src 'self' blob:" in csp and "script-src 'self';" in csp
    grant = verify(ctx.key, token_of(url), channel=ChannelId(dev["id"], 0, "main"))
    assert grant.grant == f"user:{owner['user_id']}"
    # The player's fresh-URL route: a new token every time, for the asked stream.
    r = await client.get(f"/devices/{dev['id']}/live/0/url?stream=sub")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    fresh = r.json()["url"]
    assert token_of(fresh) != token_of(url) and r.json()["expires_in"] == ctx.settings.media_token_seconds
    verify(ctx.key, token_of(fresh), channel=ChannelId(dev["id"], 0, "sub"))
    # The device page and Home link to it.
    assert f'href="/devices/{dev["id"]}/live/0"' in (await client.get(f"/devices/{dev['id']}")).text
    assert 'href="/live"' in (await client.get("/home")).text


@pytest.mark.req("B4", "B9")
async def test_who_gets_a_media_url(client, ctx):
    owner, friend, dev, share_id = await owner_and_friend(client, ctx, permissions=("playback",))
    stranger = await register(client, ctx, email="stranger@example.com", nickname="Stranger")
    path = f"/devices/{dev['id']}/live/0"
    r = await client.get(path + "/url", headers=bearer(friend))
    assert r.status_code == 403 and r.json()["code"] == "permission-missing"
    r = await client.get(path + "/url", headers=bearer(stranger))
    assert r.status_code == 404 and r.json()["code"] == "device-not-found"
    r = await client.get(path + "/url")
    assert r.status_code == 401
    use_cookie(client, friend)
    assert (await client.get(path)).status_code == 404  # the page: no such thing to see
    assert initial_urls((await client.get("/live")).text) == []
    client.cookies.clear()
    assert (await client.get(path)).status_code == 303  # signed out: to the sign-in page
    # With live view granted, the invitee gets a URL bound to their own account.
    r = await client.patch(f"/api/v1/devices/{dev['id']}/shares/{share_id}", json={"permissions": ["live"]},
                           headers=bearer(owner))
    assert r.status_code == 200, r.text
    r = await client.get(path + "/url", headers=bearer(friend))
    assert r.status_code == 200
    assert verify(ctx.key, token_of(r.json()["url"])).grant == f"user:{friend['user_id']}"
    assert (await client.get(path + "/url?stream=other", headers=bearer(friend))).status_code == 422


@pytest.mark.req("B4", "B9")
async def test_the_grid_shows_every_channel_the_user_may_watch(client, ctx):
    owner, friend, dev, _ = await owner_and_friend(client, ctx, channels=4, share_channels=[1, 3])
    use_cookie(client, owner)
    r = await client.get("/live")
    assert r.status_code == 200
    owner_channels = [verify(ctx.key, token_of(u)).channel.channel for u in initial_urls(r.text)]
    assert owner_channels == [0, 1, 2, 3]
    use_cookie(client, friend)
    urls = initial_urls((await client.get("/live")).text)
    assert [verify(ctx.key, token_of(u)).channel for u in urls] == [ChannelId(dev["id"], 1), ChannelId(dev["id"], 3)]
    assert (await client.get(f"/devices/{dev['id']}/live/0/url")).status_code == 404  # not shared
    assert (await client.get(f"/devices/{dev['id']}/live/3")).status_code == 200
    th = await client.get("/live?lang=th")
    assert "กล้องทั้งหมด" in th.text


@pytest.mark.req("B4", "B9")
async def test_a_share_link_opens_live_view_of_its_channels_only(client, ctx):
    owner = await register(client, ctx, email="owner@example.com")
    await make_device(ctx, kind="nvr", channels=2)
    dev = await add(client, owner, name="Shop")
    r = await client.post(f"/api/v1/devices/{dev['id']}/share-links", json={"hours": 1, "channels": [1]},
                          headers=bearer(owner))
    assert r.status_code == 201, r.text
    token, link_id = r.json()["token"], r.json()["id"]
    page = await client.get(f"/s/{token}")
    assert f'href="/s/{token}/live/1"' in page.text
    r = await client.get(f"/s/{token}/live/1")
    assert r.status_code == 200 and r.headers["referrer-policy"] == "no-referrer"
    (url,) = initial_urls(r.text)
    grant = verify(ctx.key, token_of(url), channel=ChannelId(dev["id"], 1, "main"))
    assert grant.grant == f"link:{link_id}"
    assert await still_allowed(ctx, grant)
    assert (await client.get(f"/s/{token}/live/0")).status_code == 404  # not a channel of this link
    assert (await client.get(f"/s/{token}/live/0/url")).status_code == 404
    assert (await client.get(f"/s/{token}/live/1/url")).status_code == 200
    r = await client.delete(f"/api/v1/devices/{dev['id']}/share-links/{link_id}", headers=bearer(owner))
    assert r.status_code == 204
    assert not await still_allowed(ctx, grant)
    assert (await client.get(f"/s/{token}/live/1")).status_code == 404
    assert (await client.get(f"/s/{token}/live/1/url")).status_code == 404


@pytest.mark.req("B4", "B9")
async def test_the_revocation_check_follows_shares_permissions_and_unbinding(client, ctx):
    owner, friend, dev, share_id = await owner_and_friend(client, ctx, channels=2, share_channels=[0])
    revoked = devices_revocation(ctx)
    r = await client.get(f"/devices/{dev['id']}/live/0/url", headers=bearer(friend))
    friend_grant = verify(ctx.key, token_of(r.json()["url"]))
    r = await client.get(f"/devices/{dev['id']}/live/1/url", headers=bearer(owner))
    owner_grant = verify(ctx.key, token_of(r.json()["url"]))
    assert not await revoked(friend_grant) and not await revoked(owner_grant)
    # Live permission taken away: revoked; given back: fine; the share revoked: revoked.
    await client.patch(f"/api/v1/devices/{dev['id']}/shares/{share_id}", json={"permissions": ["playback"]},
                       headers=bearer(owner))
    assert await revoked(friend_grant)
    await client.patch(f"/api/v1/devices/{dev['id']}/shares/{share_id}", json={"permissions": ["live"]},
                       headers=bearer(owner))
    assert not await revoked(friend_grant)
    r = await client.delete(f"/api/v1/devices/{dev['id']}/shares/{share_id}", headers=bearer(owner))
    assert r.status_code == 204
    assert await revoked(friend_grant)
    # An unknown kind of grant is never allowed.
    forged = friend_grant.__class__(friend_grant.channel, "live", "admin:everything", friend_grant.expires, "n")
    assert await revoked(forged)
    # The device deleted (unbound): even the owner's session ends.
    r = await client.request("DELETE", f"/api/v1/devices/{dev['id']}", headers=bearer(owner))
    assert r.status_code in (200, 202, 204), r.text
    assert await revoked(owner_grant)


async def test_the_media_url_follows_the_public_url_setting(client, ctx):
    owner, _, dev, _ = await owner_and_friend(client, ctx)
    ctx.settings.media_public_url = "wss://media.example.com/"
    r = await client.get(f"/devices/{dev['id']}/live/0/url", headers=bearer(owner))
    assert r.json()["url"].startswith("wss://media.example.com/media/live/")
