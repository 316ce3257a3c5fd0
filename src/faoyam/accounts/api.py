"""Accounts routes under /api/v1."""

from __future__ import annotations

import re

from fastapi import APIRouter, BackgroundTasks, Depends, Request, Response
from fastapi.responses import Response as RawResponse

from faoyam.accounts import service
from faoyam.accounts.deps import COOKIE, CurrentUser, current_user, require_recent_auth
from faoyam.accounts.schemas import (
    CodeIn,
    ConfirmIn,
    ContactChangeIn,
    PasswordChangeIn,
    PendingOut,
    ProfileIn,
    ProfileOut,
    ReauthIn,
    RegisterIn,
    ResetFinishIn,
    ResetStartIn,
    SessionOut,
    SignInEventOut,
    SignInIn,
    TerminalOut,
)
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import Invalid, problem_response
from faoyam.core.http import client_ip, read_image

router = APIRouter(prefix="/api/v1", tags=["accounts"])


def set_session_cookie(response: Response, ctx: Context, new: service.NewSession) -> None:
    response.set_cookie(COOKIE, new.token, max_age=ctx.settings.session_days * 86400, httponly=True,
                        samesite="lax", secure=bool(ctx.settings.cookie_secure), path="/")


def _session_out(new: service.NewSession) -> SessionOut:
    return SessionOut(token=new.token, csrf_token=new.csrf_token, user_id=new.user_id, expires_at=new.expires_at)


@router.post("/accounts/register", status_code=202, response_model=PendingOut)
async def register(body: RegisterIn, request: Request, ctx: Context = Depends(get_ctx)):
    """Start a registration by email or phone: sends a one-time code (B1a, CH1)."""
    pending = await service.start_registration(ctx, body, client_ip(request))
    return PendingOut(pending_id=pending.id, sent_to=service.mask(pending.email or pending.phone or ""),
                      expires_at=pending.expires_at)


@router.post("/accounts/register/confirm", status_code=201, response_model=SessionOut)
async def register_confirm(body: ConfirmIn, request: Request, response: Response, ctx: Context = Depends(get_ctx)):
    """Confirm the code: the account is created and signed in."""
    new = await service.confirm_registration(ctx, body.pending_id, body.code, body.terminal, client_ip(request))
    set_session_cookie(response, ctx, new)
    return _session_out(new)


@router.post("/sessions", status_code=201, response_model=SessionOut)
async def sign_in(body: SignInIn, request: Request, response: Response, background: BackgroundTasks,
                  ctx: Context = Depends(get_ctx)):
    """Sign in with email or phone and password; records the terminal (B2).

    After many wrong passwords for an account, the answer is 401 ``step-up-required``: send
    the password again with the ``code`` mailed to the account (docs/decisions/sign-in-guessing.md).
    """
    try:
        new = await service.sign_in(ctx, body.login, body.password, body.country, body.terminal, client_ip(request),
                                    code=body.code, later=background.add_task)
    except service.StepUpRequired as exc:
        # Raised problems lose the background tasks: answer here, then send the code.
        answer = problem_response(exc, request)
        answer.background = background
        return answer
    set_session_cookie(response, ctx, new)
    return _session_out(new)


