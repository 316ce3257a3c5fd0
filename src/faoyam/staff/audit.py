"""The append-only audit log: ``record`` adds an entry, ``entries`` reads; nothing changes one.

Every staff action and every staff read of customer data goes through ``record``, in the
transaction of the action itself where there is one, so an action and its entry commit
together. There is deliberately no update or delete function: the one deletion is
retention (``purge``, entries older than ``audit_retention_days``), which on PostgreSQL
must announce itself to the trigger that otherwise refuses it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import delete, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.errors import Invalid
from faoyam.staff.models import AuditEntry, StaffAccount

# Actions that change or copy a customer's data: the staff member must say why.
NEEDS_REASON = frozenset({"customer.export", "customer.erase"})


@dataclass(frozen=True)
class Entry:
    id: str
    at: dt.datetime
    staff_id: str | None
    staff_email: str | None
    action: str
    subject_id: str | None
    reason: str | None
    detail: dict


def add(session: AsyncSession, staff_id: str | None, action: str, subject_id: str | None = None,
        reason: str | None = None, detail: dict | None = None) -> AuditEntry:
    """Add an entry to ``session``'s transaction (it commits with the action)."""
    reason = (reason or "").strip() or None
    if action in NEEDS_REASON and not reason:
        raise Invalid("reason", "Say why you are doing this: the reason goes into the audit log.", code="reason-required")
    entry = AuditEntry(staff_id=staff_id, action=action, subject_id=subject_id, reason=reason[:500] if reason else None,
                       detail=detail or {}, at=utcnow())
    session.add(entry)
    return entry


async def record(ctx: Context, staff_id: str | None, action: str, subject_id: str | None = None,
                 reason: str | None = None, detail: dict | None = None) -> str:
    """Add an entry in a transaction of its own; returns its id."""
    async with ctx.db.transaction() as s:
        entry = add(s, staff_id, action, subject_id, reason, detail)
        await s.flush()
        return entry.id


async def entries(ctx: Context, *, subject_id: str | None = None, staff_id: str | None = None,
                  limit: int = 100) -> list[Entry]:
    """The newest entries first, optionally about one customer or by one staff member."""
    # The staff member's address makes the log readable.
    stmt = (select(AuditEntry, StaffAccount.email).outerjoin(StaffAccount, StaffAccount.id == AuditEntry.staff_id)
            .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit))
    if subject_id is not None:
        stmt = stmt.where(AuditEntry.subject_id == subject_id)
    if staff_id is not None:
        stmt = stmt.where(AuditEntry.staff_id == staff_id)
    async with ctx.db.session() as s:
        rows = (await s.execute(stmt)).all()
    return [Entry(e.id, e.at, e.staff_id, email, e.action, e.subject_id, e.reason, dict(e.detail or {})) for e, email in rows]


async def purge(ctx: Context, now: dt.datetime | None = None) -> int:
    """Delete entries older than ``audit_retention_days`` (the declared retention, rule ``audit``)."""
    cutoff = (now or utcnow()) - dt.timedelta(days=ctx.settings.audit_retention_days)
    async with ctx.db.transaction() as s:
        if ctx.db.dialect == "postgresql":
            await s.execute(text("SET LOCAL faoyam.audit_purge = 'on'"))
        res = await s.execute(delete(AuditEntry).where(AuditEntry.at < cutoff))
        n = res.rowcount or 0
        if n:
            add(s, None, "audit.purge", detail={"deleted": n, "older_than_days": ctx.settings.audit_retention_days})
    return n
