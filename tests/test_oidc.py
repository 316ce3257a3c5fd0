"""Sign in with an external account (B1a, CH1, SEC1).

The end-to-end tests run the whole browser flow against a real, independent OpenID
Connect provider: the certified ``oidc-provider`` package on Node (tests/oidc), with
faoyam served by a real uvicorn server on a free port. A small httpx "browser" follows
the redirects and submits the provider's login and consent forms and faoyam's
completion form, as a person's browser would.

Each test registers faoyam at the provider as a new client (dynamic registration,
RFC 7591) with the redirect URI of its own server.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import queue
import secrets
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest
import pytest_asyncio
import uvicorn
from PIL import Image
from sqlalchemy import func, select, text

from faoyam.accounts import oidc, oidc_client
from faoyam.accounts.deps import COOKIE
from faoyam.accounts.models import ExternalIdentity, Session, User
from faoyam.app import create_app
from faoyam.core.database import Base

OIDC_DIR = Path(__file__).resolve().parent / "oidc"

# The provider's account. Name and email are canaries: faoyam must never store them (B1a).
ACCOUNT = {
    "nickname": "Ploy",
    "name": "Ploypailin Canarysrisuk",
    "email": "ploy.canary.7f3a@example.org",
}
AVATAR_SIZE = (48, 32)
AVATAR_RGB = (200, 30, 60)
AVATAR_CANARY = "avatar-metadata-canary-91c2"


# The provider (Node) ----------------------------------------------------------------


@dataclass
class OidcProvider:
    issuer: str
    avatar_png: bytes


def _avatar_png() -> bytes:
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", AVATAR_CANARY)  # metadata the re-encoding must drop
    out = io.BytesIO()
    Image.new("RGB", AVATAR_SIZE, AVATAR_RGB).save(out, "PNG", pnginfo=info)
    return out.getvalue()


def _ensure_node_modules() -> None:
    if (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    cmd = ["npm", "ci"] if (OIDC_DIR / "package-lock.json").exists() else ["npm", "install"]
    try:
        done = subprocess.run([*cmd, "--no-audit", "--no-fund"], cwd=OIDC_DIR, capture_output=True, text=True,
                              timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("npm could not install the test OpenID provider (tests/oidc) in time")
    if done.returncode != 0:
        pytest.skip(f"npm could not install the test OpenID provider (tests/oidc): {done.stderr.strip()[-300:]}")


@pytest.fixture(scope="session")
def oidc_provider(tmp_path_factory) -> OidcProvider:
    if not shutil.which("node") or not shutil.which("npm"):
        pytest.skip("node and npm are needed to run the test OpenID provider (tests/oidc)")
    _ensure_node_modules()
    work = tmp_path_factory.mktemp("oidc-provider")
    avatar = _avatar_png()
    (work / "avatar.png").write_bytes(avatar)
    env = {**os.environ, "PORT": "0", "ACCOUNT_JSON": json.dumps(ACCOUNT), "AVATAR_FILE": str(work / "avatar.png")}
    stderr = open(work / "node.log", "wb")  # noqa: SIM115 - closed at teardown
    proc = subprocess.Popen(["node", "server.mjs"], cwd=OIDC_DIR, env=env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=stderr)
    lines: queue.Queue[bytes] = queue.Queue()
    threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True).start()
    try:
        try:
            first = lines.get(timeout=30)
            issuer = json.loads(first)["issuer"]
        except (queue.Empty, ValueError, KeyError):
            proc.kill()
            pytest.fail(f"the test OpenID provider did not start: {(work / 'node.log').read_text()[-2000:]}")
        # Ready when its discovery document answers.
        deadline = time.monotonic() + 30
        while True:
            try:
                doc = httpx.get(f"{issuer}/.well-known/openid-configuration", timeout=5)
                if doc.status_code == 200 and doc.json()["issuer"] == issuer:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the test OpenID provider never served its discovery document")
            time.sleep(0.1)
        yield OidcProvider(issuer=issuer, avatar_png=avatar)
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        stderr.close()


# faoyam, served by uvicorn ----------------------------------------------------------


@dataclass
class Faoyam:
    base: str
    client_id: str
    issuer: str
    app: object

    def url(self, path: str) -> str:
        return self.base + path


@pytest_asyncio.fixture
async def faoyam(settings, ctx, oidc_provider) -> Faoyam:
    """faoyam on a free port, with the test provider configured as "test".

    The server has its own Context (its own event loop, in a thread) on the same
    database and data directory as the test's ``ctx``, which the test uses to look.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with httpx.AsyncClient(timeout=10) as c:
        r = await c.post(f"{oidc_provider.issuer}/reg", json={
            "client_name": "faoyam (test)",
            "redirect_uris": [f"{base}/auth/test/callback"],
            "response_types": ["code"],
            "grant_types": ["authorization_code"],
            "token_endpoint_auth_method": "client_secret_basic",
        })
        assert r.status_code == 201, r.text
        client = r.json()
        await c.post(f"{oidc_provider.issuer}/__test/tamper", json={})
    providers = {"test": {
        "label": "Test ID",
        "server_metadata_url": f"{oidc_provider.issuer}/.well-known/openid-configuration",
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
        # An operator might ask for more than needed; faoyam must still keep only B1a's list.
        "scope": "openid profile email",
    }}
    server_settings = settings.model_copy(update={"base_url": base, "oidc_providers": providers})
    settings.oidc_providers = providers  # the test's ctx sees the same configuration
    settings.base_url = base
    app = create_app(server_settings)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        if not thread.is_alive():
            pytest.fail("faoyam's server did not start")
        await asyncio.sleep(0.05)
    assert server.started, "faoyam's server did not start"
    try:
        yield Faoyam(base=base, client_id=client["client_id"], issuer=oidc_provider.issuer, app=app)
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 15)
        sock.close()