@router.delete("/sessions/current", status_code=204)
async def sign_out(response: Response, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    await service.sign_out(ctx, user.session_id)
    response.delete_cookie(COOKIE, path="/")


@router.get("/me", response_model=ProfileOut)
async def me(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """The account's basic data (R0, R1)."""
    u = await service.get_user(ctx, user.id)
    return ProfileOut(id=u.id, email=u.email, phone=u.phone, country=u.country, nickname=u.nickname, language=u.language,
                      has_photo=bool(u.photo_key), has_password=bool(u.password_hash),
                      external_accounts=await service.external_accounts(ctx, user.id), created_at=u.created_at)


@router.patch("/me", response_model=ProfileOut)
async def update_me(body: ProfileIn, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Change nickname, language or country (B1b, R2)."""
    await service.update_profile(ctx, user.id, body.nickname, body.language, body.country)
    return await me(user, ctx)


@router.put("/me/photo", status_code=204)
async def put_photo(request: Request, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Upload a profile photo: the raw image as the body, or multipart field ``file``.

    Optional (B1a): an account without one works the same.
    """
    await service.set_photo(ctx, user.id, await read_image(request, ctx.settings.max_photo_bytes))


@router.get("/me/photo")
async def get_photo(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    data = await service.get_photo(ctx, user.id)
    return RawResponse(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.delete("/me/photo", status_code=204)
async def delete_photo(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    await service.delete_photo(ctx, user.id)


@router.post("/me/contact", status_code=202)
async def start_contact_change(body: ContactChangeIn, user: CurrentUser = Depends(require_recent_auth),
                               ctx: Context = Depends(get_ctx)):
    """Change email or phone: a code goes to the new address first (B1b, R2, R8)."""
    return {"sent_to": await service.start_contact_change(ctx, user.id, body.kind, body.value)}


@router.post("/me/contact/{kind}/confirm", response_model=ProfileOut)
async def confirm_contact_change(kind: str, body: CodeIn, user: CurrentUser = Depends(require_recent_auth),
                                 ctx: Context = Depends(get_ctx)):
    if kind not in ("email", "phone"):
        raise Invalid("kind", "email or phone", code="invalid")
    await service.confirm_contact_change(ctx, user.id, kind, body.code)
    return await me(user, ctx)


@router.post("/me/password", status_code=204)
async def change_password(body: PasswordChangeIn, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Change the password (the current one is required); other terminals are signed out."""
    await service.change_password(ctx, user.id, user.session_id, body.current_password, body.new_password)


@router.post("/password-reset", status_code=202)
async def password_reset(body: ResetStartIn, request: Request, background: BackgroundTasks,
                         ctx: Context = Depends(get_ctx)):
    """Send a reset code if an account has this address. Neither the answer nor its time
    says whether one has: the code is looked up and sent after the answer."""
    background.add_task(await service.start_password_reset(ctx, body.login, body.country, client_ip(request)))
    return {"detail": "If an account uses this address, a code is on its way."}


@router.post("/password-reset/confirm", status_code=204)
async def password_reset_confirm(body: ResetFinishIn, ctx: Context = Depends(get_ctx)):
    await service.finish_password_reset(ctx, body.login, body.country, body.code, body.new_password)


@router.post("/me/reauth", status_code=204)
async def reauth(body: ReauthIn, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Confirm it is you (R8) with the password or a step-up code."""
    await service.reauthenticate(ctx, user.id, user.session_id, body.password, body.code)


@router.post("/me/reauth/code", status_code=202)
async def reauth_code(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return {"sent_to": await service.send_step_up_code(ctx, user.id)}


@router.get("/me/terminals", response_model=list[TerminalOut])
async def terminals(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Signed-in terminals (B2): the user sees them and can revoke any."""
    rows = await service.list_sessions(ctx, user.id)
    return [TerminalOut(id=r.id, current=r.id == user.session_id, method=r.method, os=r.terminal_os,
                        model=r.terminal_model, install_id=r.install_id,
                        gps={"lat": r.gps_lat, "lon": r.gps_lon} if r.gps_lat is not None else None,
                        created_at=r.created_at, last_seen_at=r.last_seen_at, expires_at=r.expires_at) for r in rows]


@router.delete("/me/terminals/{session_id}", status_code=204)
async def revoke_terminal(session_id: str, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    if not re.fullmatch(r"[0-9a-f]{32}", session_id):
        raise Invalid("session_id", "Not a session id.", code="invalid")
    await service.revoke_session(ctx, user.id, session_id)


@router.get("/me/sign-ins", response_model=list[SignInEventOut])
async def sign_ins(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Sign-ins of the last seven days, with their address (kept 7 days, RET5)."""
    return [SignInEventOut(at=e.at, ip=e.ip, outcome=e.outcome, method=e.method) for e in await service.list_sign_ins(ctx, user.id)]


@router.delete("/me", status_code=200)
async def deregister(response: Response, user: CurrentUser = Depends(require_recent_auth), ctx: Context = Depends(get_ctx)):
    """Delete the account and everything about it (B17, R3). Needs a fresh sign-in (R8)."""
    report = await service.deregister(ctx, user.id)
    response.delete_cookie(COOKIE, path="/")
    return {"deleted": True, **report}
