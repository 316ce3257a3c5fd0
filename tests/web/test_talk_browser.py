"""Talk-back in Debian's Chromium: the doorbell's live page, the Talk button, the browser's
microphone (Chromium's fake capture device, fed a WAV of a known tone, permission granted by
``--use-fake-ui-for-media-stream``), talk.js's AudioWorklet, the media worker's talk
WebSocket (another uvicorn in its own thread and event loop, as the separate process it is),
PyAV's G.711 encoder, and the simulated doorbell agent that connects where ``start_talk``
tells it and records what it hears. The doorbell must hear the tone's frequency.

MQTT is not in this picture (tests/media/test_talk_devices.py has it): the worker's
``open_talk`` hands the ``start_talk`` command straight to the agent's own handler."""

from __future__ import annotations

import asyncio
import os
import shutil
import wave

import httpx
import numpy as np
import pytest
import pytest_asyncio

from faoyam.agent.device import DeviceAgent, Identity
from faoyam.devices.gateway import factory_register
from faoyam.devices.ports import FactoryDevice
from faoyam.media.grants import devices_revocation
from faoyam.media.talk import TalkServer
from tests.conftest import register
from tests.threaded_server import ThreadedServer
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.web.test_device_pages import add

pytestmark = [pytest.mark.browser]

SERIAL, CODE = "9D0TALKBROWSER1", "QWERTY"
TONE_HZ = 523.0


class TalkWorker(ThreadedServer):
    """The media worker's talk endpoints in a thread, and the doorbell agent it asks."""

    name = "talk-worker"

    def __init__(self, settings):
        super().__init__(settings)
        self.bell = DeviceAgent(Identity(serial=SERIAL, kind="doorbell", model="DB61i", channels=1, safety_code=CODE,
                                         factory_secret="x", mac="3c:ef:8c:00:00:01",
                                         abilities=("AudioTalk", "Doorbell")), "127.0.0.1", 1)
        self.asked: list[dict] = []

    async def open_talk(self, channel, url, codec):
        params = {"channel": channel.channel, "url": url, "codec": codec, "codecs": ["pcma", "pcmu"], "rate": 8000}
        self.asked.append(params)
        return await self.bell.handle("start_talk", params)  # what the agent does with the MQTT command

    async def build(self, ctx):
        self.talk = TalkServer(ctx.key, self.open_talk, device_base_url=lambda: f"ws://127.0.0.1:{self.port}",
                               revoked=devices_revocation(ctx), poll_interval=0.25)
        return self.talk.app

    async def cleanup(self):
        await self.bell.speaker.stop()


@pytest.fixture
def talk_worker(settings):
    worker = TalkWorker(settings)
    worker.start()
    settings.media_public_url = f"ws://127.0.0.1:{worker.port}"  # before the web app is made
    yield worker
    worker.stop()


@pytest.fixture
def tone_wav(tmp_path) -> str:
    """What Chromium's fake microphone plays (looped): a steady tone of TONE_HZ."""
    rate = 48000
    t = np.arange(rate * 2) / rate
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.sin(2 * np.pi * TONE_HZ * t) * 12000).astype("<i2").tobytes())
    return str(path)


@pytest_asyncio.fixture
async def mic_browser(tone_wav):
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM}")
    from playwright.async_api import async_playwright

    args = [*CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={tone_wav}", "--autoplay-policy=no-user-gesture-required"]
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=args, headless=True)
        try:
            yield b
        finally:
            await b.close()


TALKING = "() => document.querySelector('[data-talk]').dataset.state === 'talking'"
STATS = "() => document.querySelector('[data-talk]').talk.stats"


async def wait_heard(bell, seconds: float, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while bell.speaker.heard_seconds() < seconds:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the doorbell heard only {bell.speaker.heard_seconds():.2f} s")
        await asyncio.sleep(0.05)


@pytest.mark.req("B4")
async def test_the_browser_microphone_reaches_the_simulated_doorbell(ctx, talk_worker, live_server, mic_browser, shoot):
    base = live_server.url
    await factory_register(ctx, FactoryDevice(serial=SERIAL, kind="doorbell", model="DB61i", channels=1, safety_code=CODE,
                                              factory_secret="factory-secret-bell", abilities=("AudioTalk", "Doorbell")))
    async with httpx.AsyncClient(base_url=base) as api:
        owner = await register(api, ctx, email="owner@example.com", nickname="Owner")
        dev = await add(api, owner, serial=SERIAL, code=CODE, name="Front door")
    errors: list[str] = []
    context = await mic_browser.new_context(locale="en-US")
    await context.add_cookies([{"name": "faoyam_session", "value": owner["token"], "url": base}])
    page = await context.new_page()
    page.on("pageerror", lambda e: errors.append(str(e)))
    await page.goto(f"{base}/devices/{dev['id']}/live/0")
    await page.click("[data-talk-button]")
    await page.wait_for_function(TALKING, timeout=20000, polling=50)
    assert await page.get_attribute("[data-talk-button]", "aria-pressed") == "true"
    bell = talk_worker.bell
    await wait_heard(bell, 1.5)
    await shoot(page, "live-talk")
    await page.click("[data-talk-button]")  # stop
    await page.wait_for_function("() => document.querySelector('[data-talk]').dataset.state === 'idle'", timeout=10000)
    stats = await page.evaluate(STATS)
    assert stats["chunks"] > 50 and stats["errors"] == [], stats
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while bell.speaker.active and loop.time() < deadline:
        await asyncio.sleep(0.05)
    assert not bell.speaker.active, "the doorbell hung up when the talker stopped"
    heard = bell.speaker.dominant_frequency(last_s=1.0)
    print(f"\nB4 talk-back in Chromium: doorbell heard {bell.speaker.heard_seconds():.2f} s, dominant {heard:.1f} Hz "
          f"(sent {TONE_HZ:.0f} Hz at {stats['rate']} Hz, {stats['chunks']} chunks), rms {bell.speaker.rms():.0f}")
    assert abs(heard - TONE_HZ) < 8
    assert talk_worker.asked and talk_worker.asked[0]["codec"] == "pcma"
    assert errors == []
    await context.close()
