"""The web app's pages rendered through the ASGI app: status, language, CSRF, redirects."""

from __future__ import annotations

import json
import re

import pytest

from faoyam.web.templating import STATIC_DIR
from tests.conftest import register

PUBLIC = ["/", "/signin", "/register", "/register/confirm?pending=abc&to=u***%40example.com", "/password-reset"]
SIGNED_IN = ["/home", "/messages", "/cloud", "/me", "/me/profile", "/me/settings", "/me/settings/security",
             "/me/settings/security/terminals", "/me/settings/security/password", "/me/settings/security/export",
             "/me/settings/security/delete"]


def csrf_meta(html: str) -> str | None:
    m = re.search(r'<meta name="csrf-token" content="([^"]*)">', html)
    return m.group(1) if m else None


async def signed_in(client, ctx, **kw) -> dict:
    """Register and use the session cookie, as the browser does."""
    s = await register(client, ctx, **kw)
    client.cookies.set("faoyam_session", s["token"])
    return s


@pytest.mark.parametrize("path", PUBLIC)
async def test_public_pages_render_in_english_by_default(client, path):
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/html")
    assert '<html lang="en">' in r.text
    assert csrf_meta(r.text) == ""  # present, empty while signed out
    assert 'rel="manifest" href="/manifest.webmanifest"' in r.text
    assert r.headers["cache-control"] == "no-store"


@pytest.mark.parametrize("path", SIGNED_IN)
async def test_signed_in_pages_redirect_when_signed_out(client, path):
    r = await client.get(path)
    assert r.status_code == 303
    assert r.headers["location"].startswith("/signin?next=" + path.split("?")[0])


@pytest.mark.req("B1a", "B2")
@pytest.mark.parametrize("path", SIGNED_IN)
async def test_signed_in_pages_render_with_csrf_and_tab_bar(client, ctx, path):
    s = await signed_in(client, ctx)
    r = await client.get(path)
    assert r.status_code == 200, r.text
    assert csrf_meta(r.text) == s["csrf_token"]
    assert 'class="tabbar"' in r.text and 'aria-current="page"' in r.text
    assert 'id="reauth-dialog"' in r.text


async def test_signed_in_visitor_of_public_pages_goes_home(client, ctx):
    await signed_in(client, ctx)
    for path in ("/", "/signin", "/register"):
        r = await client.get(path)
        assert r.status_code == 303 and r.headers["location"] == "/home", path


async def test_sign_in_redirect_keeps_only_local_targets(client, ctx):
    r = await client.get("/signin?next=/me/profile")
    assert 'data-next="/me/profile"' in r.text
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/\t/evil.example", "/\n/evil.example"):
        r = await client.get("/signin", params={"next": evil})
        assert 'data-next="/home"' in r.text, evil


async def test_accept_language_picks_thai(client):
    r = await client.get("/signin", headers={"Accept-Language": "th-TH,th;q=0.9,en;q=0.5"})
    assert '<html lang="th">' in r.text
    assert "เข้าสู่ระบบ" in r.text
    assert r.headers["content-language"] == "th"
    r = await client.get("/signin", headers={"Accept-Language": "de-DE,fr;q=0.8"})
    assert '<html lang="en">' in r.text  # neither offered: the default


async def test_language_switch_sets_a_cookie_that_wins_over_accept_language(client):
    r = await client.post("/lang", data={"lang": "th", "next": "/register"})
    assert r.status_code == 303 and r.headers["location"] == "/register"
    assert client.cookies.get("faoyam_lang") == "th"
    r = await client.get("/register", headers={"Accept-Language": "en"})
    assert '<html lang="th">' in r.text and "สร้างบัญชี" in r.text
    # The switch offers the other language.
    assert 'name="lang" value="en"' in r.text
    r = await client.post("/lang", data={"lang": "en", "next": "https://evil.example/"})
    assert r.headers["location"] == "/"
    assert client.cookies.get("faoyam_lang") == "en"


async def test_unknown_language_is_ignored(client):
    r = await client.post("/lang", data={"lang": "xx", "next": "/signin"})
    assert r.status_code == 303 and "faoyam_lang" not in client.cookies


