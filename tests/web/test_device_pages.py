"""Device pages rendered through the ASGI app: list, add, settings, sharing, links."""

from __future__ import annotations

import re

import pytest

from faoyam.devices.ports import FactoryDevice
from faoyam.devices.registry import factory_register
from tests.conftest import bearer, register

SERIAL, CODE = "FYWEB0000001", "WEB123"


async def make_device(ctx, serial: str = SERIAL, code: str = CODE, kind: str = "camera", channels: int = 1) -> None:
    await factory_register(ctx, FactoryDevice(serial=serial, kind=kind, model="FY-C2", channels=channels,
                                              safety_code=code, factory_secret="factory-secret-web"))


async def add(client, session, serial: str = SERIAL, code: str = CODE, **extra) -> dict:
    r = await client.post("/api/v1/devices", json={"serial": serial, "safety_code": code, **extra}, headers=bearer(session))
    assert r.status_code == 201, r.text
    return r.json()


def use_cookie(client, session) -> None:
    client.cookies.set("faoyam_session", session["token"])


@pytest.mark.req("B3")
async def test_add_device_page_says_the_wifi_password_is_not_stored(client, ctx):
    s = await register(client, ctx)
    use_cookie(client, s)
    r = await client.get("/devices/add")
    assert r.status_code == 200
    html = r.text
    for name in ("serial", "safety_code", "name", "wifi_ssid", "wifi_password", "device_password", "time_zone", "dst"):
        assert f'name="{name}"' in html, name
    assert "never stored" in html
    assert '<option value="Asia/Bangkok">' in html
    r = await client.get("/devices/add", headers={"Accept-Language": "th"})  # the account says English
    assert "never stored" in r.text


@pytest.mark.req("B3", "B7", "B9")
async def test_home_lists_devices_with_status_and_the_shared_marker(client, ctx):
    owner = await register(client, ctx, email="owner@example.com", nickname="Owner")
    friend = await register(client, ctx, email="friend@example.com", nickname="Friend")
    await make_device(ctx)
    dev = await add(client, owner, name="Front door")
    r = await client.post(f"/api/v1/devices/{dev['id']}/shares", json={"contact": "friend@example.com", "permissions": ["live"]},
                          headers=bearer(owner))
    assert r.status_code == 201, r.text
    share_id = r.json()["id"]

    use_cookie(client, owner)
    html = (await client.get("/home")).text
    assert "Front door" in html and f'href="/devices/{dev["id"]}"' in html
    assert "Offline" in html and 'class="shared badge' not in html

    use_cookie(client, friend)
    html = (await client.get("/home")).text
    assert "1 device invitation(s) waiting" in html
    assert "Front door" not in html  # not before accepting
    html = (await client.get("/devices/invitations")).text
    assert f'data-accept="{share_id}"' in html and "from Owner" in html
    r = await client.post(f"/api/v1/device-shares/{share_id}/accept", headers=bearer(friend))
    assert r.status_code == 200, r.text
    html = (await client.get("/home")).text
    assert "Front door" in html and 'class="shared badge' in html
    # The invitee sees what was shared, and can leave; not the owner's settings.
    html = (await client.get(f"/devices/{dev['id']}")).text
    assert "Owner shares this device with you." in html and f'data-leave="{share_id}"' in html
    assert 'id="device-delete"' not in html and SERIAL not in html
    assert (await client.get(f"/devices/{dev['id']}/sharing")).status_code == 404


@pytest.mark.req("B3", "B6", "B7", "B8")
async def test_device_settings_page_for_the_owner(client, ctx):
    s = await register(client, ctx)
    await make_device(ctx)
    dev = await add(client, s, name="Garage", time_zone="Asia/Bangkok", wifi_ssid="HomeNet", device_password="abc12345xyz")
    use_cookie(client, s)
    html = (await client.get(f"/devices/{dev['id']}")).text
    assert 'value="Garage"' in html
    assert '<option value="Asia/Bangkok" selected>' in html
    assert "Current network: HomeNet" in html
    assert SERIAL in html  # the owner sees the serial (B7)
    assert "abc12345xyz" not in html  # never shown again (B8)
    assert 'id="device-delete"' in html and 'href="/devices/' + dev["id"] + '/sharing"' in html


async def test_someone_elses_device_is_not_found(client, ctx):
    owner = await register(client, ctx, email="owner@example.com")
    other = await register(client, ctx, email="other@example.com")
    await make_device(ctx)
    dev = await add(client, owner)
    use_cookie(client, other)
    for path in (f"/devices/{dev['id']}", f"/devices/{dev['id']}/sharing", "/devices/0123456789abcdef"):
        r = await client.get(path)
        assert r.status_code == 404 and "Not found" in r.text, path
    client.cookies.clear()
    r = await client.get(f"/devices/{dev['id']}")
    assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=/devices/")


@pytest.mark.req("B9")
async def test_sharing_page_and_public_share_link(client, ctx):
    owner = await register(client, ctx, email="owner@example.com")
    await register(client, ctx, email="friend@example.com", nickname="Friend")
    await make_device(ctx, channels=2)
    dev = await add(client, owner, name="Porch")
    r = await client.post(f"/api/v1/devices/{dev['id']}/shares",
                          json={"contact": "friend@example.com", "permissions": ["live", "playback"]}, headers=bearer(owner))
    assert r.status_code == 201
    r = await client.post(f"/api/v1/devices/{dev['id']}/share-links", json={"label": "for grandma", "hours": 24},
                          headers=bearer(owner))
    assert r.status_code == 201
    token = r.json()["token"]
    use_cookie(client, owner)
    html = (await client.get(f"/devices/{dev['id']}/sharing")).text
    assert "Friend" in html and "Waiting for an answer" in html and "Live view, Playback" in html
    assert "for grandma" in html and "data-revoke-link=" in html
    assert token not in html  # shown once, at creation only
    assert "Thailand" in html  # the configured phone-share countries, by name

    client.cookies.clear()
    r = await client.get(f"/s/{token}")
    assert r.status_code == 200 and "Porch" in r.text
    assert len(re.findall(r"Channel \d", r.text)) == 2
    assert r.headers["referrer-policy"] == "no-referrer"
    r = await client.get("/s/" + "x" * 40)
    assert r.status_code == 404 and "This link does not work" in r.text
