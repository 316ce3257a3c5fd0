"""Who is asking: the signed-in user of a request, and the checks sensitive actions need.

A request is signed in by the ``faoyam_session`` cookie (the web app) or by
``Authorization: Bearer <token>`` (apps and scripts). Cookie-signed requests that change
something pass ``check_csrf``: they carry the session's CSRF token (``X-CSRF-Token``, or a
form field for plain HTML forms) and, when the browser says where the request comes from
(``Origin``, else ``Referer``), it is this site. Bearer requests need neither, because a
browser never adds that header on its own.

Other domains depend on ``current_user`` (and ``require_recent_auth`` for sensitive
actions) and get a ``CurrentUser``; they never read the sessions table.

Reads are the hot path (every page polls the device list), so a request that only reads
(GET, HEAD) may be answered from a short-lived in-process cache of sessions
(``session_cache_seconds``, 5 s by default; 0 turns it off). Whatever changes something,
and every sensitive action, reads the session from the database. Signing out, revoking,
re-authenticating, a new password or language, and erasure forget the account's cached
sessions at once on this node; another node may serve a revoked session's *reads* for at
most ``session_cache_seconds``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hmac
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Depends, Request
from sqlalchemy import select, update

from faoyam.accounts.models import Session, User
from faoyam.core.context import Context, get_ctx
from faoyam.core.database import utcnow
from faoyam.core.errors import Forbidden, Unauthorized
from faoyam.core.security import keyed_hash

COOKIE = "faoyam_session"
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
READ_METHODS = {"GET", "HEAD"}
_TOUCH_EVERY = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class CurrentUser:
    id: str
    session_id: str
    authenticated_at: dt.datetime
    language: str
    via_cookie: bool
    csrf_token: str


class SessionCache:
    """token hash -> (valid until, CurrentUser), for reads only (see the module docstring)."""

    MAX_ENTRIES = 10_000

    def __init__(self, ttl: float):
        self.ttl = ttl
        self._entries: dict[str, tuple[float, CurrentUser]] = {}

    def get(self, token_hash: str) -> CurrentUser | None:
        hit = self._entries.get(token_hash)
        if hit is None:
            return None
        if hit[0] < time.monotonic():
            self._entries.pop(token_hash, None)
            return None
        return hit[1]

    def put(self, token_hash: str, user: CurrentUser, expires_at: dt.datetime) -> None:
        if self.ttl <= 0:
            return
        if len(self._entries) >= self.MAX_ENTRIES:
            self._entries.clear()
        left = (expires_at - utcnow()).total_seconds()
        self._entries[token_hash] = (time.monotonic() + min(self.ttl, left), user)

    def forget(self, *, user_id: str | None = None, session_id: str | None = None) -> None:
        for key, (_, u) in list(self._entries.items()):
            if u.id == user_id or u.session_id == session_id:
                self._entries.pop(key, None)


def session_cache(ctx: Context) -> SessionCache:
    if ctx.session_cache is None:
        ctx.session_cache = SessionCache(ctx.settings.session_cache_seconds)
    return ctx.session_cache


def forget_sessions(ctx: Context, *, user_id: str | None = None, session_id: str | None = None) -> None:
    """The account's (or one session's) sessions changed: drop what this node cached."""
    session_cache(ctx).forget(user_id=user_id, session_id=session_id)


def session_token(request: Request) -> tuple[str | None, bool]:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip(), False
    return request.cookies.get(COOKIE), True


async def lookup_session(ctx: Context, token: str, *, cached: bool = False) -> CurrentUser | None:
    """The session of ``token``; ``cached``: a recent answer of this node may do (reads)."""
    token_hash = keyed_hash(ctx.key, token)
    cache = session_cache(ctx)
    if cached and (hit := cache.get(token_hash)) is not None:
        return hit
    now = utcnow()
    async with ctx.db.session() as s:
        row = (
            await s.execute(
                select(Session, User.language)
                .join(User, User.id == Session.user_id)
                .where(Session.token_hash == token_hash, Session.expires_at > now)
            )
        ).first()
        if row is None:
            return None
        sess, language = row
        if now - sess.last_seen_at > _TOUCH_EVERY:
            # Activity feeds RET3 (three years without use) and the sessions list.
            await s.execute(update(Session).where(Session.id == sess.id).values(last_seen_at=now))
            await s.execute(update(User).where(User.id == sess.user_id).values(last_active_at=now))
            await s.commit()
    user = CurrentUser(sess.user_id, sess.id, sess.authenticated_at, language, False, sess.csrf_token)
    cache.put(token_hash, user, sess.expires_at)
    return user


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower() if parts.scheme and parts.netloc else ""


def same_site_origin(request: Request, ctx: Context) -> bool:
    """Whether the request comes from this site, as far as the browser tells.

    ``Origin`` (or, without it, ``Referer``) must be the public address (``base_url``) or
    the address the request was sent to. A request with neither header (not a browser, or
    a browser told to send no referrer) passes: the token still has to be right.
    """
    sent = request.headers.get("origin")
    if sent is None:
        referer = request.headers.get("referer")
        if not referer:
            return True
        sent = _origin(referer)
    sent = sent.strip().lower()
    host = request.headers.get("host", "")
    allowed = {_origin(ctx.settings.base_url), f"{request.url.scheme}://{host}".lower() if host else ""}
    return sent in allowed - {""}


def check_csrf(request: Request, ctx: Context, user: CurrentUser, sent_token: str | None = None) -> None:
    """The one CSRF check of every cookie-signed change: the right token and this site's origin.

    ``sent_token`` is the token a plain HTML form posted; otherwise the ``X-CSRF-Token`` header.
    """
    sent = sent_token if sent_token is not None else request.headers.get("x-csrf-token", "")
    if not hmac.compare_digest(sent.encode(), user.csrf_token.encode()) or not same_site_origin(request, ctx):
        raise Forbidden("The form is out of date. Reload the page and try again.", code="csrf")


async def signed_in(request: Request) -> CurrentUser | None:
    """The request's user, or None: the work of ``optional_user`` and ``current_user``.

    A plain function of the request rather than a dependency tree (``Depends(get_ctx)``
    under ``Depends(optional_user)`` under ``Depends(current_user)``): FastAPI solves every
    sub-dependency on every request, a measurable share of a fast read."""
    cached = getattr(request.state, "user", None)
    if cached is not None:
        return cached
    token, via_cookie = session_token(request)
    if not token:
        return None
    ctx: Context = request.app.state.ctx
    user = await lookup_session(ctx, token, cached=request.method in READ_METHODS)
    if user is None:
        return None
    if user.via_cookie != via_cookie:
        user = dataclasses.replace(user, via_cookie=via_cookie)
    if via_cookie and request.method not in SAFE_METHODS:
        check_csrf(request, ctx, user)
    request.state.user = user
    return user


async def optional_user(request: Request) -> CurrentUser | None:
    return await signed_in(request)


async def current_user(request: Request) -> CurrentUser:
    user = await signed_in(request)
    if user is None:
        raise Unauthorized("Sign in first.", code="signed-out")
    return user


def check_recent_auth(ctx: Context, user: CurrentUser) -> None:
    """R8: sensitive operations need a sign-in (or re-authentication) within minutes."""
    limit = dt.timedelta(minutes=ctx.settings.recent_auth_minutes)
    if utcnow() - user.authenticated_at > limit:
        raise Forbidden(
            "For your security, confirm it is you: enter your password or a code we send you.",
            code="reauth-required",
        )


async def require_recent_auth(request: Request, user: CurrentUser = Depends(current_user),
                              ctx: Context = Depends(get_ctx)) -> CurrentUser:
    """The signed-in user, if they signed in recently — read from the database, never a cache."""
    token, _ = session_token(request)
    fresh = await lookup_session(ctx, token or "")
    if fresh is None or fresh.session_id != user.session_id:
        raise Unauthorized("Sign in first.", code="signed-out")
    check_recent_auth(ctx, fresh)
    return user