@pytest.mark.req("B1b")
async def test_language_switch_saves_the_users_language_only_with_the_csrf_token(client, ctx):
    s = await signed_in(client, ctx)
    # A cross-site form does not know the token: the account keeps its language.
    r = await client.post("/lang", data={"lang": "th", "next": "/me"})
    assert r.status_code == 303
    assert (await client.get("/api/v1/me")).json()["language"] == "en"
    r = await client.post("/lang", data={"lang": "th", "next": "/me", "csrf_token": s["csrf_token"]})
    assert r.status_code == 303
    assert (await client.get("/api/v1/me")).json()["language"] == "th"
    # The saved language wins over the browser's wishes and over an old cookie.
    client.cookies.set("faoyam_lang", "en")
    r = await client.get("/me", headers={"Accept-Language": "en"})
    assert '<html lang="th">' in r.text and "ออกจากระบบ" in r.text


async def test_register_page_has_countries_age_check_and_no_photo(client):
    r = await client.get("/register")
    html = r.text
    assert '<option value="TH"' in html and '<option value="JP"' in html
    assert len(re.findall(r'<option value="[A-Z]{2}"', html)) > 240  # ISO 3166
    assert 'name="age_confirmed"' in html and "16 or older" in html  # CH1
    assert 'type="file"' not in html  # the photo is added later in Me (B1a: voluntary)
    assert 'id="f-password-strength"' in html
    r = await client.get("/register", headers={"Accept-Language": "th"})
    assert ">ไทย<" in r.text  # country names in Thai (Babel)
    assert 'value="TH" selected' in r.text


@pytest.mark.req("B1a")
async def test_profile_shows_the_users_data(client, ctx):
    await signed_in(client, ctx, email="nok@example.com", nickname="Nok")
    r = await client.get("/me/profile")
    assert 'value="Nok"' in r.text and "nok@example.com" in r.text
    assert 'id="photo-remove" hidden' in r.text  # no photo yet
    png = _tiny_png()
    me = (await client.get("/api/v1/me")).json()
    assert me["has_photo"] is False
    csrf = csrf_meta(r.text)
    r = await client.put("/api/v1/me/photo", content=png, headers={"Content-Type": "image/png", "X-CSRF-Token": csrf})
    assert r.status_code == 204, r.text
    r = await client.get("/me/profile")
    assert 'src="/api/v1/me/photo?v=' in r.text and 'id="photo-remove" hidden' not in r.text


@pytest.mark.req("B2")
async def test_terminals_page_lists_sessions_and_sign_ins(client, ctx):
    await signed_in(client, ctx, terminal={"os": "Android 15", "model": "Pixel 9"})
    r = await client.get("/me/settings/security/terminals")
    assert "Pixel 9" in r.text and "Android 15" in r.text
    assert "This terminal" in r.text
    assert re.search(r'data-session="[0-9a-f]{32}"', r.text)


@pytest.mark.req("R3")
async def test_delete_account_page_explains_and_asks_the_password(client, ctx):
    await signed_in(client, ctx)
    r = await client.get("/me/settings/security/delete")
    assert "What is deleted" in r.text and "What may be kept" in r.text
    assert 'name="password"' in r.text and 'autocomplete="current-password"' in r.text
    # R3 path: Me → Settings → Account and Security → Delete Account
    assert 'href="/me/settings"' in (await client.get("/me")).text
    assert 'href="/me/settings/security"' in (await client.get("/me/settings")).text
    assert 'href="/me/settings/security/delete"' in (await client.get("/me/settings/security")).text


async def test_stale_session_cookie_is_treated_as_signed_out(client):
    client.cookies.set("faoyam_session", "not-a-real-token")
    r = await client.get("/me")
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")
    r = await client.get("/signin")
    assert r.status_code == 200


