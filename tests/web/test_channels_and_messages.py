"""The NVR page lists its channels (name, cover); the Messages tab lists the alarms of the
account's devices with their pictures, and only those it may see."""

from __future__ import annotations

import datetime as dt
import io
import re

import httpx
import pytest
from PIL import Image

from faoyam.devices.ports import AlarmReport
from faoyam.alarms.service import record_device_alarm as record_alarm
from tests.conftest import bearer, register
from tests.web.test_device_pages import add, make_device, use_cookie

NVR = "FYNVR0000001"


def _image(fmt: str, color=(20, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 36), color).save(out, fmt)
    return out.getvalue()


def _channels(html: str) -> list[str]:
    return re.findall(r'<li class="channel" data-channel="(\d+)">', html)


@pytest.mark.req("B6", "B7")
async def test_the_nvr_page_shows_every_channel_with_its_name_and_cover(client, ctx):
    owner = await register(client, ctx)
    await make_device(ctx, serial=NVR, code="NVR123", kind="nvr", channels=4)
    dev = await add(client, owner, serial=NVR, code="NVR123", name="Home NVR")
    h = bearer(owner)
    r = await client.patch(f"/api/v1/devices/{dev['id']}/channels/1", json={"name": "Back yard"}, headers=h)
    assert r.status_code == 200, r.text
    r = await client.put(f"/api/v1/devices/{dev['id']}/channels/2/cover", content=_image("PNG"),
                         headers={**h, "content-type": "image/png"})
    assert r.status_code == 204, r.text

    use_cookie(client, owner)
    html = (await client.get(f"/devices/{dev['id']}")).text
    assert _channels(html) == ["0", "1", "2", "3"]
    assert 'value="Back yard"' in html and 'placeholder="Channel 1"' in html
    covers = re.findall(rf'src="/api/v1/devices/{dev["id"]}/channels/(\d+)/cover"', html)
    assert covers == ["2"]
    assert (await client.get(f"/api/v1/devices/{dev['id']}/channels/2/cover")).status_code == 200
    assert html.count('class="channel-form"') == 4  # the owner renames and changes covers here


async def test_a_camera_page_has_no_channel_list(client, ctx):
    owner = await register(client, ctx)
    await make_device(ctx)
    dev = await add(client, owner)
    use_cookie(client, owner)
    assert _channels((await client.get(f"/devices/{dev['id']}")).text) == []


async def test_a_shared_nvr_shows_its_channels_names_without_the_forms(client, ctx):
    owner = await register(client, ctx, email="owner@example.com")
    friend = await register(client, ctx, email="friend@example.com")
    await make_device(ctx, serial=NVR, code="NVR123", kind="nvr", channels=3)
    dev = await add(client, owner, serial=NVR, code="NVR123")
    await client.patch(f"/api/v1/devices/{dev['id']}/channels/0", json={"name": "Gate"}, headers=bearer(owner))
    r = await client.post(f"/api/v1/devices/{dev['id']}/shares", headers=bearer(owner),
                          json={"contact": "friend@example.com", "permissions": ["live"]})
    share = r.json()["id"]
    assert (await client.post(f"/api/v1/device-shares/{share}/accept", headers=bearer(friend))).status_code in (200, 204)
    use_cookie(client, friend)
    html = (await client.get(f"/devices/{dev['id']}")).text
    assert _channels(html) == ["0", "1", "2"]
    assert '<span class="channel-name">Gate</span>' in html and '<span class="channel-name">Channel 2</span>' in html
    assert 'class="channel-form"' not in html


@pytest.mark.req("B11")
async def test_messages_lists_alarms_with_pictures_newest_first(client, ctx):
    owner = await register(client, ctx, email="owner@example.com")
    stranger = await register(client, ctx, email="stranger@example.com")
    await make_device(ctx, serial=NVR, code="NVR123", kind="nvr", channels=2)
    dev = await add(client, owner, serial=NVR, code="NVR123", name="Home NVR")
    await client.patch(f"/api/v1/devices/{dev['id']}/channels/1", json={"name": "Garage"}, headers=bearer(owner))
    now = dt.datetime.now(dt.UTC)
    older = await record_alarm(ctx, NVR, AlarmReport(channel=0, type="videoMotion", at=now - dt.timedelta(minutes=5)))
    newer = await record_alarm(ctx, NVR, AlarmReport(channel=1, type="human", at=now, snapshot=_image("JPEG")))

    use_cookie(client, owner)
    html = (await client.get("/messages")).text
    assert re.findall(r'data-alarm="([0-9a-f]+)"', html) == [newer, older]
    assert f'src="/api/v1/devices/{dev["id"]}/alarms/{newer}/snapshot"' in html
    assert f"/alarms/{older}/snapshot" not in html  # no picture: no broken image
    assert "Person detected" in html and "Motion" in html and "Garage" in html and "Home NVR" in html
    assert "No messages" not in html
    shot = await client.get(f"/api/v1/devices/{dev['id']}/alarms/{newer}/snapshot")
    assert shot.status_code == 200 and shot.content[:2] == b"\xff\xd8"

    use_cookie(client, stranger)
    html = (await client.get("/messages")).text
    assert "data-alarm=" not in html and "No messages" in html


