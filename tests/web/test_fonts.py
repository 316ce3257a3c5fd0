"""Thai reads on a machine with no Thai font: the app serves Sarabun (OFL) itself and the
stylesheet declares it; nothing comes from a font CDN."""

from __future__ import annotations

import re

import pytest

from faoyam.web.templating import STATIC_DIR

THAI = "เฝ้ายาม"


def _font_faces(css: str) -> list[dict[str, str]]:
    faces = []
    for block in re.findall(r"@font-face\s*{(.*?)}", css, re.S):
        faces.append({k.strip(): v.strip() for k, v in re.findall(r"([\w-]+)\s*:\s*([^;]+);", block)})
    return faces


async def test_the_stylesheet_declares_a_thai_font_the_app_serves(client):
    css = (await client.get("/static/css/app.css")).text
    faces = _font_faces(css)
    assert {f["font-weight"] for f in faces if "Sarabun" in f["font-family"]} == {"400", "600", "700"}
    for face in faces:
        assert "U+0E01-0E5B" in face["unicode-range"]  # the Thai block, and only for it
        [url] = re.findall(r'url\("?([^")]+)"?\)', face["src"])
        assert not url.startswith(("http:", "https:", "//")), url  # served here, not by a CDN
        path = "/static/" + url.removeprefix("../")
        r = await client.get(path)
        assert r.status_code == 200, path
        assert r.content[:4] == b"wOF2" and len(r.content) > 5000
    # The page font stack names it first: Thai glyphs come from it wherever the system has none.
    stack = re.search(r"--font:\s*([^;]+);", css).group(1)
    assert stack.split(",")[0].strip().strip('"') == "Sarabun"
    assert "fonts.googleapis" not in css and "fonts.gstatic" not in css


def test_the_font_ships_with_its_licence():
    licence = (STATIC_DIR / "fonts" / "OFL-Sarabun.txt").read_text()
    assert "SIL Open Font License" in licence and "Sarabun Project Authors" in licence


@pytest.mark.browser
async def test_thai_pages_render_in_the_served_font(ctx, live_server, browser):
    """Chromium loads Sarabun from the app for Thai text (the README's th-01-landing
    screenshot is taken by test_browser on a machine without Thai fonts)."""
    context = await browser.new_context(locale="th-TH", viewport={"width": 390, "height": 844}, device_scale_factor=2)
    page = await context.new_page()
    fetched: list[str] = []
    page.on("requestfinished", lambda req: fetched.append(req.url))
    await page.goto(live_server.url + "/?lang=th")
    await page.evaluate("document.fonts.ready")
    assert await page.get_attribute("html", "lang") == "th"
    loaded = await page.evaluate("""() => [...document.fonts].filter(f => f.status === "loaded").map(f => f.family)""")
    assert any("Sarabun" in f for f in loaded), loaded
    assert await page.evaluate(f"document.fonts.check('16px Sarabun', '{THAI}')")
    assert any(u.startswith(live_server.url + "/static/fonts/sarabun-thai-") for u in fetched), fetched
    assert all(u.startswith(live_server.url) for u in fetched), fetched  # nothing from elsewhere
    await context.close()
