"""Privacy routes: the processing register (public) and the user's own export (R1, R6).

The engine below (``subjects``, ``register``, ``children``, ...) imports only ``core``; these
routes need the signed-in user (``accounts.deps``), so they sit at the domains' level,
like every domain's ``api`` (``docs/decisions/layers.md``).
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from faoyam.accounts.deps import CurrentUser, require_recent_auth
from faoyam.accounts.validation import normalize_email
from faoyam.core.context import Context, get_ctx
from faoyam.core.http import client_ip
from faoyam.privacy import children, register
from faoyam.privacy.export import export_json, export_zip
from faoyam.privacy.notice import build_notice
from faoyam.privacy.subjects import resolve_subject
from faoyam.staff import audit

router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])


@router.get("/register")
async def processing_register():
    """Every processing activity: data, purpose, legal basis, retention, recipients."""
    return {
        "activities": [
            {"id": a.id, "section": a.section, "when": a.when, "data": list(a.data), "purpose": a.purpose,
             "basis": list(a.basis), "retention": register.RETENTION[a.retention], "recipients": list(a.recipients)}
            for a in register.ACTIVITIES.values()
        ],
        "categories": register.CATEGORIES,
        "retention": register.RETENTION,
    }


@router.get("/export")
async def export_me(format: str = Query("json", pattern="^(json|zip)$"), user: CurrentUser = Depends(require_recent_auth),
                    ctx: Context = Depends(get_ctx)):
    """A copy of everything held about you, machine-readable (R1, R6). Needs a fresh sign-in (R8).

    Streamed as it is read, so its size does not matter (``privacy.export``)."""
    async with ctx.db.session() as s:
        subject = await resolve_subject(s, user.id)
    # A data-subject operation: in the audit log, with the person as its own actor.
    await audit.record(ctx, None, "subject.export", user.id, detail={"by": "subject", "format": format})
    if format == "zip":
        return StreamingResponse(export_zip(ctx.db, ctx.blobs, subject), media_type="application/zip",
                                 headers={"Content-Disposition": 'attachment; filename="faoyam-export.zip"'})
    return StreamingResponse(export_json(ctx.db, ctx.blobs, subject), media_type="application/json")


class ChildReportIn(BaseModel):
    reported: str = Field(..., max_length=254, description="email or phone of the account that belongs to a child")
    reporter_email: str | None = Field(None, max_length=254, description="to tell you the outcome (optional)")
    details: str | None = Field(None, max_length=2000)


@router.post("/child-reports", status_code=202)
async def report_child(body: ChildReportIn, request: Request, ctx: Context = Depends(get_ctx)):
    """Report that we may hold data of a child under 16 (CH2). No account needed."""
    await ctx.limiter.hit("child-report", client_ip(request), 10, dt.timedelta(hours=1))
    reporter = normalize_email(body.reporter_email, "reporter_email") if body.reporter_email else None
    report_id = await children.file_report(ctx, reporter, body.reported, body.details)
    return {"id": report_id, "detail": "Thank you. We will check the report and delete the data if it belongs to a child."}


@router.get("/notice")
async def notice(ctx: Context = Depends(get_ctx)):
    """The privacy notice: generated from the register and the operator's settings (CT1, CHG1, SH3, R9)."""
    return build_notice(ctx.settings)