@pytest_asyncio.fixture
async def browser():
    async with httpx.AsyncClient(follow_redirects=False, timeout=20, headers={"User-Agent": "faoyam-test-browser"}) as b:
        yield b


# A browser that reads forms ---------------------------------------------------------


class _FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "method": (a.get("method") or "get").lower(),
                               "fields": {}, "checkboxes": {}, "selects": {}})
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            kind = (a.get("type") or "text").lower()
            if kind == "checkbox":
                self.forms[-1]["checkboxes"][a["name"]] = ("checked" in a, a.get("value") or "on")
            elif kind not in ("submit", "button"):
                self.forms[-1]["fields"][a["name"]] = a.get("value") or ""
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
            self.forms[-1]["selects"][a["name"]] = []
        elif tag == "option" and self._select:
            self.forms[-1]["selects"][self._select].append((a.get("value", ""), "selected" in a))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


def read_form(page: httpx.Response) -> dict:
    """The page's main form (not the app bar's language switch)."""
    parser = _FormParser()
    parser.feed(page.text)
    forms = [f for f in parser.forms if f["action"] != "/lang"]
    assert forms, f"no form on {page.url}: {page.text[:300]}"
    return forms[0]


async def submit(browser: httpx.AsyncClient, page: httpx.Response, values: dict | None = None,
                 untick: tuple[str, ...] = ()) -> httpx.Response:
    """Submit the page's main form as a browser would: hidden fields, ticked boxes, chosen options."""
    form = read_form(page)
    data = dict(form["fields"])
    for name, (checked, value) in form["checkboxes"].items():
        if checked and name not in untick:
            data[name] = value
    for name, options in form["selects"].items():
        chosen = [v for v, sel in options if sel]
        if chosen and chosen[0]:
            data[name] = chosen[0]
    data.update(values or {})
    action = str(page.url.join(form["action"] or str(page.url)))
    return await browser.post(action, data=data, headers={"Accept": "text/html"})


async def through_provider(browser: httpx.AsyncClient, srv: Faoyam, login: str, *, on_callback=None,
                           start: httpx.Response | None = None) -> httpx.Response:
    """From faoyam's login link to faoyam's callback: the callback's response.

    ``on_callback`` may change the callback URL before the browser opens it (an attacker).
    """
    r = start or await browser.get(srv.url("/auth/test/login"), headers={"Accept": "text/html"})
    for _ in range(30):
        if r.is_redirect:
            url = str(r.url.join(r.headers["location"]))
            if url.startswith(srv.url("/auth/test/callback")):
                if on_callback:
                    url = on_callback(url)
                return await browser.get(url, headers={"Accept": "text/html"})
            r = await browser.get(url, headers={"Accept": "text/html"})
        elif r.status_code == 200 and "<form" in r.text:
            r = await submit(browser, r, {"login": login, "password": "anything"})
        else:
            raise AssertionError(f"unexpected {r.status_code} at {r.url}: {r.text[:500]}")
    raise AssertionError("the provider never sent the browser back")


