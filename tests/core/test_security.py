"""Security defaults (SEC1): headers on every answer, cookies that follow the public address,
the CSRF check (token and origin), and a rate limiter that counts atomically and forgets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest
from sqlalchemy import func, select, update

from faoyam.core.config import Settings
from faoyam.core.database import utcnow
from faoyam.core.errors import TooManyRequests
from faoyam.core.http import forwarded_client
from faoyam.core.models import RateEvent
from faoyam.core.ratelimit import MAX_WINDOW, Limit
from faoyam.privacy.subjects import erase_subject, purge_expired, resolve_subject
from faoyam.web.templating import STATIC_DIR
from tests.conftest import STRONG, register

TEMPLATES = STATIC_DIR.parent / "templates"


# Headers -------------------------------------------------------------------------------


@pytest.mark.req("SEC1")
@pytest.mark.parametrize("path", ["/", "/signin", "/api/v1/me", "/static/css/app.css", "/no-such-page"])
async def test_every_answer_carries_the_security_headers(client, path):
    r = await client.get(path)
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in r.headers  # plain http: HSTS would be ignored or wrong


@pytest.mark.req("SEC1")
def test_no_template_runs_an_inline_script():
    """The CSP runs no inline script, so none may be written: every <script> has a src or is data."""
    for path in TEMPLATES.rglob("*.html"):
        for tag in re.findall(r"<script\b[^>]*>", path.read_text()):
            assert "src=" in tag or 'type="application/json"' in tag, f"{path.name}: {tag}"
        assert not re.search(r"\son[a-z]+=", path.read_text()), f"{path.name} has an inline event handler"


@pytest.mark.req("SEC1")
def test_cookie_secure_follows_the_public_address():
    assert Settings(base_url="https://cams.example.org", _env_file=None).cookie_secure is True
    assert Settings(base_url="http://127.0.0.1:8080", _env_file=None).cookie_secure is False
    assert Settings(base_url="https://cams.example.org", cookie_secure=False, _env_file=None).cookie_secure is False


@pytest.mark.req("SEC1")
async def test_https_deployment_sends_hsts_and_secure_cookies(client, ctx):
    ctx.settings.base_url = "https://cams.example.org"
    ctx.settings.cookie_secure = True
    from faoyam.app import create_app

    app = create_app(ctx=ctx)  # headers are fixed when the app is built
    import httpx

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://cams.example.org") as c:
        r = await c.get("/")
        assert r.headers["strict-transport-security"].startswith("max-age=")
        await register(c, ctx)
        r = await c.post("/api/v1/sessions", json={"login": "user@example.com", "password": STRONG})
        assert r.status_code == 201
        assert "secure" in r.headers["set-cookie"].lower()


# CSRF -----------------------------------------------------------------------------------


@pytest.mark.req("SEC1")
async def test_cookie_changes_need_the_token_and_this_sites_origin(client, ctx):
    s = await register(client, ctx)
    client.cookies.set("faoyam_session", s["token"])
    token = {"X-CSRF-Token": s["csrf_token"]}
    body = {"nickname": "Renamed"}
    assert (await client.patch("/api/v1/me", json=body)).status_code == 403  # no token
    for evil in ({"Origin": "https://evil.example"}, {"Origin": "null"},
                 {"Referer": "https://evil.example/page"}):
        r = await client.patch("/api/v1/me", json=body, headers={**token, **evil})
        assert (r.status_code, r.json()["code"]) == (403, "csrf"), evil
    for good in ({}, {"Origin": "http://testserver"}, {"Origin": ctx.settings.base_url},
                 {"Referer": "http://testserver/me/profile"}):
        r = await client.patch("/api/v1/me", json=body, headers={**token, **good})
        assert r.status_code == 200, (good, r.text)


@pytest.mark.req("SEC1", "B1b")
async def test_language_form_uses_the_same_csrf_check(client, ctx):
    s = await register(client, ctx)
    client.cookies.set("faoyam_session", s["token"])
    form = {"lang": "th", "next": "/me", "csrf_token": s["csrf_token"]}
    # The right token from another site's page: the account keeps its language.
    r = await client.post("/lang", data=form, headers={"Origin": "https://evil.example"})
    assert r.status_code == 303
    assert (await client.get("/api/v1/me")).json()["language"] == "en"
    assert (await client.post("/lang", data=form, headers={"Origin": "http://testserver"})).status_code == 303
    assert (await client.get("/api/v1/me")).json()["language"] == "th"


# Client address ---------------------------------------------------------------------------


@pytest.mark.req("SEC1")
def test_forwarded_for_only_through_trusted_proxies():
    assert forwarded_client("127.0.0.1", "6.6.6.6", []) == "127.0.0.1"
    assert forwarded_client("192.0.2.1", "6.6.6.6", ["10.0.0.0/8"]) == "192.0.2.1"  # peer is not a proxy
    assert forwarded_client("10.0.0.5", "6.6.6.6", ["10.0.0.0/8"]) == "6.6.6.6"
    assert forwarded_client("10.0.0.5", "1.1.1.1, 6.6.6.6, 10.0.0.9", ["10.0.0.0/8"]) == "6.6.6.6"
    assert forwarded_client("10.0.0.5", "not-an-address", ["10.0.0.0/8"]) == "10.0.0.5"


# Rate limiter -----------------------------------------------------------------------------


@pytest.mark.req("SEC1")
async def test_parallel_hits_never_exceed_the_limit(ctx):
    """Forty requests at once for a limit of ten: exactly ten pass, on SQLite and PostgreSQL."""
    window = dt.timedelta(minutes=5)

    async def one() -> bool:
        try:
            await ctx.limiter.hit("parallel", "198.51.100.1", 10, window)
            return True
        except TooManyRequests:
            return False

    passed = await asyncio.gather(*[one() for _ in range(40)])
    assert sum(passed) == 10
    n, _ = await ctx.limiter.count("parallel", "198.51.100.1", window)
    assert n == 10  # refused attempts are not counted


@pytest.mark.req("SEC1")
async def test_reservations_are_released_and_refusals_count_nothing(ctx):
    lims = [Limit("a", "k", 2, dt.timedelta(minutes=1)), Limit("b", ("acct", "ip"), 5, dt.timedelta(minutes=1))]
    r1 = await ctx.limiter.reserve(lims)
    await ctx.limiter.reserve(lims)
    with pytest.raises(TooManyRequests) as exc:
        await ctx.limiter.reserve(lims)
    assert exc.value.extensions["retry_after"] >= 1
    assert (await ctx.limiter.count("b", ("acct", "ip"), dt.timedelta(minutes=1)))[0] == 2
    await ctx.limiter.release(r1)
    await ctx.limiter.reserve(lims)  # room again
    with pytest.raises(ValueError):
        await ctx.limiter.reserve([Limit("long", "k", 1, MAX_WINDOW + dt.timedelta(seconds=1))])


@pytest.mark.req("SEC1", "RET1")
async def test_rate_rows_expire_with_their_window(ctx):
    await ctx.limiter.hit("old", "k", 10, dt.timedelta(minutes=5))
    await ctx.limiter.hit("new", "k", 10, dt.timedelta(minutes=5))
    async with ctx.db.transaction() as s:
        await s.execute(update(RateEvent).where(RateEvent.bucket == "old")
                        .values(at=utcnow() - MAX_WINDOW - dt.timedelta(minutes=1)))
    await purge_expired(ctx.db, ctx.blobs)
    async with ctx.db.session() as s:
        assert sorted((await s.execute(select(RateEvent.bucket))).scalars()) == ["new"]


@pytest.mark.req("SEC1", "R3")
async def test_erasure_deletes_the_persons_rate_rows(app, client, ctx):
    s = await register(client, ctx)
    other = await register(client, ctx, email="other@example.com", nickname="Other")
    window = dt.timedelta(minutes=5)
    for key in ["user@example.com", s["user_id"], ("user@example.com", "203.0.113.9"), "other@example.com",
                other["user_id"], ("other@example.com", "203.0.113.9")]:
        await ctx.limiter.hit("test", key, 10, window)
    async with ctx.db.session() as sess:
        subject = await resolve_subject(sess, s["user_id"])
    await erase_subject(ctx.db, ctx.blobs, subject)
    async with ctx.db.session() as sess:
        left = set((await sess.execute(select(RateEvent.key_hash).where(RateEvent.bucket == "test"))).scalars())
        total = await sess.scalar(select(func.count()).select_from(RateEvent).where(RateEvent.bucket == "test"))
    lim = ctx.limiter
    assert left == {lim.key_hash("other@example.com"), lim.key_hash(other["user_id"]),
                    lim.key_hash(("other@example.com", "203.0.113.9"))}
    assert total == 3


@pytest.mark.req("SEC1")
async def test_password_strength_check_is_rate_limited_per_address(client):
    from faoyam.web.pages import STRENGTH_LIMIT

    body = {"password": "abcdefgh1"}
    for _ in range(STRENGTH_LIMIT.limit):
        r = await client.post("/web/password-strength", json=body)
        assert r.status_code == 200 and "score" in r.json()
    r = await client.post("/web/password-strength", json=body)
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    # Another address is not affected.
    ctx = client._transport.app.state.ctx
    ctx.settings.trusted_proxies = ["127.0.0.1"]
    r = await client.post("/web/password-strength", json=body, headers={"X-Forwarded-For": "198.51.100.20"})
    assert r.status_code == 200
