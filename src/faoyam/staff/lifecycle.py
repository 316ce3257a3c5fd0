"""Background work of the back office: the audit log's retention (hourly)."""

from __future__ import annotations

from faoyam.core.context import Context
from faoyam.core.jobs import scheduler
from faoyam.staff import audit


async def start(ctx: Context) -> None:
    scheduler(ctx).every(3600, "staff.audit_retention", lambda: audit.purge(ctx))


async def stop(ctx: Context) -> None:
    return None
