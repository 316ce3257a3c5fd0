"""``/demo/outbox``: in demo mode only, the local outbox in the browser, so a person trying
faoyam can read the one-time code without a terminal. Not served otherwise (404)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import NotFound
from faoyam.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/demo/outbox")
async def demo_outbox(request: Request, ctx: Context = Depends(get_ctx)):
    if not ctx.settings.demo:
        raise NotFound()
    return render(request, "demo_outbox.html", messages=(await ctx.messenger.outbox())[:20])
