"""The web app's pages: server-rendered HTML whose forms talk to the JSON API with fetch.

Public: landing, sign in, register, confirm code, password reset.
Signed in: Home (devices), Messages, Cloud, Me → Profile, Settings → Account and
Security → Terminals, Change password, Download my data, Delete Account (R3).

Pages only read; every change goes through ``/api/v1`` (the same API the apps use),
so the rules and checks live in one place. Signed-out visitors of a signed-in page are
sent to the sign-in page and brought back afterwards.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse
from pydantic import BaseModel, Field

from faoyam import __version__
from faoyam.accounts import service as accounts
from faoyam.accounts.deps import CurrentUser, check_csrf, lookup_session, optional_user, session_token
from faoyam.accounts.validation import countries
from faoyam.core.context import Context, get_ctx
from faoyam.core.cpu import offload
from faoyam.core.errors import Forbidden
from faoyam.core.http import client_ip
from faoyam.core.ratelimit import Limit
from faoyam.core.i18n import LANGUAGES
from faoyam.devices import live_snapshots
from faoyam.web import (detection_pages, device_pages, media_pages, playback_pages, privacy_pages,
                        recording_pages)
from faoyam.web.deps import page_user
from faoyam.web.templating import LANG_COOKIE, STATIC_DIR, page_language, render

router = APIRouter(include_in_schema=False)
router.include_router(device_pages.router)
router.include_router(media_pages.router)
router.include_router(playback_pages.router)
router.include_router(privacy_pages.router)
router.include_router(detection_pages.router)
router.include_router(recording_pages.router)


# Helpers ---------------------------------------------------------------------------


def safe_next(value: str | None, default: str = "/home") -> str:
    """Only same-site paths: never another host (open redirects)."""
    if (not value or not value.startswith("/") or value.startswith("//") or "\\" in value
            or any(ord(c) < 33 or ord(c) == 127 for c in value)):
        # Browsers drop tabs and newlines from addresses: "/\t/evil.example" would become "//evil.example".
        return default
    return value


async def _profile(ctx: Context, user: CurrentUser):
    return await accounts.get_user(ctx, user.id)


def _default_country(lang: str) -> str:
    return "TH" if lang == "th" else ""


# App-wide files at the root (so the service worker's scope is the whole app) --------


@router.get("/manifest.webmanifest")
async def manifest():
    return FileResponse(STATIC_DIR / "manifest.webmanifest", media_type="application/manifest+json",
                        headers={"Cache-Control": "public, max-age=3600"})


@router.get("/sw.js")
async def service_worker():
    return FileResponse(STATIC_DIR / "js" / "sw.js", media_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "Service-Worker-Allowed": "/"})


@router.get("/offline")
async def offline(request: Request):
    return render(request, "offline.html", user=None)


# Language ----------------------------------------------------------------------------


@router.post("/lang")
async def switch_language(request: Request, lang: str = Form(...), next: str = Form("/"),
                          csrf_token: str = Form(""), ctx: Context = Depends(get_ctx)):
    """Remember the language in a cookie and, when signed in, in the account (B1b)."""
    target = safe_next(next, "/")
    if lang not in LANGUAGES:
        return RedirectResponse(target, status_code=303)
    token, via_cookie = session_token(request)
    user = await lookup_session(ctx, token) if token else None
    if user is not None:
        # A cross-site form cannot know the token: only the user's own page changes the
        # account. The same check as every cookie-signed change, with the token from the form.
        try:
            if via_cookie:
                check_csrf(request, ctx, user, csrf_token)
        except Forbidden:
            return RedirectResponse(target, status_code=303)
        await accounts.update_profile(ctx, user.id, None, lang, None)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", secure=ctx.settings.cookie_secure,
                        httponly=False, path="/")
    return response


# Password strength hint (the server's own rule, so the hint and the check agree) ------


class StrengthIn(BaseModel):
    password: str = Field("", max_length=1024)
    hints: list[str] = Field(default_factory=list, max_length=5)


STRENGTH_LIMIT = Limit("password-strength", "", 120, dt.timedelta(minutes=10))


@router.post("/web/password-strength")
async def password_strength(body: StrengthIn, request: Request, ctx: Context = Depends(get_ctx)):
    """Score 0–4 (zxcvbn) and whether the account rules accept it. Nothing is stored or logged.

    Anyone may ask, so each address may ask ``STRENGTH_LIMIT`` times (the page asks once a
    pause in typing), and zxcvbn runs in the CPU pool, not on the event loop.
    """
    from zxcvbn import zxcvbn

    pw = body.password
    if not pw:
        return JSONResponse({"score": 0, "ok": False, "min_score": ctx.settings.password_min_score})
    await ctx.limiter.reserve([dataclasses.replace(STRENGTH_LIMIT, key=client_ip(request))])
    result = await offload(zxcvbn, pw[:100], user_inputs=[h[:100] for h in body.hints if h])
    score = int(result["score"])
    ok = len(pw) >= 8 and len(pw) <= 256 and score >= ctx.settings.password_min_score
    return JSONResponse({"score": score, "ok": ok, "min_score": ctx.settings.password_min_score,
                         "too_short": len(pw) < 8, "warning": result["feedback"].get("warning") or ""},
                        headers={"Cache-Control": "no-store"})


# Public pages ------------------------------------------------------------------------


@router.get("/")
async def landing(request: Request, user: CurrentUser | None = Depends(optional_user)):
    if user is not None:
        return RedirectResponse("/home", status_code=303)
    return render(request, "landing.html")


@router.get("/signin")
async def signin_page(request: Request, next: str | None = None, user: CurrentUser | None = Depends(optional_user)):
    if user is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    lang_ctx = page_language(request, None)
    return render(request, "signin.html", next=safe_next(next), countries=countries(lang_ctx),
                  default_country=_default_country(lang_ctx))


@router.get("/register")
async def register_page(request: Request, user: CurrentUser | None = Depends(optional_user),
                        ctx: Context = Depends(get_ctx)):
    if user is not None:
        return RedirectResponse("/home", status_code=303)
    lang_ctx = page_language(request, None)
    return render(request, "register.html", countries=countries(lang_ctx), default_country=_default_country(lang_ctx),
                  minimum_age=ctx.settings.minimum_age)


@router.get("/register/confirm")
async def confirm_page(request: Request, pending: str = "", to: str = "",
                       user: CurrentUser | None = Depends(optional_user), ctx: Context = Depends(get_ctx)):
    if user is not None:
        return RedirectResponse("/home", status_code=303)
    # The same setting as the code's expiry and the mail that carries it: the page cannot drift.
    return render(request, "confirm.html", pending_id=pending[:64], sent_to=to[:254],
                  code_minutes=ctx.settings.code_ttl_minutes)


@router.get("/password-reset")
async def reset_page(request: Request, user: CurrentUser | None = Depends(optional_user)):
    lang_ctx = page_language(request, user)
    return render(request, "reset.html", countries=countries(lang_ctx), default_country=_default_country(lang_ctx))


# Signed-in pages: the four tabs ------------------------------------------------------


@router.get("/home")
async def home(request: Request, user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx)):
    profile = await _profile(ctx, user)
    data = await device_pages.home_data(ctx, user)
    # A card shows its cover if the owner set one, else the channel's last live snapshot
    # (through an authorized route, devices/_list.html), else the kind's icon.
    snapshots = await live_snapshots.card_snapshots(ctx, data["devices"])
    return render(request, "home.html", nav="home", profile=profile, snapshots=snapshots, **data)


@router.get("/messages")
async def messages(request: Request, device: str | None = Query(None, max_length=64),
                   kind: str | None = Query(None, max_length=40), day: dt.date | None = None,
                   user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx)):
    data = await device_pages.messages_data(ctx, user, device_id=device, kind=kind, day=day)
    return render(request, "messages.html", nav="messages", **data)


@router.get("/cloud")
async def cloud(request: Request, user: CurrentUser = Depends(page_user)):
    return render(request, "cloud.html", nav="cloud")


@router.get("/me")
async def me(request: Request, user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx)):
    return render(request, "me/index.html", nav="me", profile=await _profile(ctx, user))


@router.get("/me/profile")
async def me_profile(request: Request, user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx)):
    profile = await _profile(ctx, user)
    return render(request, "me/profile.html", nav="me", profile=profile,
                  countries=countries(page_language(request, user)), max_photo_mb=ctx.settings.max_photo_bytes // (1024 * 1024))


@router.get("/me/settings")
async def me_settings(request: Request, user: CurrentUser = Depends(page_user)):
    return render(request, "me/settings.html", nav="me", version=__version__)


@router.get("/me/settings/security")
async def me_security(request: Request, user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx)):
    return render(request, "me/security.html", nav="me", profile=await _profile(ctx, user))


@router.get("/me/settings/security/terminals")
async def me_terminals(request: Request, user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx)):
    sessions = await accounts.list_sessions(ctx, user.id)
    sign_ins = await accounts.list_sign_ins(ctx, user.id)
    return render(request, "me/terminals.html", nav="me", sessions=sessions, sign_ins=sign_ins,
                  current_session=user.session_id)


@router.get("/me/settings/security/password")
async def me_password(request: Request, user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx)):
    return render(request, "me/password.html", nav="me", profile=await _profile(ctx, user))


@router.get("/me/settings/security/export")
async def me_export(request: Request, user: CurrentUser = Depends(page_user)):
    return render(request, "me/export.html", nav="me")


@router.get("/me/settings/security/delete")
async def me_delete(request: Request, user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx)):
    profile = await _profile(ctx, user)
    return render(request, "me/delete.html", nav="me", profile=profile)


@router.get("/goodbye")
async def goodbye(request: Request):
    return render(request, "goodbye.html", user=None)

