"""The live page's device controls: PTZ buttons where the device reports PTZ, talk-back on a
doorbell that reports AudioTalk — only for the owner or a share with ``control``; the talk
URL route (who gets one, bound to what); PTZ commands from the page need the CSRF token."""

from __future__ import annotations

import pytest

from faoyam.devices.gateway import factory_register
from faoyam.devices.ports import FactoryDevice
from faoyam.media import ChannelId
from faoyam.media.grants import still_allowed
from faoyam.media.tokens import TokenError, verify
from tests.conftest import bearer, register
from tests.web.test_device_pages import add, use_cookie

SERIALS = {"camera": "7B0TALK00000001", "ptz": "7B0TALK00000002", "doorbell": "9D0TALK00000003", "pt": "7B0TALK00000004"}
ABILITIES = {"camera": ("AlarmMD", "AudioTalk"), "ptz": ("AlarmMD", "PTZ"), "doorbell": ("AudioTalk", "Doorbell"),
             "pt": ("PT",)}


async def devices(client, ctx, owner) -> dict[str, dict]:
    out = {}
    for name, serial in SERIALS.items():
        kind = "doorbell" if name == "doorbell" else "camera"
        await factory_register(ctx, FactoryDevice(serial=serial, kind=kind, model="FY-T1", channels=1,
                                                  safety_code="ABCDEF", factory_secret="factory-secret-talk",
                                                  abilities=ABILITIES[name]))
        out[name] = await add(client, owner, serial=serial, code="ABCDEF", name=name.title())
    return out


async def share(client, owner, friend, dev, permissions) -> str:
    r = await client.post(f"/api/v1/devices/{dev['id']}/shares", json={"contact": "friend@example.com",
                                                                      "permissions": permissions}, headers=bearer(owner))
    assert r.status_code == 201, r.text
    share_id = r.json()["id"]
    assert (await client.post(f"/api/v1/device-shares/{share_id}/accept", headers=bearer(friend))).status_code == 200
    return share_id


@pytest.mark.req("B4")
async def test_the_live_page_shows_the_controls_the_device_has(client, ctx):
    owner = await register(client, ctx, email="owner@example.com", nickname="Owner")
    devs = await devices(client, ctx, owner)
    use_cookie(client, owner)
    pages = {name: (await client.get(f"/devices/{d['id']}/live/0")).text for name, d in devs.items()}
    assert "data-ptz-op" not in pages["camera"] and "data-talk" not in pages["camera"]  # AudioTalk, not a doorbell
    assert 'data-ptz-op="up"' in pages["ptz"] and 'data-ptz-op="zoom_in"' in pages["ptz"]
    assert 'src="/static/js/ptz.js"' in pages["ptz"] and "talk.js" not in pages["ptz"]
    assert 'data-ptz-op="left"' in pages["pt"] and "zoom_in" not in pages["pt"]  # pan/tilt only
    bell = pages["doorbell"]
    assert "data-talk-button" in bell and 'src="/static/js/talk.js"' in bell and "data-ptz-op" not in bell
    assert f'data-url-endpoint="/devices/{devs["doorbell"]["id"]}/talk/0/url"' in bell
    th = (await client.get(f"/devices/{devs['doorbell']['id']}/live/0?lang=th")).text
    assert "พูด" in th
    th = (await client.get(f"/devices/{devs['ptz']['id']}/live/0?lang=th")).text
    assert "หมุนไปทางซ้าย" in th and "ซูมเข้า" in th


@pytest.mark.req("B4", "B9")
async def test_who_gets_a_talk_url_and_what_it_opens(client, ctx):
    owner = await register(client, ctx, email="owner@example.com", nickname="Owner")
    friend = await register(client, ctx, email="friend@example.com", nickname="Friend")
    stranger = await register(client, ctx, email="stranger@example.com", nickname="Stranger")
    devs = await devices(client, ctx, owner)
    bell = devs["doorbell"]
    path = f"/devices/{bell['id']}/talk/0/url"
    r = await client.get(path, headers=bearer(owner))
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    url = r.json()["url"]
    assert url.startswith(f"ws://testserver:{ctx.settings.media_http_port}/media/talk/")
    grant = verify(ctx.key, url.rsplit("/", 1)[1], permission="talk", channel=ChannelId(bell["id"], 0, "main"))
    assert grant.grant == f"user:{owner['user_id']}" and await still_allowed(ctx, grant)
    with pytest.raises(TokenError):  # not a live-view token
        verify(ctx.key, url.rsplit("/", 1)[1])
    # a camera is not a doorbell, even with a speaker
    r = await client.get(f"/devices/{devs['camera']['id']}/talk/0/url", headers=bearer(owner))
    assert r.status_code == 422 and r.json()["code"] == "not-supported"
    assert (await client.get(f"/devices/{bell['id']}/talk/1/url", headers=bearer(owner))).status_code == 404
    # strangers, signed-out callers, an invitee without control
    assert (await client.get(path, headers=bearer(stranger))).status_code == 404
    assert (await client.get(path)).status_code == 401
    share_id = await share(client, owner, friend, bell, ["live"])
    r = await client.get(path, headers=bearer(friend))
    assert r.status_code == 403 and r.json()["code"] == "permission-missing"
    use_cookie(client, friend)
    page = (await client.get(f"/devices/{bell['id']}/live/0")).text
    assert "data-talk-button" not in page  # watches, cannot talk
    client.cookies.clear()
    r = await client.patch(f"/api/v1/devices/{bell['id']}/shares/{share_id}", json={"permissions": ["live", "control"]},
                           headers=bearer(owner))
    assert r.status_code == 200
    r = await client.get(path, headers=bearer(friend))
    assert r.status_code == 200
    grant = verify(ctx.key, r.json()["url"].rsplit("/", 1)[1], permission="talk")
    assert await still_allowed(ctx, grant)
    await client.patch(f"/api/v1/devices/{bell['id']}/shares/{share_id}", json={"permissions": ["live"]},
                       headers=bearer(owner))
    assert not await still_allowed(ctx, grant)  # what the worker polls: the talk ends


@pytest.mark.req("B4")
async def test_ptz_from_the_page_needs_the_csrf_token(client, ctx):
    owner = await register(client, ctx, email="owner@example.com", nickname="Owner")
    devs = await devices(client, ctx, owner)
    use_cookie(client, owner)
    path = f"/api/v1/devices/{devs['ptz']['id']}/ptz/move"
    r = await client.post(path, json={"operation": "left"})
    assert r.status_code == 403 and r.json()["code"] == "csrf"
    me = await client.get("/api/v1/me", headers=bearer(owner))
    csrf = owner["csrf_token"]
    assert me.status_code == 200
    r = await client.post(path, json={"operation": "left"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and r.json()["code"] == "device-offline"  # past CSRF and authz: no gateway here
    r = await client.post(path, json={"operation": "somersault"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 422
