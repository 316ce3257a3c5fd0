"""The motion-detection settings page: the owner's, in English and Thai, showing what is set."""

from __future__ import annotations

import pytest

from faoyam.detection import service
from faoyam.media.motion import ZONE_COLS, ZONE_ROWS
from tests.conftest import bearer, register
from tests.web.test_device_pages import add, make_device, use_cookie


@pytest.mark.req("B11")
async def test_the_owner_sees_the_settings_and_nobody_else_does(client, ctx):
    owner = await register(client, ctx, email="owner@example.com", nickname="Owner")
    friend = await register(client, ctx, email="friend@example.com", nickname="Friend")
    await make_device(ctx)
    dev = await add(client, owner)
    zones = [0xFFFF] * (ZONE_ROWS - 1) + [0]
    await service.store_detection(ctx.db, dev["id"], 0, service.ChannelDetection(True, 65, zones, "sub"))

    use_cookie(client, owner)
    html = (await client.get(f"/devices/{dev['id']}")).text
    assert f'href="/devices/{dev["id"]}/detection/0"' in html
    r = await client.get(f"/devices/{dev['id']}/detection/0")
    assert r.status_code == 200
    html = r.text
    assert f'data-url="/api/v1/devices/{dev["id"]}/channels/0/detection"' in html
    assert 'name="enabled" id="f-enabled" checked' in html and 'value="65"' in html
    assert '<option value="sub" selected>' in html and "/static/js/detection.js" in html
    assert html.count('data-row="') == ZONE_ROWS * ZONE_COLS
    assert html.count("height:100%\" checked>") == (ZONE_ROWS - 1) * ZONE_COLS  # the bottom row is left out
    r = await client.get(f"/devices/{dev['id']}/detection/0", headers={"Accept-Language": "th"})
    assert r.status_code == 200

    r = await client.post(f"/api/v1/devices/{dev['id']}/shares", headers=bearer(owner),
                          json={"contact": "friend@example.com", "permissions": ["live", "alarms"]})
    assert r.status_code == 201
    use_cookie(client, friend)
    assert (await client.get(f"/devices/{dev['id']}/detection/0")).status_code == 404
    use_cookie(client, owner)
    assert (await client.get(f"/devices/{dev['id']}/detection/7")).status_code == 404
    client.cookies.clear()
    r = await client.get(f"/devices/{dev['id']}/detection/0")
    assert r.status_code == 303


@pytest.mark.req("B11")
async def test_the_page_is_in_thai(client, ctx):
    owner = await register(client, ctx, email="thai@example.com", nickname="Thai")
    await make_device(ctx)
    dev = await add(client, owner)
    use_cookie(client, owner)
    r = await client.get(f"/devices/{dev['id']}/detection/0?lang=th")
    assert "ตรวจจับการเคลื่อนไหว" in r.text and "ความไว" in r.text and "Sensitivity" not in r.text
