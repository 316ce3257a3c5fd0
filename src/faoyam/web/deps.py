"""Who a page is for: ``page_user`` sends a signed-out browser to sign in and back."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Depends, HTTPException, Request

from faoyam.accounts.deps import CurrentUser, optional_user


def signin_url(request: Request) -> str:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/signin?next={quote(target, safe='/')}"


async def page_user(request: Request, user: CurrentUser | None = Depends(optional_user)) -> CurrentUser:
    """The signed-in user of a page; signed out, the page answers 303 to the sign-in page
    (the core HTTP-exception handler keeps redirects as redirects)."""
    if user is None:
        raise HTTPException(303, headers={"Location": signin_url(request)})
    return user
