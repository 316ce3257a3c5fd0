"""The playback page and its media URLs: only the owner and invitees whose share has
``playback`` get them; the URL's token is bound to the channel stream, the viewer and the
playback use, and the devices-backed re-check follows the share's permission."""

from __future__ import annotations

import pytest

from faoyam.media import ChannelId
from faoyam.media.grants import still_allowed
from faoyam.media.tokens import verify
from tests.conftest import bearer, register
from tests.web.test_device_pages import use_cookie
from tests.web.test_live_pages import owner_and_friend


def token_of(url: str) -> str:
    return url.split("/media/playback/")[1].split("/")[0]


@pytest.mark.req("B5")
async def test_the_owner_gets_the_page_and_urls_bound_to_channel_and_use(client, ctx):
    owner, _, dev, _ = await owner_and_friend(client, ctx)
    use_cookie(client, owner)
    page = await client.get(f"/devices/{dev['id']}/playback/0")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert 'src="/static/js/playback.js"' in page.text and "data-clip-download" in page.text
    assert f'href="/devices/{dev["id"]}/live/0"' in page.text  # jump to live
    csp = page.headers["content-security-policy"]
    port = ctx.settings.media_http_port
    assert f"img-src 'self' http://testserver:{port}" in csp and f"ws://testserver:{port}" in csp
    device_page = await client.get(f"/devices/{dev['id']}")
    assert f'href="/devices/{dev["id"]}/playback/0"' in device_page.text
    r = await client.get(f"/devices/{dev['id']}/playback/0/url")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    body = r.json()
    assert body["stream"].startswith(f"ws://testserver:{port}/media/playback/") and body["stream"].endswith("/stream")
    assert body["base"].startswith(f"http://testserver:{port}/media/playback/")
    grant = verify(ctx.key, token_of(body["stream"]), permission="playback", channel=ChannelId(dev["id"], 0, "main"))
    assert grant.grant == f"user:{owner['user_id']}"
    for other in ("live", "hls", "snapshot"):
        with pytest.raises(ValueError):
            verify(ctx.key, token_of(body["stream"]), permission=other)
    r = await client.get(f"/api/v1/devices/{dev['id']}/recordings/0/timeline?from=0&to=3600000")
    assert r.status_code == 200 and r.json()["intervals"] == []


@pytest.mark.req("B5", "B9")
async def test_an_invitee_without_playback_gets_403_and_a_stranger_404(client, ctx):
    owner, friend, dev, _ = await owner_and_friend(client, ctx, permissions=("live",))
    stranger = await register(client, ctx, email="stranger@example.com", nickname="Stranger")
    base = f"/devices/{dev['id']}/playback/0"
    r = await client.get(f"{base}/url", headers=bearer(friend))
    assert (r.status_code, r.json()["code"]) == (403, "permission-missing")
    r = await client.get(f"/api/v1/devices/{dev['id']}/recordings/0/timeline?from=0&to=1000", headers=bearer(friend))
    assert r.status_code == 403
    r = await client.get(f"{base}/url", headers=bearer(stranger))
    assert (r.status_code, r.json()["code"]) == (404, "device-not-found")
    use_cookie(client, friend)
    page = await client.get(base)
    assert page.status_code == 404 and "playback.js" not in page.text
    device_page = await client.get(f"/devices/{dev['id']}")
    assert f"{base}\"" not in device_page.text  # no link to what they may not open


@pytest.mark.req("B5", "B9")
async def test_an_invitee_with_playback_plays_until_the_permission_is_taken_away(client, ctx):
    owner, friend, dev, share_id = await owner_and_friend(client, ctx, permissions=("playback",))
    r = await client.get(f"/devices/{dev['id']}/playback/0/url", headers=bearer(friend))
    assert r.status_code == 200
    grant = verify(ctx.key, token_of(r.json()["stream"]), permission="playback")
    assert await still_allowed(ctx, grant)
    r = await client.patch(f"/api/v1/devices/{dev['id']}/shares/{share_id}", json={"permissions": ["live"]},
                           headers=bearer(owner))
    assert r.status_code == 200
    assert not await still_allowed(ctx, grant)  # the media worker's re-check now says no
    r = await client.get(f"/devices/{dev['id']}/playback/0/url", headers=bearer(friend))
    assert r.status_code == 403
