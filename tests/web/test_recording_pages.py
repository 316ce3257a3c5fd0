"""The recording page of a channel: the owner's, in English and Thai, linked from the device
page; an invitee or a stranger does not get it."""

from __future__ import annotations

import pytest

from faoyam.recordings import service
from tests.conftest import register
from tests.devices.conftest import grant, make_device, person
from tests.web.test_device_pages import add, use_cookie


@pytest.mark.req("B5", "B12")
async def test_the_owner_gets_the_recording_page_in_english_and_thai(client, ctx):
    session = await register(client, ctx)
    fd = await make_device(ctx)
    dev = await add(client, session, serial=fd.serial, code=fd.safety_code)
    await service.set_channel_settings(ctx.db, dev["id"], 0, service.ChannelSettings(schedule=[1] * 7))
    await service.set_status(ctx.db, dev["id"], 0, "paused: storage full")
    use_cookie(client, session)
    device_page = (await client.get(f"/devices/{dev['id']}")).text
    assert f'href="/devices/{dev["id"]}/recording/0"' in device_page
    r = await client.get(f"/devices/{dev['id']}/recording/0")
    assert r.status_code == 200
    page = r.text
    assert 'data-state="' in page and "Continuous (24/7)" in page and "Delete all recordings of this channel" in page
    assert page.count('type="checkbox" data-day=') == 7 * 24
    r = await client.patch("/api/v1/me", json={"language": "th"}, headers={"Authorization": f"Bearer {session['token']}"})
    assert r.status_code == 200, r.text
    th = (await client.get(f"/devices/{dev['id']}/recording/0")).text
    assert "บันทึกต่อเนื่อง" in th and "ลบวิดีโอที่บันทึกทั้งหมดของช่องนี้" in th and "วันจันทร์" in th


async def test_an_invitee_and_a_stranger_do_not_get_the_recording_page(client, ctx):
    session = await register(client, ctx)
    fd = await make_device(ctx)
    dev = await add(client, session, serial=fd.serial, code=fd.safety_code)
    invitee, stranger = await person(ctx), await person(ctx)
    await grant(ctx, dev["id"], invitee, ["playback", "live"])
    for who, status in ((invitee, 403), (stranger, 404)):
        client.cookies.set("faoyam_session", who.token)
        assert (await client.get(f"/devices/{dev['id']}/recording/0")).status_code == status
    use_cookie(client, session)
    assert (await client.get(f"/devices/{dev['id']}/recording/9")).status_code == 404
    client.cookies.clear()
    r = await client.get(f"/devices/{dev['id']}/recording/0")
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")
