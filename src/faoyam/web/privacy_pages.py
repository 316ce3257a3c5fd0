"""Public privacy pages: the notice (generated), the cookie policy (from the registry), and
the form to report a child's data (CH2).

They live in ``web`` like every page: a page composes the privacy engine (the notice),
the web's own cookie list and the signed-in user, and the engine below knows none of them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from faoyam.accounts.deps import CurrentUser, optional_user
from faoyam.core.context import Context, get_ctx
from faoyam.privacy.notice import build_notice
from faoyam.web.cookies import COOKIES
from faoyam.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/privacy")
async def privacy_notice(request: Request, user: CurrentUser | None = Depends(optional_user), ctx: Context = Depends(get_ctx)):
    return render(request, "privacy/notice.html", nav="me", notice=build_notice(ctx.settings))


@router.get("/cookies")
async def cookie_policy(request: Request, user: CurrentUser | None = Depends(optional_user)):
    return render(request, "privacy/cookies.html", nav="me", cookies=COOKIES)


@router.get("/privacy/report-child")
async def report_child(request: Request, user: CurrentUser | None = Depends(optional_user)):
    return render(request, "privacy/report_child.html", nav="me")
