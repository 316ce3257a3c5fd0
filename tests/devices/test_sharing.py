"""Device sharing (B9): invite by email or phone, accept, decline, revoke, leave."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from faoyam.devices.models import Share
from tests.conftest import bearer, register
from tests.devices.conftest import owned, person

D = "/api/v1/devices"
IN = "/api/v1/device-shares"


async def _two(client, ctx, owner_country="TH", friend_country="TH", friend_phone=None):
    owner = await register(client, ctx, email="owner@example.com", nickname="Owner", country=owner_country)
    if friend_phone:
        friend = await register(client, ctx, email=None, phone=friend_phone, nickname="Friend", country=friend_country)
    else:
        friend = await register(client, ctx, email="friend@example.com", nickname="Friend", country=friend_country)
    return owner, friend


class _P:
    """A registered session in the shape conftest.person returns."""

    def __init__(self, s):
        self.user_id, self.h = s["user_id"], bearer(s)


@pytest.mark.req("B9")
async def test_share_by_email_accept_then_revoke(ctx, client):
    o, f = await _two(client, ctx)
    owner, friend = _P(o), _P(f)
    device_id, _ = await owned(ctx, client, owner, kind="nvr", channels=3)
    r = await client.post(f"{D}/{device_id}/shares", json={"contact": "Friend@Example.com",
                                                            "permissions": ["live", "alarms", "live"],
                                                            "channels": [2, 0]}, headers=owner.h)
    assert r.status_code == 201, r.text
    share = r.json()
    assert share["status"] == "pending" and share["permissions"] == ["alarms", "live"] and share["channels"] == [0, 2]
    assert share["invitee"] == {"user_id": friend.user_id, "nickname": "Friend", "contact": "friend@example.com"}
    # Until accepted, the invitee sees an invitation, not a device.
    (inv,) = (await client.get(IN, headers=friend.h)).json()
    assert inv["status"] == "pending" and inv["shared_by"] == "Owner" and inv["device_id"] == device_id
    assert (await client.get(D, headers=friend.h)).json() == []
    r = await client.post(f"{IN}/{share['id']}/accept", headers=friend.h)
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    (d,) = (await client.get(D, headers=friend.h)).json()
    assert d["shared"] is True and d["shared_by"] == "Owner" and d["permissions"] == ["alarms", "live", "view"]
    assert [c["index"] for c in d["channels"]] == [0, 2] and d["serial"] is None and d["wifi_ssid"] is None
    # The owner sees whom it is shared with, and changes it.
    (listed,) = (await client.get(f"{D}/{device_id}/shares", headers=owner.h)).json()
    assert listed["status"] == "accepted" and listed["accepted_at"]
    r = await client.patch(f"{D}/{device_id}/shares/{share['id']}", json={"channels": None, "permissions": ["control"]},
                           headers=owner.h)
    assert r.status_code == 200 and r.json()["channels"] is None and r.json()["permissions"] == ["control"]
    assert len((await client.get(f"{D}/{device_id}", headers=friend.h)).json()["channels"]) == 3
    # Revoked: gone at once, and nothing about the share is kept.
    assert (await client.delete(f"{D}/{device_id}/shares/{share['id']}", headers=owner.h)).status_code == 204
    assert (await client.get(f"{D}/{device_id}", headers=friend.h)).status_code == 404
    assert (await client.get(IN, headers=friend.h)).json() == []
    async with ctx.db.session() as s:
        assert (await s.execute(select(Share))).first() is None


@pytest.mark.req("B9")
async def test_decline_and_leave_delete_the_share(ctx, client):
    o, f = await _two(client, ctx)
    owner, friend = _P(o), _P(f)
    device_id, _ = await owned(ctx, client, owner)
    body = {"contact": "friend@example.com", "permissions": ["live"]}
    sid = (await client.post(f"{D}/{device_id}/shares", json=body, headers=owner.h)).json()["id"]
    # Only the invitee answers their invitation.
    assert (await client.post(f"{IN}/{sid}/accept", headers=owner.h)).status_code == 404
    assert (await client.post(f"{IN}/{sid}/decline", headers=friend.h)).status_code == 204
    assert (await client.get(f"{D}/{device_id}/shares", headers=owner.h)).json() == []
    # Invited again (a decline is not kept), accepted, then left.
    sid = (await client.post(f"{D}/{device_id}/shares", json=body, headers=owner.h)).json()["id"]
    assert (await client.post(f"{IN}/{sid}/accept", headers=friend.h)).status_code == 200
    assert (await client.post(f"{IN}/{sid}/accept", headers=friend.h)).status_code == 200  # idempotent
    assert (await client.delete(f"{IN}/{sid}", headers=friend.h)).status_code == 204
    assert (await client.get(D, headers=friend.h)).json() == []
    assert (await client.delete(f"{IN}/{sid}", headers=friend.h)).status_code == 404


@pytest.mark.req("B9")
async def test_share_by_phone_only_where_the_policy_offers_it(ctx, client):
    o, f = await _two(client, ctx, friend_phone="+66812345678")
    owner = _P(o)
    device_id, _ = await owned(ctx, client, owner)
    # Thailand is on the list: a local number works, written the local way too.
    r = await client.post(f"{D}/{device_id}/shares", json={"contact": "081 234 5678", "permissions": ["live"]},
                          headers=owner.h)
    assert r.status_code == 201, r.text
    assert r.json()["invitee"]["contact"] == "+66812345678"
    # The country list is configuration: without Thailand, phone sharing is refused.
    ctx.settings.phone_share_countries = ["KH", "VN", "SA"]
    await client.delete(f"{D}/{device_id}/shares/{r.json()['id']}", headers=owner.h)
    r = await client.post(f"{D}/{device_id}/shares", json={"contact": "+66812345678", "permissions": ["live"]},
                          headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (422, "phone-share-unavailable")
    # Email still works everywhere.
    r = await client.post(f"{D}/{device_id}/shares", json={"contact": "owner@example.com", "permissions": ["live"]},
                          headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (422, "self-share")


@pytest.mark.req("B9")
async def test_phone_share_needs_both_countries_on_the_list(ctx, client):
    o, f = await _two(client, ctx, owner_country="DE", friend_phone="+66812345679")
    owner = _P(o)
    device_id, _ = await owned(ctx, client, owner)
    r = await client.post(f"{D}/{device_id}/shares", json={"contact": "+66812345679", "permissions": ["live"]},
                          headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (422, "phone-share-unavailable")
    ctx.settings.phone_share_countries = ["DE"]  # now the invitee's Thailand is the one missing
    r = await client.post(f"{D}/{device_id}/shares", json={"contact": "+66812345679", "permissions": ["live"]},
                          headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (422, "phone-share-unavailable")


@pytest.mark.req("B9")
@pytest.mark.parametrize("body, status, code", [
    ({"contact": "nobody@example.com", "permissions": ["live"]}, 404, "no-account"),
    ({"contact": "not an address", "permissions": ["live"]}, 422, "invalid-contact"),
    ({"contact": "friend@example.com", "permissions": []}, 422, "invalid"),
    ({"contact": "friend@example.com", "permissions": ["admin"]}, 422, "invalid"),
    ({"contact": "friend@example.com", "permissions": ["live"], "channels": [5]}, 422, "invalid-channels"),
    ({"contact": "friend@example.com", "permissions": ["live"], "channels": []}, 422, "invalid-channels"),
    ({"contact": "friend@example.com", "permissions": ["live"], "expires": "never"}, 422, "invalid"),
])
async def test_bad_invitations_are_refused(ctx, client, body, status, code):
    o, _ = await _two(client, ctx)
    owner = _P(o)
    device_id, _ = await owned(ctx, client, owner)
    r = await client.post(f"{D}/{device_id}/shares", json=body, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (status, code)
    assert (await client.get(f"{D}/{device_id}/shares", headers=owner.h)).json() == []


@pytest.mark.req("B9")
async def test_sharing_twice_and_too_often(ctx, client):
    o, _ = await _two(client, ctx)
    owner = _P(o)
    device_id, _ = await owned(ctx, client, owner)
    body = {"contact": "friend@example.com", "permissions": ["live"]}
    assert (await client.post(f"{D}/{device_id}/shares", json=body, headers=owner.h)).status_code == 201
    r = await client.post(f"{D}/{device_id}/shares", json=body, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (409, "already-shared")
    # Probing which addresses have accounts is limited.
    codes = [(await client.post(f"{D}/{device_id}/shares", json={**body, "contact": f"probe{i}@example.com"},
                                headers=owner.h)).status_code for i in range(30)]
    assert set(codes[:28]) == {404} and codes[-1] == 429


@pytest.mark.req("B9", "B10")
async def test_invitee_who_leaves_the_service_loses_the_share_and_the_device_stays(ctx, client):
    from faoyam.privacy.subjects import erase_subject, resolve_subject

    owner, friend = await person(ctx), await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    from tests.devices.conftest import grant

    await grant(ctx, device_id, friend, ["live"])
    async with ctx.db.session() as s:
        subject = await resolve_subject(s, friend.user_id)
    await erase_subject(ctx.db, ctx.blobs, subject)
    async with ctx.db.session() as s:
        assert (await s.execute(select(Share))).first() is None
    assert (await client.get(f"{D}/{device_id}", headers=owner.h)).status_code == 200
