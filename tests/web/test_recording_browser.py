"""The recording page in Debian's Chromium against the whole app (web and media worker in
one uvicorn): the owner changes how a channel records — mode, the weekday × hour grid, the
sub-stream — and the media worker's recorder follows; then deletes one recording and all,
each after a confirmation, and the blobs are gone."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from faoyam.media.ids import ChannelId
from faoyam.media.recorder import recorder_of
from faoyam.privacy.blobrefs import sweep_tombstones
from faoyam.recordings import service
from tests.conftest import register
from tests.devices.conftest import make_device
from tests.recordings.test_api import gone, stored_segment
from tests.web.test_device_pages import add

pytestmark = [pytest.mark.browser]


async def until(check, timeout: float = 15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (value := await check()):
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)
    return value


async def in_server(rec, coro):
    """Run ``coro`` on the server thread's loop, where the recorder lives."""
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, rec._syncer.get_loop()))


@pytest.mark.req("B5", "B12", "R3")
async def test_the_owner_sets_recording_and_deletes_recordings_in_the_browser(ctx, live_server, browser, shoot):
    app_ctx = live_server.server.config.app.state.ctx
    rec = recorder_of(app_ctx)
    assert rec is not None
    fd = await make_device(ctx)
    async with httpx.AsyncClient(base_url=live_server.url) as api:
        owner = await register(api, ctx, email="rec-owner@example.com", nickname="Owner")
        dev = await add(api, owner, serial=fd.serial, code=fd.safety_code, name="Porch")
    device_id = dev["id"]
    context = await browser.new_context(locale="en-US")
    await context.add_cookies([{"name": "faoyam_session", "value": owner["token"], "url": live_server.url}])
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    # From the device page to the channel's recording page.
    await page.goto(f"{live_server.url}/devices/{device_id}")
    await page.click("#recording-links a")
    await page.wait_for_url(f"{live_server.url}/devices/{device_id}/recording/0")
    assert await page.get_attribute("#recording-state", "data-state") == "off"

    # Continuous, weekdays 08:00-17:59 only, with the sub-stream, kept 14 days.
    await page.check("input[name=mode][value=continuous]")
    await page.uncheck("#f-always")
    for d in range(7):
        for h in range(24):
            want = d < 5 and 8 <= h < 18
            box = page.locator(f"input[data-day='{d}'][data-hour='{h}']")
            if await box.is_checked() != want:
                await box.set_checked(want)
    await page.check("#f-sub")
    await page.fill("#f-retention_days", "14")
    await page.select_option("#f-destination", "both")
    await page.click("#recording-form button[type=submit]")
    await page.locator("#toast").filter(has_text="Saved").wait_for()
    weekday = sum(1 << h for h in range(8, 18))
    cs = await service.channel_settings(ctx.db, device_id, 0)
    assert (cs.mode, cs.schedule, cs.streams, cs.retention_days, cs.destination) == (
        "continuous", [weekday] * 5 + [0, 0], ["main", "sub"], 14, "both")

    # The media worker's recorder follows the settings (its 15 s sync, run now).
    tuesday_noon = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)  # the device has no time zone: UTC
    wanted = await in_server(rec, rec.sync(tuesday_noon))
    assert wanted == {ChannelId(device_id, 0, "main"), ChannelId(device_id, 0, "sub")}
    assert await in_server(rec, rec.sync(tuesday_noon.replace(hour=20))) == set()  # outside the grid
    await in_server(rec, rec.sync(tuesday_noon))
    await until(lambda: _status(ctx, device_id, "waiting for video"))  # recording, no video yet

    # A validation problem shows on the page, and nothing is stored.
    await page.fill("#f-retention_days", "0")
    await page.click("#recording-form button[type=submit]")
    await page.locator("#recording-form .form-error").wait_for(state="visible")
    assert (await service.channel_settings(ctx.db, device_id, 0)).retention_days == 14

    # Deleting: one recording, then all of them, each confirmed.
    t0 = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    segs = [await stored_segment(ctx, device_id, t0 + dt.timedelta(minutes=i)) for i in range(3)]
    await page.reload()
    assert await page.locator("[data-delete-one]").count() == 3
    await shoot(page, "recording-page")
    await page.click(f"[data-delete-one='{segs[1][0]}']")
    dialog = page.locator("#recording-confirm")
    await dialog.wait_for(state="visible")
    assert "cannot be undone" in await dialog.inner_text()
    await dialog.locator("[data-action=cancel]").click()  # changed my mind: nothing happens
    assert len(await service.segments(ctx.db, device_id, 0)) == 3
    await page.click(f"[data-delete-one='{segs[1][0]}']")
    await dialog.locator("[data-action=delete]").click()
    await page.locator("#toast").filter(has_text="Deleted: 1").wait_for()
    await until(lambda: _count(ctx, device_id, 2))
    assert await gone(ctx, segs[1][1])
    await page.wait_for_load_state("load")
    await page.locator("[data-delete-one]").nth(1).wait_for()  # the page reloaded with two
    await page.click("#delete-all")
    await dialog.locator("[data-action=delete]").click()
    await until(lambda: _count(ctx, device_id, 0))
    await sweep_tombstones(ctx.db, ctx.blobs)
    for _, key in segs:
        assert await gone(ctx, key)
    await page.locator("#no-recordings").wait_for()
    assert errors == []
    await context.close()


async def _status(ctx, device_id: str, want: str) -> bool:
    return (await service.channel_status(ctx.db, device_id, 0))[0] == want


async def _count(ctx, device_id: str, n: int) -> bool:
    return len(await service.segments(ctx.db, device_id, 0)) == n
