"""Share links (B9): live view for someone without an account, time-limited, revocable."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from faoyam.core.database import utcnow
from faoyam.devices.models import ShareLink
from faoyam.privacy.subjects import purge_expired
from tests.devices.conftest import grant, owned, person

D = "/api/v1/devices"


@pytest.mark.req("B9")
async def test_link_shows_live_view_of_the_chosen_channels_only(ctx, client):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner, kind="nvr", channels=3)
    await client.patch(f"{D}/{device_id}/channels/1", json={"name": "Porch"}, headers=owner.h)
    r = await client.post(f"{D}/{device_id}/share-links", json={"label": "for grandma", "channels": [1], "hours": 3},
                          headers=owner.h)
    assert r.status_code == 201, r.text
    link = r.json()
    token = link["token"]
    assert link["api_url"].endswith(f"/api/v1/share-links/{token}")
    # The token is shown once: neither listed nor stored in clear.
    (listed,) = (await client.get(f"{D}/{device_id}/share-links", headers=owner.h)).json()
    assert "token" not in listed and listed["label"] == "for grandma"
    async with ctx.db.session() as s:
        row = (await s.execute(select(ShareLink))).scalar_one()
    assert token not in row.token_hash
    # Anyone holding it, without signing in, sees live view and nothing more.
    view = (await client.get(f"/api/v1/share-links/{token}")).json()
    assert view["permissions"] == ["live"] and view["kind"] == "nvr"
    assert view["channels"] == [{"index": 1, "name": "Porch", "live_url": None}]
    assert "serial" not in view and "id" not in view
    assert dt.datetime.fromisoformat(view["expires_at"]) > utcnow() + dt.timedelta(hours=2, minutes=59)


@pytest.mark.req("B9")
async def test_revoked_expired_and_unknown_links_do_not_work(ctx, client):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    a = (await client.post(f"{D}/{device_id}/share-links", json={}, headers=owner.h)).json()
    b = (await client.post(f"{D}/{device_id}/share-links", json={"hours": 1}, headers=owner.h)).json()
    assert (await client.delete(f"{D}/{device_id}/share-links/{a['id']}", headers=owner.h)).status_code == 204
    r = await client.get(f"/api/v1/share-links/{a['token']}")
    assert (r.status_code, r.json()["code"]) == (404, "link-not-found")
    for bad in ["x", "A" * 43, "%00" * 5]:
        assert (await client.get(f"/api/v1/share-links/{bad}")).status_code in (404, 422)
    async with ctx.db.transaction() as s:
        await s.execute(update(ShareLink).values(expires_at=utcnow() - dt.timedelta(seconds=1)))
    r = await client.get(f"/api/v1/share-links/{b['token']}")
    assert (r.status_code, r.json()["code"]) == (410, "link-expired")
    assert (await client.get(f"{D}/{device_id}/share-links", headers=owner.h)).json() == []
    # The retention job deletes expired links.
    report = await purge_expired(ctx.db, ctx.blobs)
    assert report.counts.get("device_share_links") == 1


@pytest.mark.req("B9", "B10")
async def test_links_die_with_the_binding(ctx, client, gw):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    token = (await client.post(f"{D}/{device_id}/share-links", json={"hours": 24}, headers=owner.h)).json()["token"]
    assert (await client.get(f"/api/v1/share-links/{token}")).status_code == 200
    assert (await client.delete(f"{D}/{device_id}", headers=owner.h)).status_code == 204
    assert (await client.get(f"/api/v1/share-links/{token}")).status_code == 404


@pytest.mark.req("B9")
@pytest.mark.parametrize("body, code", [
    ({"hours": 0}, "invalid"), ({"hours": 169}, "invalid"), ({"channels": [4]}, "invalid-channels"),
    ({"label": "\x07"}, "invalid-name"), ({"permissions": ["control"]}, "invalid"),
])
async def test_bad_link_requests(ctx, client, body, code):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    r = await client.post(f"{D}/{device_id}/share-links", json=body, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (422, code)
    assert (await client.get(f"{D}/{device_id}/share-links", headers=owner.h)).json() == []


@pytest.mark.req("B9")
async def test_only_the_owner_makes_links(ctx, client):
    owner, friend = await person(ctx), await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    await grant(ctx, device_id, friend, ["live", "playback", "alarms", "control"])
    r = await client.post(f"{D}/{device_id}/share-links", json={}, headers=friend.h)
    assert (r.status_code, r.json()["code"]) == (403, "owner-only")
