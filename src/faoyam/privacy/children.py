"""CH2: reports that the service holds data of a child under 16, and their resolution.

Anyone can report (no account needed). The operator's privacy contact is told; resolving
a report finds the account by the reported email or phone and erases it through the
generic erasure, then anonymises the report itself (its handling stays on record).
"""

from __future__ import annotations

from sqlalchemy import select, update

from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.errors import Conflict, Invalid, NotFound
from faoyam.privacy.models import ChildReport
from faoyam.privacy.subjects import Subject, erase_subject, resolve_subject


async def file_report(ctx: Context, reporter_email: str | None, reported: str, details: str | None) -> str:
    """Record a report and tell the privacy contact."""
    reported = reported.strip()
    if not reported or len(reported) > 254:
        raise Invalid("reported", "Give the email address or phone number of the account.", code="invalid")
    async with ctx.db.transaction() as s:
        row = ChildReport(reporter_email=reporter_email, reported=reported, details=(details or "")[:2000] or None)
        s.add(row)
    await ctx.messenger.send_email(
        ctx.settings.dpo_email, "Report: data of a child under 16",
        f"A report was filed (id {row.id}). Review it with `faoyam privacy child-reports` "
        f"and resolve it with `faoyam privacy child-report-resolve {row.id}`.",
        template="child_report",
    )
    return row.id


async def list_reports(ctx: Context, status: str | None = "open") -> list[ChildReport]:
    async with ctx.db.session() as s:
        q = select(ChildReport).order_by(ChildReport.created_at)
        if status:
            q = q.where(ChildReport.status == status)
        return list((await s.execute(q)).scalars())


async def resolve_report(ctx: Context, report_id: str, *, erase: bool, find_account) -> dict:
    """Erase the reported account's data (``erase=True``) or reject the report; either way
    the report keeps no personal data afterwards. ``find_account(value) -> user id | None``
    comes from the accounts domain (``accounts.service.find_user_id``), so the privacy
    engine does not depend on it."""
    async with ctx.db.session() as s:
        row = await s.get(ChildReport, report_id)
    if row is None:
        raise NotFound("No such report.", code="no-report")
    if row.status != "open":
        raise Conflict("This report is already resolved.", code="resolved")
    result = {"erased_rows": 0}
    if erase:
        user_id = await find_account(row.reported) if row.reported else None
        if user_id:
            async with ctx.db.session() as s:
                subject = await resolve_subject(s, user_id)
            result["erased_rows"] = (await erase_subject(ctx.db, ctx.blobs, subject, reason="child_report")).rows
        else:
            # No account: data held under the address alone (pending registrations, mail).
            value = row.reported or ""
            subj = Subject(emails=frozenset({value.lower()})) if "@" in value else Subject(phones=frozenset({value}))
            result["erased_rows"] = (await erase_subject(ctx.db, ctx.blobs, subj, reason="child_report")).rows
    async with ctx.db.transaction() as s:
        await s.execute(update(ChildReport).where(ChildReport.id == report_id).values(
            status="erased" if erase else "rejected", resolved_at=utcnow(), reporter_email=None, reported=None, details=None))
    return result
