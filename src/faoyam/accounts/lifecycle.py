"""Background work of accounts: RET3 inactivity notices (daily), and the erasure hook that
forgets a person's rate-limit counters and this node's cached sessions."""

from __future__ import annotations

from faoyam.accounts.deps import forget_sessions
from faoyam.accounts.jobs import inactivity
from faoyam.core.context import Context
from faoyam.core.jobs import scheduler
from faoyam.privacy.subjects import ERASURE_HOOKS


def _forget_rate_limits(ctx: Context):
    """Rate-limit rows are keyed by an HMAC of the account and its addresses, so the generic
    erasure (which reads declared links) cannot see whose they are; the keys are computed
    here, from the subject, and the rows deleted after the erasure committed."""

    async def hook(subject):
        keys = [subject.user_id or "", *subject.emails, *subject.phones]

        async def after() -> None:
            if subject.user_id:
                forget_sessions(ctx, user_id=subject.user_id)
            await ctx.limiter.forget(keys)

        return after

    return hook


async def start(ctx: Context) -> None:
    scheduler(ctx).every(86400, "accounts.inactivity", lambda: inactivity(ctx))
    hook = _forget_rate_limits(ctx)
    ERASURE_HOOKS.append(hook)
    ctx.accounts_erasure_hook = hook


async def stop(ctx: Context) -> None:
    hook, ctx.accounts_erasure_hook = ctx.accounts_erasure_hook, None
    if hook in ERASURE_HOOKS:
        ERASURE_HOOKS.remove(hook)
