"""Fixtures for the browser tests: the app served by a real uvicorn on a free port, and
Debian's Chromium driven through Playwright (async API, as the tests run in asyncio)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

CHROMIUM = os.environ.get("FAOYAM_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    server: object
    thread: threading.Thread


@pytest.fixture
def live_server(ctx, settings):
    """uvicorn serving ``create_app`` with the test's settings (same data dir and database
    as ``ctx``, whose tables exist) in a thread with its own event loop."""
    import uvicorn

    from faoyam.app import create_app

    port = _free_port()
    app = create_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                            log_config=None, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-live", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    yield LiveServer(f"http://127.0.0.1:{port}", server, thread)
    server.should_exit = True
    thread.join(15)


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    """Where screenshots go: ``FAOYAM_SCREENSHOTS`` (e.g. docs/screenshots to refresh the
    README's pictures), else the test's temporary directory."""
    target = os.environ.get("FAOYAM_SCREENSHOTS")
    path = (REPO / target) if target and not os.path.isabs(target) else Path(target) if target else tmp_path / "shots"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def shoot(screenshot_dir):
    """``await shoot(page, "name")``: a PNG of the page's viewport in ``screenshot_dir``
    (re-compressed; a palette would band the gradients and lose the small coloured dots)."""
    import io

    from PIL import Image

    async def take(page, name: str) -> Path:
        raw = await page.screenshot()
        img = Image.open(io.BytesIO(raw)).convert("RGB")
        path = screenshot_dir / f"{name}.png"
        img.save(path, optimize=True)
        return path

    return take


@pytest_asyncio.fixture
async def browser():
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    async with async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            await b.close()
