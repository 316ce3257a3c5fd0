"""Sign in with an external account (OpenID Connect / OAuth 2): the routes.

Browser flow::

    GET  /auth/{provider}/login      → 303 to the provider (state, nonce, PKCE in a signed cookie)
    GET  /auth/{provider}/callback   → checks state, exchanges the code, checks the ID token;
                                       a linked account is signed in (→ "/"), a new one goes to
    GET  /auth/external/complete     → asks country/region and the age confirmation (CH1)
    POST /auth/external/complete     → creates the account with the nickname and photo only (B1a)
    GET  /api/v1/auth/providers      → the configured providers, for the sign-in page

No server-side session: the flow's secrets live in two short-lived, HttpOnly cookies
signed with HMAC-SHA256 (key derived from the deployment's secret key):

* ``faoyam_oidc`` (path /auth/, 10 minutes): provider, state, nonce, PKCE verifier.
* ``faoyam_oidc_pending`` (path /auth/external, 15 minutes): provider, external
  subject, nickname, picture URL, between the callback and the completion form.

Errors are problem details (``faoyam.core.errors``) for API clients, and a readable
page for browsers (``Accept: text/html``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel

from faoyam.accounts import oidc_client as oc
from faoyam.accounts import service
from faoyam.accounts import validation as v
from faoyam.accounts.api import set_session_cookie
from faoyam.accounts.schemas import Terminal
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import BadRequest, Conflict, Forbidden, Invalid, Problem, Unsupported, problem_response
from faoyam.core.http import client_ip, read_limited
from faoyam.web.templating import PROBLEM_MESSAGES, page_language, render

log = logging.getLogger(__name__)

router = APIRouter(tags=["external sign-in"])

FLOW_COOKIE = "faoyam_oidc"
FLOW_PATH = "/auth/"
FLOW_TTL = 10 * 60
PENDING_COOKIE = "faoyam_oidc_pending"
PENDING_PATH = "/auth/external"
PENDING_TTL = 15 * 60
COMPLETE_URL = "/auth/external/complete"
AFTER_SIGN_IN = "/"
SIGN_IN_PAGE = "/signin"
MAX_FORM_BYTES = 16 * 1024


# Signed cookies ---------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac_key(ctx: Context, purpose: str) -> bytes:
    # One key per purpose: a value signed as one thing is never accepted as another.
    return hmac.new(ctx.key, f"faoyam-oidc-cookie:{purpose}".encode(), hashlib.sha256).digest()


def sign(ctx: Context, purpose: str, data: dict[str, Any], ttl: int) -> str:
    payload = _b64(json.dumps({**data, "exp": int(time.time()) + ttl}, separators=(",", ":")).encode())
    mac = hmac.new(_mac_key(ctx, purpose), payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def unsign(ctx: Context, purpose: str, value: str | None) -> dict[str, Any] | None:
    """The signed data, or None when missing, altered or expired."""
    if not value or value.count(".") != 1 or len(value) > 4096:
        return None
    payload, mac = value.split(".")
    want = hmac.new(_mac_key(ctx, purpose), payload.encode(), hashlib.sha256).digest()
    try:
        if not hmac.compare_digest(want, _unb64(mac)):
            return None
        data = json.loads(_unb64(payload))
    except (ValueError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("exp"), int) or data["exp"] < time.time():
        return None
    return data


def _set_cookie(response: Response, ctx: Context, name: str, value: str, ttl: int, path: str) -> None:
    # SameSite=Lax: the provider sends the browser back with a top-level GET, which
    # carries the cookie; a cross-site POST (a forged completion form) does not.
    response.set_cookie(name, value, max_age=ttl, httponly=True, samesite="lax", secure=ctx.settings.cookie_secure,
                        path=path)


def _form_token(ctx: Context, pending_value: str) -> str:
    """The completion form's token, tied to the pending cookie (a second CSRF guard)."""
    return hmac.new(_mac_key(ctx, "complete-form"), pending_value.encode(), hashlib.sha256).hexdigest()


# Pages and errors -------------------------------------------------------------------


def _page(request: Request, name: str, status_code: int = 200, **ctx: Any) -> Response:
    # The flow's pages are shown to a visitor who is not signed in yet (user=None).
    return render(request, name, status_code=status_code, user=None, **ctx)


def _lang(request: Request) -> str:
    return page_language(request, None)


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _problem_text(problem: Problem) -> tuple[str | None, dict[str, Any]]:
    """The message as a msgid and its fields, so the page can show it translated."""
    if isinstance(problem, oc.OidcProblem):
        return problem.msgid, problem.fmt
    return PROBLEM_MESSAGES.get(problem.code), {}