async def sign_up(browser: httpx.AsyncClient, srv: Faoyam, login: str, **form) -> httpx.Response:
    """The whole first sign-in: provider, callback, completion form. Returns the form's answer."""
    r = await through_provider(browser, srv, login)
    assert r.status_code == 303 and r.headers["location"] == "/auth/external/complete", r.text
    page = await browser.get(srv.url("/auth/external/complete"), headers={"Accept": "text/html"})
    assert page.status_code == 200, page.text
    return await submit(browser, page, {"country": "TH", "age_confirmed": "on", **form})


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(parts.query).items()}
    q.update(changes)
    return urlunsplit(parts._replace(query=urlencode(q)))


async def stored_text(ctx, settings) -> bytes:
    """Everything faoyam keeps, as bytes: every file under data_dir (the SQLite database,
    blobs, logs, outbox) and, on PostgreSQL, every row of every table."""
    chunks = [p.read_bytes() for p in Path(settings.data_dir).rglob("*") if p.is_file()]
    if ctx.db.dialect == "postgresql":
        async with ctx.db.session() as s:
            for table in Base.metadata.sorted_tables:
                rows = await s.execute(text(f'SELECT CAST(t AS text) FROM "{table.name}" t'))
                chunks.extend(r[0].encode() for r in rows)
    return b"\n".join(chunks)


async def count(ctx, model) -> int:
    async with ctx.db.session() as s:
        return await s.scalar(select(func.count()).select_from(model))


# End to end against the real provider -----------------------------------------------


