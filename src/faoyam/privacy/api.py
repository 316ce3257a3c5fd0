"""Privacy routes: the processing register (public) and the user's own export (R1, R6)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from faoyam.accounts.deps import CurrentUser, require_recent_auth
from faoyam.core.context import Context, get_ctx
from faoyam.privacy import register
from faoyam.privacy.subjects import export_subject, export_zip, resolve_subject

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
    """A copy of everything held about you, machine-readable (R1, R6). Needs a fresh sign-in (R8)."""
    async with ctx.db.session() as s:
        subject = await resolve_subject(s, user.id)
        doc = await export_subject(s, ctx.blobs, subject)
    if format == "zip":
        return Response(export_zip(doc), media_type="application/zip",
                        headers={"Content-Disposition": 'attachment; filename="faoyam-export.zip"'})
    return doc
