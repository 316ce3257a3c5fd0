"""Live view through the whole stack, in Debian's Chromium, for the cameras people have:
H.264, H.265 with an H.264 sub-stream, and H.265 only.

    simulated camera (DeviceAgent + SyntheticSource) ── MQTT (embedded broker) ── gateway
          │ start_stream with a publish token                                       │
          └── RTMP push ──► media worker (media.lifecycle.start: hubs, RTMP, LiveServer)
                                        ▲ WebSocket fMP4
    Chromium ── web app (its own uvicorn, role "web", own database context) ── signed URL

The gateway and media worker run in the test's event loop (one "service" process), the web
app in a thread with its own loop and database connection (another process in production),
the camera agents in the test's loop talking to both over real sockets. Checked per camera:
the live player plays (currentTime advances, decoded frames increase, the picture changes,
no MSE error), it got H.264 — the camera's own stream, its sub-stream, or the transcode, as
``media.stream_choice`` decides — and leaving stops the push (and the transcode). Two more
cases prove the player's fallback: an H.265 camera whose configuration does not say so, and
a browser that claims HEVC (``isTypeSupported``) whose decoder then refuses it — both end up
on the transcode, without an error.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import pytest_asyncio

from faoyam.agent.media import SyntheticSource
from faoyam.media import ChannelId
from faoyam.media import lifecycle as media
from tests.conftest import register
from tests.gateway.conftest import bind, eventually, new_device, online, service_factory  # noqa: F401 - fixture
from tests.web.conftest import _free_port
from tests.web.test_live_browser import ADVANCED, PLAYING, PROGRESS, STATS

pytestmark = [pytest.mark.browser]

# A cheap fingerprint of the picture the <video> shows now (MSE plays from a blob: URL,
# which is same-origin, so the canvas can be read).
PICTURE = """() => { const v = document.querySelector('[data-live-player] video');
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data; let h = 0;
  for (let i = 0; i < d.length; i += 7) h = (h * 31 + d[i]) | 0;
  return [v.videoWidth, v.videoHeight, h]; }"""
PICTURE_CHANGED = """(before) => { const v = document.querySelector('[data-live-player] video');
  const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
  const g = c.getContext('2d'); g.drawImage(v, 0, 0);
  const d = g.getImageData(0, 0, c.width, c.height).data; let h = 0;
  for (let i = 0; i < d.length; i += 7) h = (h * 31 + d[i]) | 0;
  return h !== before[2]; }"""


@pytest.fixture(autouse=True)
def _clip_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("FAOYAM_MEDIA_CACHE", str(tmp_path_factory.getbasetemp() / "media-cache"))


@pytest_asyncio.fixture
async def service(service_factory, settings):
    """Gateway (embedded MQTT) and the media worker, started as the media role starts it."""
    svc = await service_factory("embedded")
    svc.settings = svc.settings.model_copy(update={"media_rtmp_port": 0, "media_http_port": 0,
                                                   "media_stream_linger_seconds": 0.3})
    await media.start(svc)
    settings.media_public_url = f"ws://127.0.0.1:{svc.settings.media_http_port}"  # before the web app is made
    yield svc
    await media.stop(svc)


@pytest.fixture
def web(ctx, settings, service):
    """The web role alone (no gateway, no media worker of its own) on a free port."""
    import uvicorn

    from faoyam.app import create_app

    port = _free_port()
    app = create_app(settings, roles=frozenset({"web"}))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-web", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web app did not start")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(15)


class UnannouncedH265(SyntheticSource):
    """An H.265 camera whose configuration does not say so (it keeps the agent's default
    ``mainStream`` of H.264), like a bridged or misconfigured one."""

    def stream_config(self) -> dict:
        return {}


# A browser that says it plays HEVC but whose decoder refuses it (isTypeSupported lies).
CLAIMS_HEVC = """(() => { const real = MediaSource.isTypeSupported.bind(MediaSource);
  MediaSource.isTypeSupported = (type) => /hvc1|hev1/.test(type) || real(type); })();"""

CAMERAS = [
    # (name, camera, browser init script, stream pushed, the hub the viewer reads, picture size)
    ("H.264", SyntheticSource(codec="h264"), None, (0, 0), "main", (320, 240)),
    ("H.265 + H.264 sub-stream", SyntheticSource(codec="h265", sub_codec="h264"), None, (0, 1), "sub", (160, 128)),
    ("H.265 only", SyntheticSource(codec="h265", sub_codec=None), None, (0, 0), "main.h264", (320, 240)),
    # the player's fallback: what arrived did not play, so it asks again with fallback=1
    ("H.265 not announced", UnannouncedH265(codec="h265", sub_codec=None), None, (0, 0), "main.h264", (320, 240)),
    ("H.265 only, browser claims HEVC", SyntheticSource(codec="h265", sub_codec=None), CLAIMS_HEVC, (0, 0),
     "main.h264", (320, 240)),
]


@pytest.mark.req("B4")
async def test_h264_and_h265_cameras_play_in_chromium_through_the_whole_stack(ctx, service, web, browser):
    live = service.live_server[0].live  # the WebSocket part of the worker's viewer server
    async with httpx.AsyncClient(base_url=web) as api:
        owner = await register(api, ctx, email="owner@example.com", nickname="Owner")
        errors: list[str] = []
        timings = []
        for name, camera, script, pushed, served, size in CAMERAS:
            ident = await new_device(service, "camera")
            agent = await online(service, ident, media=camera)
            device_id = await bind(service, ident, owner["user_id"])
            context = await browser.new_context(locale="en-US")
            await context.add_cookies([{"name": "faoyam_session", "value": owner["token"], "url": web}])
            if script:
                await context.add_init_script(script)
            page = await context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            t0 = time.monotonic()
            await page.goto(f"{web}/devices/{device_id}/live/0")
            await page.wait_for_function(PLAYING, timeout=30000, polling=50)
            timings.append((name, time.monotonic() - t0))
            before = await page.evaluate(PROGRESS)
            await page.wait_for_function(ADVANCED, arg=before, timeout=20000, polling=50)
            picture = await page.evaluate(PICTURE)
            assert tuple(picture[:2]) == size, (name, picture)
            await page.wait_for_function(PICTURE_CHANGED, arg=picture, timeout=10000, polling=50)
            stats = await page.evaluate(STATS)
            assert stats["errors"] == [] and 'codecs="avc1.' in stats["mime"], (name, stats)
            assert stats["hevc"] is bool(script), "Debian's Chromium does not play HEVC (FACTS.md)"
            fell_back = isinstance(camera, UnannouncedH265) or bool(script)
            assert stats["stream"] == (served if fell_back else None), (name, stats)  # None: the page's URL
            # what the service did for it: the stream the device was asked for, the hub read
            assert set(agent.pushers) == {pushed}, name
            stream = ChannelId(device_id, 0, served)
            sessions = [s for s in live.sessions if s.grant.channel == stream]
            assert len(sessions) == 1, (name, [s.grant.channel for s in live.sessions])
            transcoding = ChannelId(device_id, 0, "main") in live.transcoders.running
            assert transcoding == served.endswith(".h264"), name
            transcoder = live.transcoders.running.get(ChannelId(device_id, 0, "main"))

            await context.close()  # the viewer leaves: the transcode and the push stop
            await eventually(lambda: not live.sessions, 10)
            assert not live.transcoders.running
            if transcoder is not None:
                await eventually(lambda t=transcoder: not t.running, 10)
                assert transcoder.frames_out > 0 and transcoder.frames_in >= transcoder.frames_out
            await eventually(lambda a=agent: not a.pushers, 15)
            await agent.stop()
    assert errors == []
    print("\nB4 Chromium, full stack: page open → playing: "
          + ", ".join(f"{name} {seconds * 1000:.0f} ms" for name, seconds in timings))
