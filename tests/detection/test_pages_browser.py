"""The motion-detection settings page in Chromium: tick zones, set sensitivity, save."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from faoyam.detection import service
from faoyam.devices.ports import FactoryDevice
from faoyam.devices.registry import factory_register
from faoyam.media.motion import ALL_CELLS, ZONE_ROWS
from tests.web.conftest import browser, live_server, screenshot_dir, shoot  # noqa: F401 - fixtures
from tests.web.test_browser import _account, _signed_in_page

pytestmark = [pytest.mark.browser]


@pytest.mark.req("B11")
async def test_detection_settings_in_the_browser(ctx, live_server, browser, shoot):
    base = live_server.url
    await factory_register(ctx, FactoryDevice(serial="FYCAM00077", kind="camera", model="FY-C2", channels=1,
                                              safety_code="K7M2Q9", factory_secret="factory-secret-77"))
    owner = await _account(base, ctx, "owner@example.com", "Anong")
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post("/api/v1/devices", json={"serial": "FYCAM00077", "safety_code": "K7M2Q9"},
                              headers={"Authorization": f"Bearer {owner['token']}"})
        assert r.status_code == 201, r.text
        device_id = r.json()["id"]
    errors: list[str] = []
    bctx, page = await _signed_in_page(browser, base, owner, errors)
    try:
        await page.goto(f"{base}/devices/{device_id}")
        await page.click("text=Motion detection")
        await page.wait_for_url(f"{base}/devices/{device_id}/detection/0")
        await page.check("#f-enabled")
        await page.fill("#f-sensitivity", "70")
        assert await page.inner_text("#sensitivity-value") == "70"
        # Leave out the bottom row (where a camera shows its clock) and one cell above it.
        for col in range(16):
            await page.uncheck(f'#zones input[data-row="{ZONE_ROWS - 1}"][data-col="{col}"]')
        await page.uncheck(f'#zones input[data-row="{ZONE_ROWS - 2}"][data-col="0"]')
        await shoot(page, "motion-detection")
        await page.click("#detection-form button[type=submit]")
        await page.locator("text=Saved.").wait_for()
        on = await service.enabled_channels(ctx.db)
        assert on == {(device_id, 0): service.ChannelDetection(
            True, 70, [ALL_CELLS] * (ZONE_ROWS - 2) + [ALL_CELLS - 1, 0], "main")}
        # Clear everything: the API refuses an empty zone, the page says so by the grid.
        await page.click("#zones-none")
        await page.click("#detection-form button[type=submit]")
        await page.locator('[data-error-for="zones"]').wait_for(state="visible")
        await page.click("#zones-all")
        await page.click("#detection-form button[type=submit]")
        await page.locator('[data-error-for="zones"]').wait_for(state="hidden")
        deadline = asyncio.get_running_loop().time() + 10
        while (await service.enabled_channels(ctx.db))[(device_id, 0)].zones is not None:
            assert asyncio.get_running_loop().time() < deadline, "the whole picture was not saved"
            await asyncio.sleep(0.05)
        assert errors == []
    finally:
        await bctx.close()