def _fail(request: Request, problem: Problem, *, clear: tuple[tuple[str, str], ...] = ()) -> Response:
    """A problem document for API clients, a readable page for browsers."""
    if _wants_html(request):
        msgid, fmt = _problem_text(problem)
        response = _page(request, "auth/error.html", status_code=problem.status, problem=problem, msgid=msgid,
                         fmt=fmt, message=problem.detail or problem.title, signin_url=SIGN_IN_PAGE)
    else:
        response = problem_response(problem, request)
    for name, path in clear:
        response.delete_cookie(name, path=path)
    return response


# Routes -----------------------------------------------------------------------------


class ProviderOut(BaseModel):
    name: str
    label: str
    url: str  # where the sign-in button goes


@router.get("/api/v1/auth/providers", response_model=list[ProviderOut])
async def list_providers(ctx: Context = Depends(get_ctx)):
    """External accounts this server accepts for sign-in (for the sign-in page's buttons)."""
    return [ProviderOut(name=p.name, label=p.label, url=f"/auth/{p.name}/login")
            for p in oc.providers(ctx).values()]


@router.get("/auth/{provider}/login", include_in_schema=False)
async def login(provider: str, request: Request, ctx: Context = Depends(get_ctx)):
    """Start signing in with an external account: off to the provider."""
    try:
        p = oc.get_provider(ctx, provider)
        await ctx.limiter.hit("oidc-start", client_ip(request), 60, service.HOUR)
        flow = {"p": p.name, "state": secrets.token_urlsafe(24), "nonce": secrets.token_urlsafe(24),
                "cv": secrets.token_urlsafe(48)}
        url = await oc.authorization_url(ctx, p, state=flow["state"], nonce=flow["nonce"], code_verifier=flow["cv"])
    except Problem as problem:
        return _fail(request, problem)
    response = RedirectResponse(url, status_code=303)
    _set_cookie(response, ctx, FLOW_COOKIE, sign(ctx, "flow", flow, FLOW_TTL), FLOW_TTL, FLOW_PATH)
    return response


@router.get("/auth/{provider}/callback", include_in_schema=False)
async def callback(provider: str, request: Request, ctx: Context = Depends(get_ctx)):
    """The provider sends the browser back here with a code (or an error)."""
    clear = ((FLOW_COOKIE, FLOW_PATH),)
    q = request.query_params
    try:
        p = oc.get_provider(ctx, provider)
        flow = unsign(ctx, "flow", request.cookies.get(FLOW_COOKIE))
        if q.get("error"):
            if q["error"] == "access_denied":
                raise oc.OidcProblem("external-cancelled", p)
            raise oc.OidcProblem("provider-error", p, provider_error=q["error"][:64])
        state = q.get("state") or ""
        if flow is None or flow.get("p") != p.name or not hmac.compare_digest(str(flow.get("state", "")), state):
            raise oc.OidcProblem("bad-state")
        if not q.get("code"):
            raise oc.OidcProblem("no-code", p)
        profile = await oc.finish(ctx, p, code=q["code"], code_verifier=flow["cv"], nonce=flow["nonce"],
                                  iss=q.get("iss"))
        user_id = await service.find_external(ctx, p.name, profile.subject)
        if user_id is not None:
            new = await service.sign_in_external(ctx, user_id, p.name, Terminal(), client_ip(request))
            log.info("oidc.signed_in", extra={"provider": p.name, "user": user_id})
            response = RedirectResponse(AFTER_SIGN_IN, status_code=303)
            set_session_cookie(response, ctx, new)
            response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
            return response
    except Problem as problem:
        return _fail(request, problem, clear=clear)
    pending = {"p": p.name, "sub": profile.subject, "nick": profile.nickname, "pic": profile.picture_url,
               "n": secrets.token_urlsafe(12)}
    response = RedirectResponse(COMPLETE_URL, status_code=303)
    _set_cookie(response, ctx, PENDING_COOKIE, sign(ctx, "pending", pending, PENDING_TTL), PENDING_TTL, PENDING_PATH)
    response.delete_cookie(FLOW_COOKIE, path=FLOW_PATH)
    return response


def _pending(ctx: Context, request: Request) -> tuple[dict[str, Any], oc.Provider, str]:
    raw = request.cookies.get(PENDING_COOKIE) or ""
    pending = unsign(ctx, "pending", raw)
    if pending is None:
        raise oc.OidcProblem("external-expired")
    return pending, oc.get_provider(ctx, pending["p"]), raw