@pytest.mark.req("B9", "B11")
async def test_messages_of_a_shared_device_need_the_alarms_permission_and_its_channels(client, ctx):
    owner = await register(client, ctx, email="owner@example.com")
    viewer = await register(client, ctx, email="viewer@example.com")
    watcher = await register(client, ctx, email="watcher@example.com")
    await make_device(ctx, serial=NVR, code="NVR123", kind="nvr", channels=2)
    dev = await add(client, owner, serial=NVR, code="NVR123")
    for who, perms, channels in (("viewer", ["live"], None), ("watcher", ["alarms"], [1])):
        r = await client.post(f"/api/v1/devices/{dev['id']}/shares", headers=bearer(owner),
                              json={"contact": f"{who}@example.com", "permissions": perms, "channels": channels})
        assert r.status_code == 201, r.text
        person = viewer if who == "viewer" else watcher
        assert (await client.post(f"/api/v1/device-shares/{r.json()['id']}/accept", headers=bearer(person))).status_code == 200
    now = dt.datetime.now(dt.UTC)
    on_0 = await record_alarm(ctx, NVR, AlarmReport(channel=0, type="videoMotion", at=now))
    on_1 = await record_alarm(ctx, NVR, AlarmReport(channel=1, type="videoMotion", at=now))

    use_cookie(client, viewer)
    assert "data-alarm=" not in (await client.get("/messages")).text
    use_cookie(client, watcher)
    assert re.findall(r'data-alarm="([0-9a-f]+)"', (await client.get("/messages")).text) == [on_1]
    use_cookie(client, owner)
    assert set(re.findall(r'data-alarm="([0-9a-f]+)"', (await client.get("/messages")).text)) == {on_0, on_1}


@pytest.mark.browser
@pytest.mark.req("B6", "B7", "B11")
async def test_nvr_channels_and_messages_in_the_browser(ctx, live_server, browser, shoot):
    """The owner names a channel and gives another a cover on the NVR page, then sees the
    recorder's alarms with their pictures in Messages (screenshots 25 and 26)."""
    from faoyam.agent.media import SyntheticSource
    from faoyam.devices.ports import ActivationReport
    from faoyam.devices.registry import activate
    from tests.web.test_browser import _account, _signed_in_page

    base = live_server.url
    names = ["Front door", "Garage", "Back yard", "Driveway"]
    await make_device(ctx, serial=NVR, code="NVR123", kind="nvr", channels=4)
    owner = await _account(base, ctx, "owner@example.com", "Anong")
    async with httpx.AsyncClient(base_url=base, headers=bearer(owner)) as api:
        dev = (await api.post("/api/v1/devices", json={"serial": NVR, "safety_code": "NVR123", "name": "Home NVR"})).json()
        await activate(ctx, NVR, ActivationReport(mac="3c:ef:8c:00:00:01", model="NVR1104HS", firmware="4.1",
                                                  channels=[{"index": i, "name": n} for i, n in enumerate(names)]),
                       "192.0.2.5")
        pictures = SyntheticSource(names=names)
        for i in (0, 1):
            r = await api.put(f"/api/v1/devices/{dev['id']}/channels/{i}/cover", content=await pictures.snapshot(i),
                              headers={"content-type": "image/jpeg"})
            assert r.status_code == 204, r.text
    errors: list[str] = []
    context, page = await _signed_in_page(browser, base, owner, errors)
    await page.goto(f"{base}/devices/{dev['id']}")
    channels = page.locator("#channels .channel")
    assert await channels.count() == 4
    assert [await channels.nth(i).locator("input[name=name]").input_value() for i in range(4)] == names
    third = page.locator('#channels .channel-form[data-channel="2"]')
    await third.locator("input[name=name]").fill("Pool")
    await third.locator("button[type=submit]").click()
    await page.locator("#toast").filter(has_text="Saved.").wait_for()
    await page.set_input_files("#f-channel-cover-3", files=[{"name": "c.jpg", "mimeType": "image/jpeg",
                                                             "buffer": await pictures.snapshot(3)}])
    await page.locator('#channels .channel[data-channel="3"] img').wait_for()
    await page.wait_for_function("() => [...document.querySelectorAll('#channels img')].length === 3 && "
                                 "[...document.querySelectorAll('#channels img')].every(i => i.naturalWidth > 0)")
    await page.reload()  # what was saved is what the page shows
    assert await page.locator('#channels .channel-form[data-channel="2"] input[name=name]').input_value() == "Pool"
    assert await page.locator('#channels .channel[data-channel="3"] img').count() == 1
    await page.wait_for_function("() => [...document.querySelectorAll('#channels img')].every(i => i.naturalWidth > 0)")
    await page.evaluate("window.scrollTo(0, document.querySelector('#channels').offsetTop - 72)")
    await shoot(page, "25-nvr-channels")

    now = dt.datetime.now(dt.UTC)
    for i, (channel, kind) in enumerate([(0, "human"), (1, "videoMotion"), (3, "videoMotion")]):
        await record_alarm(ctx, NVR, AlarmReport(channel=channel, type=kind, at=now - dt.timedelta(minutes=7 * i),
                                                 snapshot=await pictures.snapshot(channel)))
    await page.goto(base + "/messages")
    assert await page.locator("#alarms .alarm").count() == 3
    assert "Person detected" in await page.locator("#alarms .alarm").first.inner_text()
    await page.wait_for_function("() => [...document.querySelectorAll('#alarms img')].every(i => i.naturalWidth > 0)")
    await shoot(page, "26-messages")
    assert errors == [], errors
    await context.close()
