"""RET3: after three years without use, an account is erased — after a notice three months before.

"Use" is any signed-in request or sign-in (``users.last_active_at``). Coming back after
the notice clears it (``_open_session`` resets ``inactivity_notice_at``).
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select, update

from faoyam.accounts.models import User
from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.i18n import gettext as _
from faoyam.privacy.subjects import erase_subject, resolve_subject

log = logging.getLogger(__name__)

INACTIVE_AFTER = dt.timedelta(days=3 * 365)
NOTICE_BEFORE = dt.timedelta(days=90)


async def inactivity(ctx: Context, now: dt.datetime | None = None) -> dict[str, int]:
    now = now or utcnow()
    notified = erased = 0
    async with ctx.db.session() as s:
        to_notify = list((await s.execute(select(User).where(
            User.last_active_at < now - (INACTIVE_AFTER - NOTICE_BEFORE), User.inactivity_notice_at.is_(None)))).scalars())
        to_erase = list((await s.execute(select(User.id).where(
            User.last_active_at < now - INACTIVE_AFTER, User.inactivity_notice_at.is_not(None),
            User.inactivity_notice_at < now - NOTICE_BEFORE + dt.timedelta(days=1)))).scalars())
    for u in to_notify:
        text = _(u.language, "You have not used faoyam for almost three years. Unless you sign in within three months, "
                             "your account and all its data will be deleted.")
        if u.email:
            await ctx.messenger.send_email(u.email, _(u.language, "Your faoyam account will be deleted"), text,
                                           template="inactivity", user_id=u.id)
        elif u.phone:
            await ctx.messenger.send_sms(u.phone, text, template="inactivity", user_id=u.id)
        async with ctx.db.transaction() as s:
            await s.execute(update(User).where(User.id == u.id).values(inactivity_notice_at=now))
        notified += 1
    for uid in to_erase:
        async with ctx.db.session() as s:
            subject = await resolve_subject(s, uid)
        await erase_subject(ctx.db, ctx.blobs, subject, reason="inactivity")
        erased += 1
    if notified or erased:
        log.info("accounts.inactivity", extra={"notified": notified, "erased": erased})
    return {"notified": notified, "erased": erased}
