"""Background work of accounts: RET3 inactivity notices and erasure (daily)."""

from __future__ import annotations

from faoyam.accounts.jobs import inactivity
from faoyam.core.context import Context
from faoyam.core.jobs import scheduler


async def start(ctx: Context) -> None:
    scheduler(ctx).every(86400, "accounts.inactivity", lambda: inactivity(ctx))


async def stop(ctx: Context) -> None:
    pass
