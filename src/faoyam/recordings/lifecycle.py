"""The recordings domain's background work: the hourly retention job (RET4)."""

from __future__ import annotations

from faoyam.core.context import Context
from faoyam.core.jobs import scheduler
from faoyam.recordings.retention import apply_retention

RETENTION_EVERY = 3600


async def start(ctx: Context) -> None:
    scheduler(ctx).every(RETENTION_EVERY, "recordings.retention", lambda: apply_retention(ctx.db, ctx.blobs))


async def stop(ctx: Context) -> None:
    pass