def _complete_page(request: Request, ctx: Context, pending: dict, p: oc.Provider, raw: str, *, status_code: int = 200,
                   errors: dict[str, tuple[str, dict]] | None = None, values: dict[str, str] | None = None) -> Response:
    lang = _lang(request)
    values = values or {}
    return _page(request, "auth/complete.html", status_code=status_code, provider=p.label, nickname=pending.get("nick"),
                 has_picture=bool(pending.get("pic")), token=_form_token(ctx, raw), countries=v.countries(lang),
                 country=values.get("country", "TH" if lang == "th" else ""),
                 keep_photo=values.get("keep_photo", "on") == "on", typed_nickname=values.get("nickname", ""),
                 minimum_age=ctx.settings.minimum_age, errors=errors or {}, action=COMPLETE_URL)


@router.get(COMPLETE_URL, include_in_schema=False)
async def complete_form(request: Request, ctx: Context = Depends(get_ctx)):
    """First sign-in with this external account: ask what the account needs."""
    try:
        pending, p, raw = _pending(ctx, request)
    except Problem as problem:
        return _fail(request, problem, clear=((PENDING_COOKIE, PENDING_PATH),))
    return _complete_page(request, ctx, pending, p, raw)


@router.post(COMPLETE_URL, include_in_schema=False)
async def complete(request: Request, ctx: Context = Depends(get_ctx)):
    """Create the account: country/region, age confirmation (CH1), nickname and photo only (B1a)."""
    clear = ((PENDING_COOKIE, PENDING_PATH),)
    try:
        pending, p, raw = _pending(ctx, request)
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise Unsupported("Send the form as application/x-www-form-urlencoded.", code="form-format")
        body = await read_limited(request, MAX_FORM_BYTES)
        try:
            form = dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=20))
        except ValueError:
            raise BadRequest("The form has too many fields.", code="invalid") from None
        if not hmac.compare_digest(str(form.get("token", "")), _form_token(ctx, raw)):
            raise Forbidden("The form is out of date. Reload the page and try again.", code="csrf")
    except Problem as problem:
        return _fail(request, problem, clear=clear if problem.status != 403 else ())
    values = {k: str(form.get(k, "")).strip() for k in ("country", "nickname", "keep_photo", "age_confirmed")}
    values["keep_photo"] = "on" if values["keep_photo"] in ("on", "1", "true", "yes") else ""
    age_confirmed = values["age_confirmed"] in ("on", "1", "true", "yes")
    # Field errors: (msgid, fields) for the page, a problem for API clients.
    errors: dict[str, tuple[str, dict]] = {}
    problems: list[Problem] = []
    try:
        country = v.normalize_country(values["country"])
    except Invalid as exc:
        errors["country"], country = ("Choose a country or region from the list.", {}), ""
        problems.append(exc)
    nickname = pending.get("nick")
    if not nickname:
        try:
            nickname = v.normalize_nickname(values["nickname"])
        except Invalid as exc:
            errors["nickname"] = ("A nickname has 1 to 64 characters.", {})
            problems.append(exc)
    if not age_confirmed:
        errors["age_confirmed"] = ("Please confirm you are old enough to use faoyam.", {})
        problems.append(Invalid("age_confirmed", f"faoyam is for people aged {ctx.settings.minimum_age} or older. "
                                "Please confirm your age.", code="age-not-confirmed"))
    if errors:
        if not _wants_html(request):
            first = problems[0]
            first.extensions["errors"] = [{"field": e.extensions["errors"][0]["field"], "message": e.detail}
                                          for e in problems]
            return problem_response(first, request)
        return _complete_page(request, ctx, pending, p, raw, status_code=422, errors=errors, values=values)
    # The photo is fetched here, once, and only if the person keeps the box ticked.
    photo = await oc.fetch_picture(ctx, p, pending["pic"]) if values["keep_photo"] and pending.get("pic") else None
    try:
        new = await service.create_external_account(
            ctx, provider=p.name, external_subject=pending["sub"], nickname=nickname, photo=photo, country=country,
            language=_lang(request), age_confirmed=True, terminal=Terminal(), ip=client_ip(request))
    except Conflict:
        return _fail(request, oc.OidcProblem("already-linked", p), clear=clear)
    except Problem as problem:
        return _fail(request, problem)
    log.info("oidc.account_created", extra={"provider": p.name, "user": new.user_id, "photo": photo is not None})
    response = RedirectResponse(AFTER_SIGN_IN, status_code=303)
    set_session_cookie(response, ctx, new)
    response.delete_cookie(PENDING_COOKIE, path=PENDING_PATH)
    return response
