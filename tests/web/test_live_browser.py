"""Live view in Debian's Chromium: the web app (one uvicorn) mints the URL, the media worker
(another uvicorn, in its own thread and event loop, with its own database context — as the
separate process it is in production) serves fMP4 over WebSocket into Media Source
Extensions. A simulated camera starts pushing when the first viewer arrives (the hub's
``on_demand``) and stops when the last one leaves.

Checked: the video plays (currentTime advances, frames are decoded, no MSE error), for an
invitee with live permission and through a share link; revoking the share stops the
invitee's player — and only it — and revoking the link stops the link's. The distance
between playback position and the live edge is printed (the B4 latency figure's browser part).
"""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import pytest

from faoyam.media import StreamHubs
from faoyam.media.grants import devices_revocation
from faoyam.media.live_http import LiveServer
from faoyam.media.testfeed import feed_realtime
from faoyam.media.testvideo import cached_clip
from tests.conftest import bearer, register
from tests.threaded_server import ThreadedServer
from tests.web.test_device_pages import add, make_device

pytestmark = [pytest.mark.browser]


class MediaWorker(ThreadedServer):
    """The media worker in a thread: hubs, the live WebSocket server, simulated cameras."""

    name = "media-worker"

    def __init__(self, settings, clip):
        super().__init__(settings)
        self.clip = clip
        self.cameras: dict = {}
        self.demanded: list = []

    async def build(self, ctx):
        self.hubs = StreamHubs(on_demand=self._camera_on, on_idle=self._camera_off)
        self.live = LiveServer(self.hubs, ctx.key, revoked=devices_revocation(ctx), poll_interval=0.5)
        return self.live.app

    async def cleanup(self):
        for camera in self.cameras.values():
            camera.cancel()

    def _camera_on(self, stream):
        """The devices domain would ask the camera over MQTT to push; the simulator does."""
        self.demanded.append(stream)
        self.cameras[stream] = asyncio.get_running_loop().create_task(feed_realtime(self.hubs.hub(stream), self.clip))

    def _camera_off(self, stream):
        camera = self.cameras.pop(stream, None)
        if camera is not None:
            camera.cancel()


@pytest.fixture
def media_worker(settings, tmp_path, monkeypatch):
    monkeypatch.setenv("FAOYAM_MEDIA_CACHE", str(tmp_path / "media-cache"))
    clip = cached_clip(audio=True, bframes=2, seconds=4.0)
    worker = MediaWorker(settings, clip)
    worker.start()
    settings.media_public_url = f"ws://127.0.0.1:{worker.port}"  # before the web app is made
    yield worker
    worker.stop()


async def wait_until(page, expression: str, arg=None, timeout: float = 15000):
    await page.wait_for_function(expression, arg=arg, timeout=timeout, polling=50)


PLAYING = """() => { const el = document.querySelector('[data-live-player]');
  return el.dataset.state === 'playing' && el.querySelector('video').currentTime > 0; }"""
PROGRESS = """() => { const v = document.querySelector('[data-live-player] video');
  return [v.currentTime, v.getVideoPlaybackQuality().totalVideoFrames]; }"""
ADVANCED = """(before) => { const v = document.querySelector('[data-live-player] video');
  return v.currentTime > before[0] + 1 && v.getVideoPlaybackQuality().totalVideoFrames > before[1] + 10; }"""
STATS = "() => document.querySelector('[data-live-player]').livePlayer.stats"
LAG = "() => document.querySelector('[data-live-player]').livePlayer.liveLag()"
REVOKED = "() => document.querySelector('[data-live-player]').dataset.state === 'revoked'"
PAUSED = "() => document.querySelector('[data-live-player] video').paused"


async def plays(page) -> None:
    """currentTime advances and decoded frames increase — the picture moves."""
    await page.wait_for_function(PLAYING, timeout=15000, polling=50)
    before = await page.evaluate(PROGRESS)
    await page.wait_for_function(ADVANCED, arg=before, timeout=15000, polling=50)
    stats = await page.evaluate(STATS)
    assert stats["errors"] == [] and stats["inits"] >= 1, stats


