"""The message center in Chromium (B11): an alarm raised while Messages is open appears at
once (server-sent events) with its snapshot, and can be marked read and deleted."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from faoyam.alarms import service as alarms
from faoyam.core.database import utcnow
from faoyam.devices.ports import ActivationReport
from faoyam.devices.registry import activate
from tests.conftest import bearer
from tests.devices.conftest import jpeg, make_device

NVR = "FYALARM0001T"


async def _on_server(live_server, coro_fn):
    """Run ``coro_fn(server_ctx)`` on the live server's own loop (its context holds the
    live streams of the open pages)."""
    server_ctx = live_server.server.config.app.state.ctx
    loop = server_ctx.alarms.dispatcher.get_loop()
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro_fn(server_ctx), loop))


@pytest.mark.browser
@pytest.mark.req("B11")
async def test_an_alarm_appears_live_with_its_snapshot(ctx, live_server, browser, shoot):
    from tests.web.test_browser import _account, _signed_in_page

    base = live_server.url
    await make_device(ctx, serial=NVR, code="NVR123", kind="nvr", channels=2)
    owner = await _account(base, ctx, "owner@example.com", "Anong")
    async with httpx.AsyncClient(base_url=base, headers=bearer(owner)) as api:
        dev = (await api.post("/api/v1/devices", json={"serial": NVR, "safety_code": "NVR123", "name": "Home NVR"})).json()
    await activate(ctx, NVR, ActivationReport(mac="3c:ef:8c:00:00:02", model="NVR1104HS", firmware="4.1",
                                              channels=[{"index": 0, "name": "Gate"}, {"index": 1, "name": "Yard"}]),
                   "192.0.2.5")
    errors: list[str] = []
    context, page = await _signed_in_page(browser, base, owner, errors)
    await page.goto(f"{base}/messages")
    assert await page.locator("#alarms .alarm").count() == 0
    await page.wait_for_function("() => document.readyState === 'complete'")
    # The page's stream is open once the server holds a listener for the owner.
    for _ in range(200):
        if await _on_server(live_server, lambda c: _listening(c, owner["user_id"])):
            break
        await asyncio.sleep(0.05)

    alarm_id = await _on_server(live_server, lambda c: alarms.raise_alarm(
        c, device_id=dev["id"], channel=1, kind="human", at=utcnow(), snapshot=jpeg(320, 180)))
    item = page.locator(f'#alarms .alarm[data-alarm="{alarm_id}"]')
    await item.wait_for(timeout=5000)
    assert "Person detected" in await item.inner_text() and "Yard" in await item.inner_text()
    await page.wait_for_function(
        f"() => {{ const i = document.querySelector('[data-alarm=\"{alarm_id}\"] img'); return i && i.naturalWidth === 320; }}")
    assert await item.locator("a.clip").get_attribute("href") == \
        f"/devices/{dev['id']}/channels/1/playback?at=" + (await item.locator("time").get_attribute("datetime")).replace(
            "+", "%2B").replace(":", "%3A")
    assert await page.locator("#unread-count b").inner_text() == "1"
    await shoot(page, "27-messages-live")
    await page.locator("#read-all").click()
    await page.wait_for_function("() => document.querySelector('#unread-count b').textContent === '0'")
    await item.locator(".delete-one").click()
    await item.wait_for(state="detached")
    await page.reload()
    assert await page.locator("#alarms .alarm").count() == 0
    assert errors == [], errors
    await context.close()


async def _listening(server_ctx, user_id: str) -> bool:
    rt = server_ctx.alarms
    return bool(rt and rt.listeners.get(user_id))
