"""PTZ in Debian's Chromium, through every real part: the whole app in one uvicorn (web,
gateway with its embedded MQTT broker, media worker), a simulated PTZ camera agent
connected to that broker, the live page's pad (static/js/ptz.js). Holding ▶ keeps the
simulated head turning right; releasing it sends ``stop`` and the head stays put; the page
shows the position the camera reported."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from faoyam.agent.device import DeviceAgent
from faoyam.agent.simulator import make_identity
from faoyam.devices.gateway import factory_register
from tests.conftest import register
from tests.web.test_device_pages import add

pytestmark = [pytest.mark.browser]


@pytest.fixture
def settings(settings):
    """The app under test runs its gateway with an embedded broker on a free port."""
    settings.mqtt_mode, settings.mqtt_port = "embedded", 0
    return settings


async def until(check, timeout: float = 15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := check()):
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
    return value


@pytest.mark.req("B4")
async def test_holding_a_ptz_button_turns_the_simulated_camera_and_release_stops_it(ctx, live_server, browser, shoot):
    app_ctx = live_server.server.config.app.state.ctx
    ident = make_identity("camera", random.Random(7), ptz=True, name="Garden")
    await factory_register(ctx, ident.factory_device())
    cam = DeviceAgent(ident, "127.0.0.1", app_ctx.mqtt_port).start()
    try:
        await until(lambda: app_ctx.gateway.is_connected(ident.serial))
        async with httpx.AsyncClient(base_url=live_server.url) as api:
            owner = await register(api, ctx, email="owner@example.com", nickname="Owner")
            dev = await add(api, owner, serial=ident.serial, code=ident.safety_code, name="Garden")
        errors: list[str] = []
        context = await browser.new_context(locale="en-US")
        await context.add_cookies([{"name": "faoyam_session", "value": owner["token"], "url": live_server.url}])
        page = await context.new_page()
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(f"{live_server.url}/devices/{dev['id']}/live/0")
        right = page.locator("[data-ptz-op='right']")
        box = await right.bounding_box()
        await page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        await page.mouse.down()
        head = cam.ptz[0]
        await until(lambda: head.position()["h"] > 0.15)  # past two repeats: still turning while held
        assert head.moving()
        await page.mouse.up()
        await until(lambda: not head.moving(), 5)
        stopped = head.position()["h"]
        await page.wait_for_function("() => document.querySelector('[data-ptz]').ptz.stats.sent.includes('stop')",
                                     timeout=5000)
        await asyncio.sleep(0.7)  # longer than one move: a move still running would show now
        assert head.position()["h"] == stopped and 0.15 < stopped < 1
        sent = await page.evaluate("() => document.querySelector('[data-ptz]').ptz.stats.sent")
        assert sent[0] == "right" and sent[-1] == "stop" and sent.count("right") >= 2, sent
        await page.wait_for_function("() => /Pan \\d+ %/.test(document.querySelector('[data-ptz-status]').textContent)",
                                     timeout=5000)
        await page.keyboard.press("Tab")  # keyboard users get a step per activation
        await page.locator("[data-ptz-op='zoom_in']").focus()
        await page.keyboard.press("Enter")
        await until(lambda: head.position()["z"] > 0)
        await shoot(page, "live-ptz")
        assert errors == []
        await context.close()
    finally:
        await cam.stop()
