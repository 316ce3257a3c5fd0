"""Background work of the privacy engine: retention (RET1, RET5) and blob sweeping."""

from __future__ import annotations

from faoyam.core.context import Context
from faoyam.core.jobs import scheduler
from faoyam.privacy.subjects import purge_expired, sweep_tombstones


async def start(ctx: Context) -> None:
    async def retention():
        await purge_expired(ctx.db, ctx.blobs)
        await sweep_tombstones(ctx.db, ctx.blobs)

    scheduler(ctx).every(3600, "privacy.retention", retention)


async def stop(ctx: Context) -> None:
    pass
