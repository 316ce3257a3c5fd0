"""Background work of the back office: the audit log's retention (hourly), and an erasure
hook that records every erasure of a data subject, whatever started it (the person, a staff
member, a child report), in the audit log."""

from __future__ import annotations

from faoyam.core.context import Context
from faoyam.core.jobs import scheduler
from faoyam.privacy.subjects import ERASURE_HOOKS
from faoyam.staff import audit


def _record_erasures(ctx: Context):
    async def hook(subject):
        async def after() -> None:
            await audit.record(ctx, None, "subject.erased", subject.user_id,
                               detail={"addresses": len(subject.emails) + len(subject.phones)})

        return after

    return hook


async def start(ctx: Context) -> None:
    scheduler(ctx).every(3600, "staff.audit_retention", lambda: audit.purge(ctx))
    hook = _record_erasures(ctx)
    ERASURE_HOOKS.append(hook)
    ctx.staff_erasure_hook = hook


async def stop(ctx: Context) -> None:
    hook, ctx.staff_erasure_hook = ctx.staff_erasure_hook, None
    if hook in ERASURE_HOOKS:
        ERASURE_HOOKS.remove(hook)