async def live_lags(page, samples: int = 30) -> list[float]:
    lags = []
    for _ in range(samples):
        lags.append(await page.evaluate(LAG))
        await asyncio.sleep(0.1)
    return lags


async def stops_after(page, revoke) -> float:
    """Seconds from the revoking request to the player's stop."""
    t0 = time.monotonic()
    await revoke()
    await page.wait_for_function(REVOKED, timeout=10000, polling=20)
    elapsed = time.monotonic() - t0
    assert await page.evaluate(PAUSED), "the video stopped"
    return elapsed


@pytest.mark.req("B4", "B9")
async def test_live_video_plays_for_an_invitee_and_a_link_and_stops_when_revoked(ctx, media_worker, live_server, browser):
    base = live_server.url
    async with httpx.AsyncClient(base_url=base) as api:
        owner = await register(api, ctx, email="owner@example.com", nickname="Owner")
        friend = await register(api, ctx, email="friend@example.com", nickname="Friend")
        await make_device(ctx)
        dev = await add(api, owner, name="Front gate")
        r = await api.post(f"/api/v1/devices/{dev['id']}/shares", json={"contact": "friend@example.com", "permissions": ["live"]},
                           headers=bearer(owner))
        share_id = r.json()["id"]
        assert (await api.post(f"/api/v1/device-shares/{share_id}/accept", headers=bearer(friend))).status_code == 200
        r = await api.post(f"/api/v1/devices/{dev['id']}/share-links", json={"hours": 1}, headers=bearer(owner))
        link_token, link_id = r.json()["token"], r.json()["id"]

        errors: list[str] = []
        friend_ctx = await browser.new_context(locale="en-US")
        await friend_ctx.add_cookies([{"name": "faoyam_session", "value": friend["token"], "url": base}])
        friend_page = await friend_ctx.new_page()
        friend_page.on("pageerror", lambda e: errors.append(str(e)))
        await friend_page.goto(f"{base}/devices/{dev['id']}/live/0")
        await plays(friend_page)
        lags = await live_lags(friend_page)

        link_ctx = await browser.new_context(locale="th-TH")
        link_page = await link_ctx.new_page()
        link_page.on("pageerror", lambda e: errors.append(str(e)))
        await link_page.goto(f"{base}/s/{link_token}")
        await link_page.click(f"a[href='/s/{link_token}/live/0']")
        await plays(link_page)
        assert len(media_worker.demanded) == 1, "both viewers share one camera stream"

        async def revoke_share():
            r = await api.delete(f"/api/v1/devices/{dev['id']}/shares/{share_id}", headers=bearer(owner))
            assert r.status_code == 204

        share_stop = await stops_after(friend_page, revoke_share)
        assert "no longer watch this camera" in await friend_page.text_content(".live-status")
        await plays(link_page)  # the link's viewer is not affected

        async def revoke_link():
            r = await api.delete(f"/api/v1/devices/{dev['id']}/share-links/{link_id}", headers=bearer(owner))
            assert r.status_code == 204

        link_stop = await stops_after(link_page, revoke_link)
        assert "คุณไม่มีสิทธิ์ดูกล้องนี้แล้ว" in await link_page.text_content(".live-status")
        assert errors == []
        await friend_ctx.close()
        await link_ctx.close()

    lags = [x for x in lags if x == x]  # NaN while nothing is buffered
    print(f"\nB4 Chromium: live edge − playback position: median {statistics.median(lags) * 1000:.0f} ms, "
          f"max {max(lags) * 1000:.0f} ms over {len(lags)} samples; revocation → player stopped: "
          f"share {share_stop * 1000:.0f} ms, link {link_stop * 1000:.0f} ms")
    assert max(lags) < 1.5, "the player follows the live edge (it jumps when more than 1 s behind)"
