"""Who on the staff is asking, and whether their role allows it: ``require_staff(permission)``.

A staff request is signed in by the ``faoyam_staff`` cookie alone (HttpOnly,
SameSite=Strict, path ``/staff``): a customer's session (cookie or bearer token) means
nothing here. Every change (any method but GET/HEAD) must carry the session's CSRF token
(form field ``csrf_token`` or ``X-CSRF-Token``) and come from this site. Signed out, a
page answers 303 to ``/staff/signin`` and anything else 401; signed in without the
permission, 403. The permission is kept on the dependency (``staff_permission``), so a
test can list every route's permission.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import HTTPException, Request

from faoyam.accounts.deps import check_csrf
from faoyam.core.errors import Forbidden, Unauthorized
from faoyam.staff.permissions import PERMISSIONS, allowed
from faoyam.staff.service import StaffUser, lookup_session

COOKIE = "faoyam_staff"
_READS = {"GET", "HEAD"}


async def signed_in_staff(request: Request) -> StaffUser | None:
    cached = getattr(request.state, "staff", None)
    if cached is not None:
        return cached
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    staff = await lookup_session(request.app.state.ctx, token)
    if staff is not None:
        request.state.staff = staff
    return staff


def require_staff(permission: str):
    """A dependency giving the signed-in ``StaffUser`` whose role has ``permission``."""
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown staff permission {permission!r}")

    async def dependency(request: Request) -> StaffUser:
        staff = await signed_in_staff(request)
        if staff is None:
            if request.method in _READS:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                raise HTTPException(303, headers={"Location": f"/staff/signin?next={quote(target, safe='/')}"})
            raise Unauthorized("Sign in to the back office first.", code="staff-signed-out")
        if request.method not in _READS:
            sent = request.headers.get("x-csrf-token")
            if sent is None and request.headers.get("content-type", "").startswith(
                    ("application/x-www-form-urlencoded", "multipart/form-data")):
                sent = str((await request.form()).get("csrf_token", ""))
            check_csrf(request, request.app.state.ctx, staff, sent or "")
        if not allowed(staff.role, permission):
            raise Forbidden("Your staff role does not allow this.", code="staff-forbidden")
        return staff

    dependency.staff_permission = permission
    return dependency
