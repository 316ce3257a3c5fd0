"""The blob reconciler: files no row references, and references to files that are gone.

The declarations say which columns hold blob keys (``personal(..., blob=kind)``), so the
reconciler can compare the store with the database without knowing any domain:

- an **orphan** is a stored blob that no declared column references and no tombstone
  covers (a crash between writing a blob and committing its row, a bug, a restored
  backup). Orphans are deleted only when older than a grace period, so a blob whose row
  is still being written (an upload in flight) is never touched;
- a **dangling reference** is a key in a declared column with no blob behind it (a lost
  file, a partial restore). Repair sets the column to NULL where the column allows it,
  so the page shows "no photo" rather than an error; a required column is reported.

Every candidate is checked again right before it is repaired (the row may have changed
since the scan). When most stored files look unused, repair refuses unless forced: that
is the signature of a service pointed at the wrong or an empty database, not of orphans.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Column, Table, select, update

from faoyam.core.context import Context
from faoyam.core.database import Database, utcnow
from faoyam.core.storage import BlobNotFound, BlobStore
from faoyam.core.declarations import Personal, column_declaration
from faoyam.privacy.models import BlobTombstone
from faoyam.privacy.subjects import declared_tables

log = logging.getLogger(__name__)

DEFAULT_GRACE = dt.timedelta(hours=24)
SUSPICIOUS_SHARE = 0.5  # more unused files than this share of the store: refuse to repair
SUSPICIOUS_MIN = 20  # ... unless the store is this small
BATCH = 500


def blob_columns() -> list[tuple[Table, Column]]:
    """Every column declared to hold blob keys."""
    return [(t, c) for t in declared_tables() for c in t.columns
            if isinstance(d := column_declaration(c), Personal) and d.blob]


@dataclass(frozen=True)
class Dangling:
    table: str
    column: str
    key: str
    nullable: bool


@dataclass
class BlobCheck:
    stored: int = 0  # files in the store
    referenced: int = 0  # distinct keys in declared columns
    tombstoned: int = 0  # files waiting for the sweep
    orphans: list[str] = field(default_factory=list)  # unreferenced, older than the grace period
    recent: list[str] = field(default_factory=list)  # unreferenced, younger: left alone
    dangling: list[Dangling] = field(default_factory=list)
    deleted: int = 0
    nulled: int = 0
    refused: str = ""  # why repair was not done

    @property
    def clean(self) -> bool:
        return not self.orphans and not self.dangling


async def _references(db: Database) -> dict[str, list[tuple[Table, Column]]]:
    refs: dict[str, list[tuple[Table, Column]]] = {}
    async with db.session() as s:
        for t, c in blob_columns():
            for key in (await s.execute(select(c).where(c.is_not(None)).distinct())).scalars():
                refs.setdefault(key, []).append((t, c))
    return refs


async def _still_referenced(db: Database, keys: list[str]) -> set[str]:
    """Of ``keys``, those a declared column or a tombstone references now."""
    found: set[str] = set()
    async with db.session() as s:
        for _, c in blob_columns() + [(None, BlobTombstone.__table__.c.key)]:
            found.update((await s.execute(select(c).where(c.in_(keys)))).scalars())
    return found


async def check_blobs(db: Database, blobs: BlobStore, *, repair_orphans: bool = False, repair_dangling: bool = False,
                      grace: dt.timedelta = DEFAULT_GRACE, now: dt.datetime | None = None, force: bool = False,
                      on_file: Callable[[int], None] | None = None) -> BlobCheck:
    """Compare the store with the declared references; repair what is asked for.

    References are read before the store is listed: a blob written after that is not yet
    referenced in the snapshot, but it is younger than the grace period, so it is left
    alone. ``on_file(n)`` is called as files are scanned (a progress bar).
    """
    now = now or utcnow()
    out = BlobCheck()
    refs = await _references(db)
    async with db.session() as s:
        tombs = set((await s.execute(select(BlobTombstone.key))).scalars())
    out.referenced, out.tombstoned = len(refs), len(tombs)
    seen: set[str] = set()
    async for key in blobs.keys():
        out.stored += 1
        if on_file is not None:
            on_file(out.stored)
        if key in refs or key in tombs:
            seen.add(key)
            continue
        try:
            modified = (await blobs.stat(key)).modified
        except BlobNotFound:
            continue  # deleted while we looked
        (out.orphans if now - modified > grace else out.recent).append(key)
    for key in refs.keys() - seen:
        if await blobs.exists(key):
            continue  # written after the listing passed its place
        out.dangling.extend(Dangling(t.name, c.name, key, bool(c.nullable)) for t, c in refs[key])

    if (repair_orphans or repair_dangling) and not force and out.stored >= SUSPICIOUS_MIN \
            and len(out.orphans) > SUSPICIOUS_SHARE * out.stored:
        out.refused = (f"{len(out.orphans)} of {out.stored} files look unused; this usually means the service "
                       "is using the wrong or an empty database, so nothing was repaired")
        return out
    if repair_orphans:
        out.deleted = await _delete_orphans(db, blobs, out.orphans)
    if repair_dangling:
        out.nulled = await _null_dangling(db, blobs, out.dangling)
    return out


async def _delete_orphans(db: Database, blobs: BlobStore, orphans: list[str]) -> int:
    n = 0
    for start in range(0, len(orphans), BATCH):
        chunk = orphans[start : start + BATCH]
        keep = await _still_referenced(db, chunk)
        for key in chunk:
            if key not in keep:
                await blobs.delete(key)
                n += 1
    return n


async def _null_dangling(db: Database, blobs: BlobStore, dangling: list[Dangling]) -> int:
    tables = {t.name: t for t in declared_tables()}
    n = 0
    for d in dangling:
        if not d.nullable or await blobs.exists(d.key):
            continue
        t = tables[d.table]
        async with db.transaction() as s:
            n += (await s.execute(update(t).where(t.c[d.column] == d.key).values({d.column: None}))).rowcount or 0
    return n


async def reconcile_job(ctx: Context) -> BlobCheck:
    """The scheduled check: removes old orphans, reports dangling references (a person
    decides about those: ``faoyam blobs check --repair``)."""
    result = await check_blobs(ctx.db, ctx.blobs, repair_orphans=True)
    level = logging.WARNING if (result.dangling or result.refused) else logging.INFO
    log.log(level, "privacy.blob_check", extra={
        "stored": result.stored, "orphans": len(result.orphans), "deleted": result.deleted,
        "recent": len(result.recent), "dangling": len(result.dangling), "refused": bool(result.refused)})
    return result

