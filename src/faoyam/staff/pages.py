"""The back office at ``/staff``: sign in (password + TOTP), enrol, find a customer, look,
act (export, erase), read the audit log. Plain HTML forms; no script needed.

Every route but signing in and enrolling declares its permission with ``require_staff``
(``permissions.py`` says which role has which); ``tests/staff`` fails on a route that
declares none.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, StreamingResponse

from faoyam.accounts.deps import same_site_origin
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import Forbidden, Gone, Invalid, Problem, TooManyRequests
from faoyam.core.http import client_ip
from faoyam.staff import audit, service
from faoyam.staff.deps import COOKIE, require_staff, signed_in_staff
from faoyam.staff.permissions import allowed
from faoyam.staff.service import StaffUser
from faoyam.web.templating import render

router = APIRouter(prefix="/staff", include_in_schema=False)


def _next(value: str | None) -> str:
    """Only back-office paths after signing in (never another site)."""
    if not value or not value.startswith("/staff") or "//" in value or "\\" in value or any(ord(c) < 33 for c in value):
        return "/staff/customers"
    return value


def _page(request: Request, name: str, staff: StaffUser | None, status_code: int = 200, **ctx):
    can = (lambda p: allowed(staff.role, p)) if staff else (lambda p: False)
    return render(request, f"staff/{name}", status_code=status_code, user=staff, staff=staff, can=can, **ctx)


# Signing in and enrolling (public) ------------------------------------------------------


@router.get("/signin")
async def signin_page(request: Request, next: str | None = None):
    staff = await signed_in_staff(request)
    if staff is not None:
        return RedirectResponse(_next(next), status_code=303)
    return _page(request, "signin.html", None, next=_next(next))


@router.post("/signin")
async def signin(request: Request, email: str = Form(""), password: str = Form(""), code: str = Form(""),
                 next: str = Form("/staff/customers"), ctx: Context = Depends(get_ctx)):
    if not same_site_origin(request, ctx):
        raise Forbidden("The form is out of date. Reload the page and try again.", code="csrf")
    try:
        new = await service.sign_in(ctx, email[:254], password[:1024], code[:12], client_ip(request))
    except TooManyRequests:
        return _page(request, "signin.html", None, status_code=429, next=_next(next), email=email,
                     error="Too many attempts. Please wait a while and try again.")
    except Problem:
        return _page(request, "signin.html", None, status_code=401, next=_next(next), email=email,
                     error="The email, password or code is not right.")
    response = RedirectResponse(_next(next), status_code=303)
    response.set_cookie(COOKIE, new.token, max_age=ctx.settings.staff_session_max_hours * 3600, httponly=True,
                        samesite="strict", secure=bool(ctx.settings.cookie_secure), path="/staff")
    return response


@router.get("/enrol/{token}")
async def enrol_page(request: Request, token: str, ctx: Context = Depends(get_ctx)):
    try:
        email, secret, uri = await service.enrolment(ctx, token[:100])
    except Gone:
        return _page(request, "enrol.html", None, status_code=410, gone=True)
    return _page(request, "enrol.html", None, email=email, secret=secret, uri=uri, token=token)


@router.post("/enrol/{token}")
async def enrol(request: Request, token: str, password: str = Form(""), code: str = Form(""),
                ctx: Context = Depends(get_ctx)):
    if not same_site_origin(request, ctx):
        raise Forbidden("The form is out of date. Reload the page and try again.", code="csrf")
    try:
        await service.complete_enrolment(ctx, token[:100], password[:1024], code[:12])
    except Gone:
        return _page(request, "enrol.html", None, status_code=410, gone=True)
    except Invalid as exc:
        email, secret, uri = await service.enrolment(ctx, token[:100])
        message = ("The code from the authenticator app is not right." if exc.code == "wrong-code"
                   else "This password is too easy to guess. Add more words or characters.")
        return _page(request, "enrol.html", None, status_code=422, email=email, secret=secret, uri=uri, token=token,
                     error=message)
    return RedirectResponse("/staff/signin?enrolled=1", status_code=303)


# Signed in ------------------------------------------------------------------------------


@router.get("")
async def start(staff: StaffUser = Depends(require_staff("staff:session"))):
    return RedirectResponse("/staff/customers", status_code=303)


@router.post("/signout")
async def signout(staff: StaffUser = Depends(require_staff("staff:session")), ctx: Context = Depends(get_ctx)):
    await service.sign_out(ctx, staff)
    response = RedirectResponse("/staff/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/staff")
    return response


@router.get("/customers")
async def customers(request: Request, q: str = "", country: str = "TH",
                    staff: StaffUser = Depends(require_staff("customers:read")), ctx: Context = Depends(get_ctx)):
    q, country = q.strip()[:254], country.strip().upper()[:2]
    found, searched = None, bool(q)
    if searched:
        found = await service.find_customer(ctx, staff, q, country)
        if found is not None:
            return RedirectResponse(f"/staff/customers/{found.id}", status_code=303)
    return _page(request, "customers.html", staff, q=q, country=country, searched=searched,
                 erased=request.query_params.get("erased", "")[:40])


async def _customer_page(request: Request, ctx: Context, staff: StaffUser, user_id: str, status_code: int = 200,
                         error: str | None = None):
    customer = await service.view_customer(ctx, staff, user_id)
    trail = await audit.entries(ctx, subject_id=user_id, limit=50) if allowed(staff.role, "audit:read") else None
    return _page(request, "customer.html", staff, status_code=status_code, customer=customer, trail=trail, error=error)


@router.get("/customers/{user_id}")
async def customer(request: Request, user_id: str, staff: StaffUser = Depends(require_staff("customers:read")),
                   ctx: Context = Depends(get_ctx)):
    return await _customer_page(request, ctx, staff, user_id[:32])


@router.post("/customers/{user_id}/export")
async def export(request: Request, user_id: str, reason: str = Form(""),
                 staff: StaffUser = Depends(require_staff("customers:export")), ctx: Context = Depends(get_ctx)):
    if not reason.strip():
        return await _customer_page(request, ctx, staff, user_id[:32], 422, "Say why: the reason goes into the audit log.")
    stream = await service.export_customer(ctx, staff, user_id[:32], reason)
    return StreamingResponse(stream, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="faoyam-export-{user_id[:32]}.zip"', "Cache-Control": "no-store"})


@router.post("/customers/{user_id}/erase")
async def erase(request: Request, user_id: str, reason: str = Form(""), confirm: str = Form(""),
                staff: StaffUser = Depends(require_staff("customers:erase")), ctx: Context = Depends(get_ctx)):
    if not reason.strip() or confirm != "yes":
        return await _customer_page(request, ctx, staff, user_id[:32], 422,
                                    "Say why, and confirm: erasure cannot be undone.")
    result = await service.erase_customer(ctx, staff, user_id[:32], reason)
    return RedirectResponse(f"/staff/customers?erased={result['record']}", status_code=303)


@router.get("/audit")
async def audit_log(request: Request, subject: str = "", staff: StaffUser = Depends(require_staff("audit:read")),
                    ctx: Context = Depends(get_ctx)):
    rows = await audit.entries(ctx, subject_id=subject[:32] or None, limit=200)
    return _page(request, "audit.html", staff, rows=rows, subject=subject[:32])
