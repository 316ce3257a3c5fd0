"""Playback in Debian's Chromium: the web app (its own uvicorn) serves the page and mints the
URLs, the media worker's playback routes (another server) stream real recorded segments into
the live player's MSE code. Checked: it plays (currentTime advances, frames decode, no MSE
error), a seek lands on the instant asked (within the keyframe interval), a click on the
timeline seeks, 2× plays at playbackRate 2, and the downloaded clip is an MP4 PyAV opens,
moov first, of the length asked."""

from __future__ import annotations

import datetime as dt
import io

import av
import httpx
import pytest

from faoyam.media import ChannelId
from faoyam.media.fmp4_parse import boxes
from tests.conftest import register
from tests.playback.conftest import ms, record
from tests.web.test_device_pages import add, make_device

pytestmark = [pytest.mark.browser]

PLAYER = "document.querySelector('[data-playback-player]')"
PLAYING = f"""() => {{ const el = {PLAYER};
  return el.dataset.state === 'playing' && el.querySelector('video').currentTime > 0.5; }}"""
PROGRESS = f"""() => {{ const v = {PLAYER}.querySelector('video');
  return [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames]; }}"""
ADVANCED = f"""(before) => {{ const v = {PLAYER}.querySelector('video');
  return v.currentTime > before[0] + 1 && v.getVideoPlaybackQuality().totalVideoFrames > before[1] + 10; }}"""
WALL = f"() => {PLAYER}.playbackPlayer.wallNow()"
STATS = f"() => {PLAYER}.playbackPlayer.stats"


async def plays(page) -> None:
    try:
        await page.wait_for_function(PLAYING, timeout=15000, polling=50)
    except Exception:
        state = await page.evaluate(f"() => [{PLAYER}.dataset.state, {PLAYER}.playbackPlayer.stats,"
                                    f" {PLAYER}.querySelector('.live-status').textContent,"
                                    f" document.querySelector('[data-playback]').playbackPage.data]")
        raise AssertionError(f"not playing: {state}") from None
    before = await page.evaluate(PROGRESS)
    await page.wait_for_function(ADVANCED, arg=before, timeout=15000, polling=50)
    stats = await page.evaluate(STATS)
    assert stats["errors"] == [], stats


@pytest.mark.req("B5")
async def test_playback_plays_seeks_and_downloads_in_chromium(ctx, settings, recorder, clip, worker, live_server,
                                                              browser, tmp_path, screenshot_dir):
    settings.media_public_url = f"http://{worker.host}"
    base = live_server.url
    async with httpx.AsyncClient(base_url=base) as api:
        owner = await register(api, ctx, email="owner@example.com", nickname="Owner")
        await make_device(ctx)
        dev = await add(api, owner, name="Front gate")
    segs = await record(recorder, ChannelId(dev["id"], 0, "main"), clip, loops=15)  # 30 s
    start, end = segs[0].start, segs[-1].end

    errors: list[str] = []
    bctx = await browser.new_context(locale="en-US", accept_downloads=True)
    await bctx.add_cookies([{"name": "faoyam_session", "value": owner["token"], "url": base}])
    page = await bctx.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{base}/devices/{dev['id']}/playback/0")
    await plays(page)  # it started by itself at the latest recording
    assert await page.locator("[data-jump-live]").get_attribute("href") == f"/devices/{dev['id']}/live/0"

    # seek to an instant: the picture starts at the keyframe at or before it
    target = ms(start) + 17_500
    await page.evaluate("(at) => document.querySelector('[data-playback]').playbackPage.seek(at)", target)
    await plays(page)
    wall = await page.evaluate(WALL)
    assert target - 1000 <= wall <= target + 8000, (wall - target)
    assert (await page.evaluate(STATS))["seeks"] >= 2

    # a click on the timeline, inside the recording, seeks there too
    view = await page.evaluate("() => { const p = document.querySelector('[data-playback]').playbackPage;"
                               " return [p.viewStart, p.span]; }")
    box = await page.locator("[data-timeline]").bounding_box()
    aim = ms(start) + 5_000
    x = box["x"] + (aim - view[0]) / view[1] * box["width"]
    await page.mouse.click(x, box["y"] + box["height"] / 2)
    await plays(page)
    wall = await page.evaluate(WALL)
    pixel_ms = view[1] / box["width"]
    assert aim - pixel_ms - 1000 <= wall <= aim + pixel_ms + 8000, (wall - aim)

    await page.screenshot(path=str(screenshot_dir / "playback.png"), full_page=True)
    await page.click("[data-speed='2']")
    assert await page.evaluate(f"() => {PLAYER}.querySelector('video').playbackRate") == 2

    # the clip: 10 s from 5 s into the recording (a keyframe)
    clip_from, clip_to = start + dt.timedelta(seconds=5), start + dt.timedelta(seconds=15)
    await page.evaluate("""([a, b]) => {
      const f = (ms) => { const d = new Date(ms), p = (n) => String(n).padStart(2, '0');
        return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`; };
      document.querySelector('[data-clip-from]').value = f(a);
      document.querySelector('[data-clip-to]').value = f(b); }""", [ms(clip_from), ms(clip_to)])
    async with page.expect_download() as info:
        await page.click("[data-clip-download]")
    download = await info.value
    path = tmp_path / "clip.mp4"
    await download.save_as(path)
    data = path.read_bytes()
    assert [k for k, _, _ in boxes(data)][:2] == [b"ftyp", b"moov"]
    with av.open(io.BytesIO(data)) as c:
        frames = [f for f in c.decode(c.streams.video[0])]
        # the inputs have whole seconds: the clip starts at the keyframe at or before the
        # chosen second and ends at the one asked
        assert frames[0].key_frame and 9 * 25 <= len(frames) <= 11 * 25 + 2
    assert errors == []
    await bctx.close()
