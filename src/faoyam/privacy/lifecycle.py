"""Background work of the privacy engine: retention (RET1, RET5), the tombstone sweep and
the blob reconciler. Every job is idempotent and safe on several nodes at once."""

from __future__ import annotations

from faoyam.core.context import Context
from faoyam.core.jobs import scheduler
from faoyam.privacy.blobrefs import sweep_tombstones
from faoyam.privacy.reconcile import reconcile_job
from faoyam.privacy.subjects import purge_expired

SWEEP_EVERY = 60  # s: a failed deletion waits its own backoff (blobrefs.retry_delay)
RETENTION_EVERY = 3600
RECONCILE_EVERY = 6 * 3600


async def start(ctx: Context) -> None:
    jobs = scheduler(ctx)
    jobs.every(RETENTION_EVERY, "privacy.retention", lambda: purge_expired(ctx.db, ctx.blobs))
    jobs.every(SWEEP_EVERY, "privacy.sweep", lambda: sweep_tombstones(ctx.db, ctx.blobs))
    jobs.every(RECONCILE_EVERY, "privacy.blob_check", lambda: reconcile_job(ctx))


async def stop(ctx: Context) -> None:
    pass