async def test_manifest_and_service_worker(client):
    r = await client.get("/manifest.webmanifest")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/manifest+json")
    m = json.loads(r.text)
    assert m["start_url"] == "/home" and m["display"] == "standalone"
    sizes = {i["sizes"] for i in m["icons"]}
    assert {"192x192", "512x512"} <= sizes
    for icon in m["icons"]:
        path = icon["src"].removeprefix("/static/")
        assert (STATIC_DIR / path).is_file(), icon["src"]
        assert (await client.get(icon["src"])).status_code == 200
    r = await client.get("/sw.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert r.headers["service-worker-allowed"] == "/"
    assert (await client.get("/offline")).status_code == 200


async def test_static_assets_are_served(client):
    for path in ("/static/css/app.css", "/static/js/app.js", "/static/js/auth.js", "/static/js/me.js",
                 "/static/icons/sprite.svg"):
        r = await client.get(path)
        assert r.status_code == 200 and len(r.content) > 200, path


async def test_every_icon_used_by_templates_is_in_the_sprite():
    from faoyam.web.templating import TEMPLATES_DIR

    sprite = (STATIC_DIR / "icons" / "sprite.svg").read_text()
    ids = set(re.findall(r'<symbol id="([\w-]+)"', sprite))
    used = set()
    for f in TEMPLATES_DIR.rglob("*.html"):
        used |= set(re.findall(r'icon\(\s*"([\w-]+)"', f.read_text()))
    assert used and used <= ids, used - ids


async def test_password_strength_hint_uses_the_server_rule(client, ctx):
    weak = (await client.post("/web/password-strength", json={"password": "password1"})).json()
    strong = (await client.post("/web/password-strength", json={"password": "violet-harbour-kettle-91"})).json()
    assert weak["ok"] is False and strong["ok"] is True
    assert weak["score"] < strong["score"]
    assert strong["min_score"] == ctx.settings.password_min_score
    short = (await client.post("/web/password-strength", json={"password": "a1!"})).json()
    assert short["ok"] is False and short["too_short"] is True
    # The nickname typed in the same form counts against a password that uses it, as on the server.
    alone = (await client.post("/web/password-strength", json={"password": "somchaiboonma"})).json()
    own = (await client.post("/web/password-strength",
                             json={"password": "somchaiboonma", "hints": ["somchaiboonma"]})).json()
    assert own["score"] < alone["score"] and own["ok"] is False


async def test_js_messages_are_in_the_page_language(client):
    r = await client.get("/signin", headers={"Accept-Language": "th"})
    m = re.search(r'<script type="application/json" id="i18n-messages">(.*?)</script>', r.text, re.S)
    assert m
    messages = json.loads(m.group(1))
    assert messages["This field is required."] == "จำเป็นต้องกรอกช่องนี้"
    assert messages["problem:wrong-code"] == "รหัสไม่ถูกต้อง"


def _tiny_png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 120, 100)).save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.parametrize("lang, expected", [("en", "It is valid for {n} minutes."), ("th", "รหัสใช้ได้ {n} นาที")])
@pytest.mark.parametrize("to", ["u***%40example.com", ""])
async def test_the_code_page_gives_the_codes_lifetime_from_the_setting(client, ctx, lang, expected, to):
    """The page says what the mail says (``code_ttl_minutes``), not "a few minutes"."""
    for minutes in (ctx.settings.code_ttl_minutes, 7):
        ctx.settings.code_ttl_minutes = minutes
        r = await client.get(f"/register/confirm?pending=abc&to={to}", headers={"Accept-Language": lang})
        assert expected.format(n=minutes) in r.text
        assert "few minutes" not in r.text and "ไม่กี่นาที" not in r.text


@pytest.mark.parametrize("lang, works, missing", [
    ("en", ["Your account", "Your devices", "Live view", "Recording and playback", "Alarms", "Sharing",
            "Your data, your rights"],
     ["plan", "Plan", "price", "Subscribe"]),
    ("th", ["บัญชีของคุณ", "อุปกรณ์ของคุณ", "ดูสด", "บันทึกและดูย้อนหลัง", "การแจ้งเตือน", "การแชร์",
            "ข้อมูลของคุณ สิทธิ์ของคุณ"],
     ["แพ็กเกจ", "ราคา"]),
])
async def test_the_landing_page_offers_only_what_works(client, lang, works, missing):
    """Accounts, devices, live view, recording and playback, alarms with pictures, sharing,
    privacy rights — and no cloud plans until they can be bought."""
    html = (await client.get("/", headers={"Accept-Language": lang})).text
    features = re.findall(r'<div class="feature">.*?<h3>(.*?)</h3>', html)
    assert features == works
    for word in missing:
        assert word not in html, word