@pytest.mark.req("B1a", "CH1")
async def test_first_sign_in_keeps_only_nickname_and_photo(faoyam, browser, ctx, settings, oidc_provider,
                                                             monkeypatch):
    seen: list[dict] = []
    real_userinfo = oidc_client.read_userinfo

    async def spy_userinfo(*a, **kw):
        doc = await real_userinfo(*a, **kw)
        seen.append(dict(doc))
        return doc

    monkeypatch.setattr(oidc_client, "read_userinfo", spy_userinfo)
    login = f"ploy-{secrets.token_hex(4)}"

    r = await browser.get(faoyam.url("/auth/test/login"))
    assert r.status_code == 303
    auth = parse_qs(urlsplit(r.headers["location"]).query)
    assert r.headers["location"].startswith(f"{faoyam.issuer}/auth?")
    assert auth["code_challenge_method"] == ["S256"] and len(auth["code_challenge"][0]) >= 43
    assert auth["client_id"] == [faoyam.client_id] and auth["nonce"][0] and auth["state"][0]
    assert "HttpOnly" in r.headers["set-cookie"] and "Path=/auth/" in r.headers["set-cookie"]

    r = await through_provider(browser, faoyam, login, start=r)
    assert r.status_code == 303 and r.headers["location"] == "/auth/external/complete", r.text
    # The provider did send the email and the full name; faoyam must drop them.
    assert seen and seen[-1]["email"] == ACCOUNT["email"] and seen[-1]["name"] == ACCOUNT["name"]
    assert await count(ctx, User) == 0  # nothing is created before the completion form

    page = await browser.get(faoyam.url("/auth/external/complete"), headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert ACCOUNT["nickname"] in page.text and ACCOUNT["email"] not in page.text and ACCOUNT["name"] not in page.text
    form = read_form(page)
    assert "age_confirmed" in form["checkboxes"] and form["checkboxes"]["age_confirmed"][0] is False
    assert form["checkboxes"]["keep_photo"][0] is True
    assert ("TH", False) in form["selects"]["country"]

    # CH1: without the age confirmation nothing is created.
    r = await submit(browser, page, {"country": "TH"})
    assert r.status_code == 422 and 'data-error-for="age_confirmed"' in r.text
    assert await count(ctx, User) == 0

    r = await submit(browser, page, {"country": "TH", "age_confirmed": "on"})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    assert browser.cookies.get(COOKIE)
    me = await browser.get(faoyam.url("/api/v1/me"))
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["nickname"] == "Ploy" and body["email"] is None and body["phone"] is None and body["country"] == "TH"
    assert body["has_password"] is False
    assert body["external_accounts"] == [{"provider": "test", "nickname": "Ploy", "has_photo": True}]

    async with ctx.db.session() as s:
        ident = (await s.execute(select(ExternalIdentity))).scalar_one()
        sess = (await s.execute(select(Session))).scalar_one()
    assert ident.external_subject == login and ident.nickname == "Ploy" and ident.user_id == body["id"]
    assert sess.method == "oidc:test"
    photo = await ctx.blobs.read(ident.photo_key)
    assert ident.photo_key.startswith("external_photo/")
    assert photo[:3] == b"\xff\xd8\xff" and photo != oidc_provider.avatar_png  # re-encoded as JPEG
    img = Image.open(io.BytesIO(photo))
    assert img.format == "JPEG" and img.size == AVATAR_SIZE
    assert all(abs(a - b) < 12 for a, b in zip(img.convert("RGB").getpixel((5, 5)), AVATAR_RGB, strict=True))
    assert AVATAR_CANARY.encode() not in photo

    # B1a: the email, the full name and the photo's metadata are nowhere in what faoyam keeps.
    stored = await stored_text(ctx, settings)
    assert b"Ploy" in stored and login.encode() in stored  # the scan does see what is kept
    assert ACCOUNT["email"].encode() not in stored
    assert ACCOUNT["name"].encode() not in stored
    assert AVATAR_CANARY.encode() not in stored


@pytest.mark.req("B1a", "B2")
async def test_second_sign_in_reuses_the_account_and_fetches_no_photo(faoyam, browser, ctx, monkeypatch):
    fetched: list[str] = []
    real_fetch = oidc_client.fetch_picture

    async def spy_fetch(ctx_, p, url):
        fetched.append(url)
        return await real_fetch(ctx_, p, url)

    monkeypatch.setattr(oidc_client, "fetch_picture", spy_fetch)
    login = f"returning-{secrets.token_hex(4)}"
    r = await sign_up(browser, faoyam, login)
    assert r.status_code == 303 and r.headers["location"] == "/"
    first_user = (await browser.get(faoyam.url("/api/v1/me"))).json()["id"]
    assert len(fetched) == 1

    # The same person, another browser: signs in at the provider again, comes straight in.
    async with httpx.AsyncClient(follow_redirects=False, timeout=20) as other:
        r = await through_provider(other, faoyam, login)
        assert r.status_code == 303 and r.headers["location"] == "/", r.text
        assert "faoyam_oidc_pending" not in r.headers.get("set-cookie", "")
        me = await other.get(faoyam.url("/api/v1/me"))
        assert me.status_code == 200 and me.json()["id"] == first_user

    # The first browser again (the provider remembers the sign-in and the consent).
    r = await through_provider(browser, faoyam, login)
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert (await browser.get(faoyam.url("/api/v1/me"))).json()["id"] == first_user

    assert await count(ctx, User) == 1 and await count(ctx, ExternalIdentity) == 1
    async with ctx.db.session() as s:
        methods = (await s.execute(select(Session.method))).scalars().all()
    assert methods == ["oidc:test"] * 3
    assert len(fetched) == 1  # the photo was fetched once, at sign-up, never again


@pytest.mark.req("SEC1", "B1a")
async def test_tampered_or_foreign_state_is_refused(faoyam, browser, ctx):
    login = f"mallory-{secrets.token_hex(4)}"
    r = await through_provider(browser, faoyam, login,
                               on_callback=lambda url: with_query(url, state=secrets.token_urlsafe(24)))
    assert r.status_code == 400 and "text/html" in r.headers["content-type"]
    assert 'data-problem="bad-state"' in r.text and "Start again" in r.text

    # An answer that names another issuer (RFC 9207, a mix-up) is refused.
    r = await through_provider(browser, faoyam, login,
                               on_callback=lambda url: with_query(url, iss="http://127.0.0.1:1/evil"))
    assert r.status_code == 400 and 'data-problem="issuer-mismatch"' in r.text

    # A callback URL opened in another browser (login CSRF: someone else's code) is refused.
    captured: list[str] = []
    r = await through_provider(browser, faoyam, login, on_callback=lambda url: captured.append(url) or url)
    assert r.status_code == 303  # the real browser goes on
    async with httpx.AsyncClient(follow_redirects=False, timeout=20) as stranger:
        r = await stranger.get(captured[0])
        assert r.status_code == 400 and r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["code"] == "bad-state"

    # A flow cookie with a changed signature is refused too.
    async with httpx.AsyncClient(follow_redirects=False, timeout=20) as forger:
        start = await forger.get(faoyam.url("/auth/test/login"))
        value = forger.cookies.get(oidc.FLOW_COOKIE)
        forger.cookies.clear()
        forger.cookies.set(oidc.FLOW_COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
        r = await through_provider(forger, faoyam, login, start=start)
        assert r.status_code == 400 and 'data-problem="bad-state"' in r.text

    assert await count(ctx, User) == 0 and await count(ctx, ExternalIdentity) == 0


@pytest.mark.req("SEC1", "B1a")
@pytest.mark.parametrize("tamper, why", [
    ({"claims": {"aud": "some-other-client"}}, "another audience"),
    ({"claims": {"iss": "http://127.0.0.1:1/other-issuer"}}, "another issuer"),
    ({"claims": {"nonce": "a-replayed-nonce"}}, "another nonce"),
    ({"drop": ["nonce"]}, "no nonce"),
    ({"claims": {"exp": 1_000_000_000, "iat": 999_999_000}}, "expired"),
    ({"foreign_key": True}, "signed with a key the provider does not publish"),
])
async def test_id_token_that_fails_validation_is_refused(faoyam, browser, ctx, tamper, why):
    async with httpx.AsyncClient(timeout=10) as c:
        assert (await c.post(f"{faoyam.issuer}/__test/tamper", json=tamper)).status_code == 204
    r = await through_provider(browser, faoyam, f"eve-{secrets.token_hex(4)}")
    assert r.status_code == 400, f"{why}: {r.status_code} {r.text[:300]}"
    assert 'data-problem="invalid-id-token"' in r.text, why
    assert "faoyam_oidc_pending" not in r.headers.get("set-cookie", "")
    assert COOKIE not in browser.cookies
    assert await count(ctx, User) == 0 and await count(ctx, ExternalIdentity) == 0


@pytest.mark.req("B1a")
async def test_cancelling_at_the_provider_shows_a_readable_error(faoyam, browser, ctx):
    r = await browser.get(faoyam.url("/auth/test/login"))
    for _ in range(5):  # to the provider's sign-in page
        r = await browser.get(str(r.url.join(r.headers["location"])))
        if not r.is_redirect:
            break
    assert r.status_code == 200 and "/interaction/" in str(r.url)
    r = await browser.get(f"{r.url}/abort")  # the provider's "Cancel"
    while r.is_redirect and not r.headers["location"].startswith(faoyam.url("/")):
        r = await browser.get(str(r.url.join(r.headers["location"])))
    assert r.is_redirect and r.headers["location"].startswith(faoyam.url("/auth/test/callback"))
    assert "error=access_denied" in r.headers["location"]
    page = await browser.get(r.headers["location"], headers={"Accept": "text/html"})
    assert page.status_code == 400 and 'data-problem="external-cancelled"' in page.text
    assert "Signing in with Test ID was cancelled." in page.text and 'href="/signin"' in page.text
    api = await browser.get(r.headers["location"])
    assert api.json()["code"] == "external-cancelled"
    assert await count(ctx, User) == 0


# Without the provider: configuration, the list, the completion form -----------------


@pytest.mark.req("B1a")
async def test_providers_are_configured_by_settings(client, ctx):
    ctx.settings.oidc_providers = {
        "google": {"client_id": "g-id", "client_secret": "g-secret"},
        "facebook": {"client_id": "f-id", "client_secret": "f-secret"},
        "keycloak": {"label": "Company ID", "client_id": "k", "client_secret": "s",
                     "server_metadata_url": "https://id.example.com/realms/x/.well-known/openid-configuration"},
        "broken": {"label": "No client id", "server_metadata_url": "https://x.example/.well-known/openid-configuration"},
    }
    r = await client.get("/api/v1/auth/providers")
    assert r.status_code == 200
    assert r.json() == [
        {"name": "google", "label": "Google", "url": "/auth/google/login"},
        {"name": "facebook", "label": "Facebook", "url": "/auth/facebook/login"},
        {"name": "keycloak", "label": "Company ID", "url": "/auth/keycloak/login"},
    ]
    ps = oidc_client.providers(ctx)
    assert ps["google"].is_oidc and ps["google"].scope == "openid profile"
    fb = ps["facebook"]
    assert not fb.is_oidc and fb.subject_claim == "id" and fb.picture_claim == "picture.data.url"
    assert fb.token_endpoint_auth_method == "client_secret_post" and "email" not in fb.userinfo_url

    # Facebook's Graph answer: only id, a nickname and the photo URL come out.
    prof = oidc_client.profile_from_claims(fb, {
        "id": 1234567890, "short_name": "Ploy", "name": "Ploypailin S.", "email": "p@example.org",
        "picture": {"data": {"url": "https://cdn.example.net/p.jpg", "width": 512}}})
    assert prof == oidc_client.ExternalProfile("1234567890", "Ploy", "https://cdn.example.net/p.jpg")
    # An email address is never taken for a nickname.
    kc = ps["keycloak"]
    prof = oidc_client.profile_from_claims(kc, {"sub": "u1", "preferred_username": "ploy@example.org",
                                                "given_name": "Ploy"})
    assert prof.nickname == "Ploy"

    r = await client.get("/auth/nobody/login")
    assert r.status_code == 404 and r.json()["code"] == "unknown-provider"
    r = await client.get("/auth/nobody/login", headers={"Accept": "text/html"})
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    assert "There is no sign-in with this provider here." in r.text
    with pytest.raises(ValueError):
        oidc_client.parse_provider("external", {"client_id": "x", "server_metadata_url": "https://x/.well-known/y"})


@pytest.mark.req("B1a", "CH1")
async def test_completion_without_photo_and_without_provider_nickname(client, ctx, monkeypatch):
    ctx.settings.oidc_providers = {"acme": {"client_id": "c", "client_secret": "s", "label": "Acme",
                                            "authorize_url": "https://acme.example/auth",
                                            "access_token_url": "https://acme.example/token",
                                            "userinfo_url": "https://acme.example/me"}}
    fetched: list[str] = []

    async def no_fetch(*a):
        fetched.append(a[-1])
        return None

    monkeypatch.setattr(oidc_client, "fetch_picture", no_fetch)
    pending = oidc.sign(ctx, "pending", {"p": "acme", "sub": "acme-42", "nick": None,
                                         "pic": "https://acme.example/photo.png", "n": "x"}, 900)

    # No pending sign-up (or an altered one): a clear answer, nothing created.
    r = await client.get("/auth/external/complete")
    assert r.status_code == 410 and r.json()["code"] == "external-expired"
    client.cookies.set(oidc.PENDING_COOKIE, pending[:-3] + "abc", path="/auth/external")
    r = await client.post("/auth/external/complete", data={"country": "TH", "age_confirmed": "on"})
    assert r.status_code == 410
    client.cookies.clear()

    client.cookies.set(oidc.PENDING_COOKIE, pending, path="/auth/external")
    page = await client.get("/auth/external/complete", headers={"Accept": "text/html"})
    assert page.status_code == 200 and 'name="nickname"' in page.text and 'name="keep_photo"' in page.text
    form = read_form(page)
    # Only a plain, small form is read.
    r = await client.post("/auth/external/complete", json={"country": "TH"})
    assert r.status_code == 415
    r = await client.post("/auth/external/complete", content=b"a=" + b"x" * 200_000,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 413
    # A form without its token (made on another site) is refused.
    r = await client.post("/auth/external/complete", data={"country": "TH", "age_confirmed": "on", "nickname": "N"})
    assert r.status_code == 403 and r.json()["code"] == "csrf"
    # The API answer names every wrong field.
    r = await client.post("/auth/external/complete", data={"token": form["fields"]["token"], "country": "XX"})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"country", "nickname", "age_confirmed"}
    assert await count(ctx, User) == 0

    # The photo box unticked: no photo is fetched, the account works the same (B1a).
    r = await client.post("/auth/external/complete", data={"token": form["fields"]["token"], "country": "th",
                                                           "age_confirmed": "on", "nickname": "  Noi  "})
    assert r.status_code == 303 and r.headers["location"] == "/"
    assert fetched == []
    me = await client.get("/api/v1/me")
    assert me.json()["nickname"] == "Noi" and me.json()["country"] == "TH"
    assert me.json()["external_accounts"] == [{"provider": "acme", "nickname": "Noi", "has_photo": False}]
    # The same pending sign-up cannot make a second account.
    client.cookies.set(oidc.PENDING_COOKIE, pending, path="/auth/external")
    r = await client.post("/auth/external/complete", data={"token": form["fields"]["token"], "country": "TH",
                                                           "age_confirmed": "on", "nickname": "Noi"})
    assert r.status_code == 409 and r.json()["code"] == "already-linked"
    assert await count(ctx, User) == 1
