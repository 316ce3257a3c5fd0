"""How a row's reference to a blob changes: tombstones, the sweep, and fresh blobs.

A blob is reached only through the row that references it (``personal(..., blob=kind)``),
so every change of a reference goes through here:

- **dropping** a reference (a new photo replaces the old one, a row is erased) writes a
  *tombstone* for the old key **in the same transaction** as the row change. The blob is
  deleted after the commit; if that fails or the process dies first, the tombstone stays
  and the sweep job finishes it. A reference is therefore never lost without its blob
  being scheduled for deletion, and a blob is never deleted while a committed row still
  points to it.
- **writing** a new blob for a row happens before the row's transaction commits. If the
  transaction fails, the fresh blob is deleted again (or tombstoned, if even that fails),
  so a failed insert leaves nothing behind. A crash in between leaves an unreferenced blob
  that the reconciler (``privacy.reconcile``) removes after its grace period.

``blob_transaction`` does both for a domain::

    async with blob_transaction(ctx.db, ctx.blobs) as tx:
        key = await tx.put("profile_photo", jpeg)      # write blobs first, then touch rows
        user = await tx.session.get(User, user_id)
        tx.drop(user.photo_key)                         # tombstoned in this transaction
        user.photo_key = key

``sweep_tombstones`` deletes tombstoned blobs key by key: a key whose deletion fails is
retried later with exponential backoff and does not block the others.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from faoyam.core.database import Database, utcnow
from faoyam.core.storage import BlobStore
from faoyam.privacy.models import BlobTombstone

log = logging.getLogger(__name__)

# A failed deletion is retried after 1, 2, 4 ... minutes, at most every six hours.
RETRY_FIRST = dt.timedelta(minutes=1)
RETRY_MAX = dt.timedelta(hours=6)
SWEEP_BATCH = 500


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait before the next try after ``attempts`` failed ones."""
    return min(RETRY_FIRST * (2 ** max(0, attempts - 1)), RETRY_MAX)


async def tombstone(session: AsyncSession, keys: Iterable[str | None]) -> list[str]:
    """Schedule ``keys`` for deletion, in ``session``'s transaction. Returns the new ones."""
    wanted = list(dict.fromkeys(k for k in keys if k))
    if not wanted:
        return []
    new: list[str] = []
    for start in range(0, len(wanted), SWEEP_BATCH):
        chunk = wanted[start : start + SWEEP_BATCH]
        have = set((await session.execute(select(BlobTombstone.key).where(BlobTombstone.key.in_(chunk)))).scalars())
        new.extend(k for k in chunk if k not in have)
    if new:
        now = utcnow()
        await session.execute(insert(BlobTombstone), [{"key": k, "created_at": now, "attempts": 0} for k in new])
    return new


@dataclass
class SweepReport:
    deleted: int = 0
    failed: list[str] = field(default_factory=list)  # keys whose deletion failed this time


async def _sweep_due(db: Database, blobs: BlobStore, due: list[tuple[str, int]], now: dt.datetime,
                     report: SweepReport) -> None:
    """Delete the blobs of ``due`` (key, attempts so far) one by one, then record the
    outcome: tombstones of deleted blobs go, failed ones get their next try."""
    done: list[str] = []
    failed: list[tuple[str, int]] = []
    for key, attempts in due:
        try:
            await blobs.delete(key)
        except Exception as exc:  # noqa: BLE001 - one bad key must not block the others
            failed.append((key, attempts + 1))
            log.warning("privacy.sweep_failed", extra={"kind": key.partition("/")[0], "attempts": attempts + 1,
                                                       "error": type(exc).__name__})
        else:
            done.append(key)
    async with db.transaction() as s:
        if done:
            await s.execute(delete(BlobTombstone).where(BlobTombstone.key.in_(done)))
        for key, attempts in failed:
            await s.execute(update(BlobTombstone).where(BlobTombstone.key == key).values(
                attempts=attempts, next_try_at=now + retry_delay(attempts)))
    report.deleted += len(done)
    report.failed.extend(k for k, _ in failed)


def _due(now: dt.datetime):
    return (select(BlobTombstone.key, BlobTombstone.attempts)
            .where(or_(BlobTombstone.next_try_at.is_(None), BlobTombstone.next_try_at <= now))
            .order_by(BlobTombstone.key).limit(SWEEP_BATCH))


