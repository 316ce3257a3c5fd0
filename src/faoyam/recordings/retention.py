"""Retention of recordings: by age and by quota per channel, and the emergency clean-up.

* **Age (RET4)**: a segment whose end is older than its channel's ``retention_days`` (the
  default, 7, for a channel without settings) is deleted — events included: the recording
  period is the register's promise. Only a segment the user explicitly keeps (``keep``)
  stays, until the user releases it or deletes it.
* **Quota**: when a channel's segments add up to more than its ``quota_bytes``, the oldest
  go first until it fits — but never a kept one nor one with an event flag (the reason a
  household records at all). A quota full of events is therefore exceeded, not emptied.
* **Emergency**: when the local disk is nearly full, the oldest local segments of any
  channel go (same protections) until ``min_free`` bytes are free again, so recording
  continues; the recorder runs it from the media worker, where the disk is.

Everything is deleted in bounded batches (``batch`` rows per transaction) through
``service.remove_segments``: rows and blob tombstones together, blobs after the commit.
Segments still being written are never touched.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, func, select

from faoyam.core.database import Database, utcnow
from faoyam.core.storage import BlobStore
from faoyam.recordings import service
from faoyam.recordings.models import Segment

log = logging.getLogger("faoyam.recordings.retention")

BATCH = 500


@dataclass
class RetentionReport:
    by_age: int = 0
    by_quota: int = 0
    emergency: int = 0


def _done() -> ColumnElement[bool]:
    return Segment.state != "writing"


async def _channels(db: Database) -> list[tuple[str, int]]:
    async with db.session() as s:
        return [tuple(r) for r in (await s.execute(select(Segment.device_id, Segment.channel).distinct())).all()]


async def _delete_batches(db: Database, blobs: BlobStore, condition, reason: str, batch: int,
                          limit: int | None = None) -> int:
    """Delete the oldest segments matching ``condition``, ``batch`` per transaction."""
    total = 0
    while limit is None or total < limit:
        size = batch if limit is None else min(batch, limit - total)
        async with db.session() as s:
            ids = list((await s.execute(select(Segment.id).where(condition).order_by(Segment.start).limit(size)))
                       .scalars())
        if not ids:
            break
        total += await service.remove_segments(db, blobs, Segment.id.in_(ids), reason)
        if len(ids) < size:
            break
    return total


async def apply_retention(db: Database, blobs: BlobStore, now: dt.datetime | None = None, *,
                          batch: int = BATCH) -> RetentionReport:
    """The hourly job: age, then quota, channel by channel."""
    now = now or utcnow()
    report = RetentionReport()
    settings = await service.all_channel_settings(db)
    default = service.ChannelSettings()
    for device_id, channel in await _channels(db):
        cs = settings.get((device_id, channel), default)
        mine = and_(Segment.device_id == device_id, Segment.channel == channel, _done())
        cutoff = now - dt.timedelta(days=cs.retention_days)
        report.by_age += await _delete_batches(
            db, blobs, and_(mine, Segment.end < cutoff, Segment.keep.is_(False)), "retention", batch)
        if cs.quota_bytes is not None:
            report.by_quota += await _trim_to_quota(db, blobs, mine, cs.quota_bytes, batch)
    if report.by_age or report.by_quota:
        log.info("recordings retention", extra={"by_age": report.by_age, "by_quota": report.by_quota})
    return report


async def _trim_to_quota(db: Database, blobs: BlobStore, mine, quota: int, batch: int) -> int:
    async with db.session() as s:
        used = await s.scalar(select(func.coalesce(func.sum(Segment.size), 0)).where(mine)) or 0
    deleted = 0
    unprotected = and_(mine, Segment.keep.is_(False), Segment.events == 0)
    while used > quota:
        async with db.session() as s:
            rows = (await s.execute(select(Segment.id, Segment.size).where(unprotected)
                                    .order_by(Segment.start).limit(batch))).all()
        if not rows:
            break
        chosen, freed = [], 0
        for seg_id, size in rows:
            if used - freed <= quota:
                break
            chosen.append(seg_id)
            freed += size
        deleted += await service.remove_segments(db, blobs, Segment.id.in_(chosen), "recording quota")
        used -= freed
    return deleted


async def emergency_cleanup(db: Database, blobs: BlobStore, free_bytes: Callable[[], int], min_free: int, *,
                            backend: str = "local", batch: int = 50) -> int:
    """Delete the oldest unprotected local segments, a batch at a time, until
    ``free_bytes() >= min_free`` (or nothing deletable is left)."""
    deleted = 0
    condition = and_(_done(), Segment.backend == backend, Segment.keep.is_(False), Segment.events == 0)
    while free_bytes() < min_free:
        n = await _delete_batches(db, blobs, condition, "disk nearly full", batch, limit=batch)
        if not n:
            log.warning("local disk nearly full and no recording left that may be deleted")
            break
        deleted += n
    if deleted:
        log.warning("disk nearly full: deleted the oldest recordings", extra={"segments": deleted})
    return deleted