async def sweep_tombstones(db: Database, blobs: BlobStore, *, keys: Iterable[str] | None = None,
                           now: dt.datetime | None = None, limit: int | None = None) -> SweepReport:
    """Delete tombstoned blobs that are due, then their tombstones.

    ``keys`` limits the sweep to these tombstones (right after a commit, to delete at once
    what that transaction dropped); otherwise every due tombstone is swept. ``limit``
    stops after that many keys. Never raises for a blob that cannot be deleted: its
    tombstone records the failure and the next try. Safe to run any time, on any number
    of nodes (deleting a missing blob is not an error).
    """
    now = now or utcnow()
    report = SweepReport()

    def enough() -> bool:
        return limit is not None and report.deleted + len(report.failed) >= limit

    if keys is not None:
        only = list(dict.fromkeys(keys))[:limit]
        for start in range(0, len(only), SWEEP_BATCH):
            async with db.session() as s:
                due = (await s.execute(_due(now).where(BlobTombstone.key.in_(only[start : start + SWEEP_BATCH])))).all()
            await _sweep_due(db, blobs, [tuple(r) for r in due], now, report)
        return report
    last = ""
    while not enough():
        size = SWEEP_BATCH if limit is None else min(SWEEP_BATCH, limit - report.deleted - len(report.failed))
        async with db.session() as s:
            due = (await s.execute(_due(now).where(BlobTombstone.key > last).limit(size))).all()
        if not due:
            break
        last = due[-1][0]
        await _sweep_due(db, blobs, [tuple(r) for r in due], now, report)
    return report


# An erasure or a change deletes at most this many of its blobs before it answers; the
# sweep job (every minute) deletes the rest, so a request never waits on a huge erasure.
INLINE_SWEEP = 200


async def sweep_quietly(db: Database, blobs: BlobStore, keys: Iterable[str]) -> SweepReport:
    """The after-commit sweep of what one transaction dropped: it must never undo the
    success of that transaction, so nothing it meets is raised (the job retries)."""
    try:
        return await sweep_tombstones(db, blobs, keys=keys, limit=INLINE_SWEEP)
    except Exception:  # noqa: BLE001 - the tombstones stay; the sweep job finishes them
        log.exception("privacy.sweep_after_commit_failed")
        return SweepReport()


class BlobChange:
    """The blob side of one transaction: blobs it wrote, and references it dropped."""

    def __init__(self, blobs: BlobStore, session: AsyncSession):
        self.blobs = blobs
        self.session = session
        self.written: list[str] = []
        self.dropped: list[str] = []

    async def put(self, kind: str, data: bytes) -> str:
        """Write a blob for a row of this transaction; it is removed if the transaction fails."""
        key = self.blobs.new_key(kind)
        self.written.append(key)  # before the write: a half-written blob is removed too
        await self.blobs.write(key, data)
        return key

    async def put_stream(self, kind: str, chunks: AsyncIterable[bytes]) -> str:
        """``put`` for a large blob, written chunk by chunk (never whole in memory)."""
        key = self.blobs.new_key(kind)
        self.written.append(key)
        await self.blobs.write_stream(key, chunks)
        return key

    def drop(self, key: str | None) -> None:
        """The row no longer references ``key``: tombstone it when this transaction commits."""
        if key:
            self.dropped.append(key)

    async def _discard_written(self, db: Database) -> None:
        left: list[str] = []
        for key in self.written:
            try:
                await self.blobs.delete(key)
            except Exception:  # noqa: BLE001 - fall back to a tombstone
                left.append(key)
        if left:
            try:
                async with db.transaction() as s:
                    await tombstone(s, left)
            except Exception:  # noqa: BLE001 - the reconciler removes unreferenced blobs
                log.exception("privacy.fresh_blob_not_discarded", extra={"count": len(left)})


@asynccontextmanager
async def blob_transaction(db: Database, blobs: BlobStore) -> AsyncIterator[BlobChange]:
    """A database transaction that may write new blobs and drop old references.

    On commit the dropped keys are tombstoned in the same transaction and deleted right
    after (failures are left to the sweep job); on any error the transaction rolls back
    and the blobs it wrote are removed, so neither outcome leaves a blob behind.
    Write blobs before the first statement, so the transaction is not held open while a
    large blob is written.
    """
    change: BlobChange | None = None
    try:
        async with db.transaction() as s:
            change = BlobChange(blobs, s)
            yield change
            await tombstone(s, change.dropped)
    except BaseException:
        if change is not None:
            await change._discard_written(db)
        raise
    await sweep_quietly(db, blobs, change.dropped)
