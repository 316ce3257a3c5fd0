"""Export, erase and purge — driven by the declarations alone.

``export_subject`` gathers every row reachable from a subject through the declared links,
with blobs; ``erase_subject`` deletes (or anonymises, where the table says so) the same
rows and their blobs in one transaction; ``purge_expired`` does the same for rows past
their declared expiry. No domain writes its own export or erasure code: declaring a
column is what puts it in reach of these operations.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import io
import json
import logging
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, and_, delete, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from faoyam.core.database import Base, Database, utcnow
from faoyam.core.storage import BlobNotFound, BlobStore
from faoyam.privacy import register
from faoyam.privacy.declarations import (
    BLOB_KINDS,
    Personal,
    SubjectRoot,
    column_declaration,
    table_declaration,
)
from faoyam.privacy.models import BlobTombstone, ErasureRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Subject:
    """Who the data is about: an account, and/or addresses held before an account existed."""

    user_id: str | None = None
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()

    def describe(self) -> dict:
        return {"user_id": self.user_id, "emails": sorted(self.emails), "phones": sorted(self.phones)}


def _tables() -> list[Table]:
    from faoyam import models  # noqa: F401 - make sure every domain's tables are registered

    return list(Base.metadata.sorted_tables)


def _root_table() -> tuple[Table, SubjectRoot]:
    for t in _tables():
        d = table_declaration(t)
        if d is not None and isinstance(d.subject, SubjectRoot):
            return t, d.subject
    raise RuntimeError("no table is declared as the subject root")


async def resolve_subject(session: AsyncSession, user_id: str) -> Subject:
    """The subject of an account: its id and the addresses it holds now."""
    table, root = _root_table()
    row = (await session.execute(select(table).where(table.c[root.id_column] == user_id))).mappings().first()
    emails: set[str] = set()
    phones: set[str] = set()
    if row is not None:
        for key, col in root.identifiers.items():
            if row[col]:
                (emails if key == "email" else phones).add(row[col])
    return Subject(user_id=user_id, emails=frozenset(emails), phones=frozenset(phones))


def subject_condition(table: Table, subject: Subject, _depth: int = 0) -> ColumnElement[bool] | None:
    """The rows of ``table`` that belong to ``subject``, or None if it cannot hold any."""
    if _depth > 8:
        raise RecursionError(f"privacy links through {table.name} loop")
    decl = table_declaration(table)
    if decl is None:
        return None
    if isinstance(decl.subject, SubjectRoot):
        conds = []
        if subject.user_id:
            conds.append(table.c[decl.subject.id_column] == subject.user_id)
        return or_(*conds) if conds else None
    conds = []
    by_name = Base.metadata.tables
    for link in decl.links:
        col = table.c[link.column]
        if link.via:
            other = by_name[link.via]
            inner = subject_condition(other, subject, _depth + 1)
            if inner is None:
                continue
            (pk,) = other.primary_key.columns
            conds.append(col.in_(select(pk).where(inner)))
        elif link.key == "user_id":
            if subject.user_id:
                conds.append(col == subject.user_id)
        elif link.key == "email":
            if subject.emails:
                conds.append(func.lower(col).in_(sorted(e.lower() for e in subject.emails)))
        elif link.key == "phone":
            if subject.phones:
                conds.append(col.in_(sorted(subject.phones)))
    return or_(*conds) if conds else None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


# Export ---------------------------------------------------------------------------


async def export_subject(session: AsyncSession, blobs: BlobStore, subject: Subject) -> dict:
    """Everything held about ``subject``: a JSON-able document (R1, R6), blobs inlined."""
    doc: dict[str, Any] = {
        "format": "faoyam-export/1",
        "generated_at": utcnow().isoformat(),
        "subject": subject.describe(),
        "records": {},
        "blobs": {},
        "processing": {},
    }
    activities_seen: set[str] = set()
    for table in _tables():
        cond = subject_condition(table, subject)
        if cond is None:
            continue
        rows = (await session.execute(select(table).where(cond))).mappings().all()
        if not rows:
            continue
        out_rows = []
        for row in rows:
            out: dict[str, Any] = {}
            for col in table.columns:
                d = column_declaration(col)
                value = row[col.name]
                if isinstance(d, Personal):
                    activities_seen.update(d.activities)
                    if d.export == "omit":
                        continue
                    if d.export == "presence":
                        out[col.name] = "(set)" if value is not None else None
                        continue
                    if d.blob and value:
                        try:
                            data = await blobs.read(value)
                        except BlobNotFound:
                            data = None
                        if data is not None:
                            kind = BLOB_KINDS[d.blob]
                            doc["blobs"][value] = {
                                "kind": kind.name,
                                "content_type": kind.content_type,
                                "description": kind.description,
                                "base64": base64.b64encode(data).decode(),
                            }
                out[col.name] = _jsonable(value)
            out_rows.append(out)
        doc["records"][table.name] = {
            "categories": sorted(
                {d.category for c in table.columns if isinstance(d := column_declaration(c), Personal)}
            ),
            "rows": out_rows,
        }
    for aid in sorted(activities_seen):
        a = register.ACTIVITIES[aid]
        doc["processing"][aid] = {"when": a.when, "purpose": a.purpose, "basis": list(a.basis), "retention": register.RETENTION[a.retention]}
    return doc


def export_zip(doc: dict) -> bytes:
    """The export as a ZIP: ``data.json`` plus each blob as a file (R6 portability)."""
    buf = io.BytesIO()
    slim = {**doc, "blobs": {k: {kk: vv for kk, vv in v.items() if kk != "base64"} for k, v in doc["blobs"].items()}}
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data.json", json.dumps(slim, ensure_ascii=False, indent=2))
        for key, b in doc["blobs"].items():
            ext = {"image/jpeg": ".jpg", "image/png": ".png", "video/mp4": ".mp4"}.get(b["content_type"], ".bin")
            zf.writestr(f"files/{key}{ext}", base64.b64decode(b["base64"]))
    return buf.getvalue()


# Erasure and purge -----------------------------------------------------------------


@dataclass
class RemovalReport:
    counts: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    record_id: str | None = None

    @property
    def rows(self) -> int:
        return sum(self.counts.values())


def _anonymised(col) -> Any:
    if col.nullable:
        return None
    py = getattr(col.type, "python_type", str)
    if py is str:
        return "erased"
    if py is bool:
        return False
    if py in (int, float):
        return 0
    return None


async def _remove(session: AsyncSession, conditions: dict[str, ColumnElement[bool]]) -> tuple[dict[str, int], list[str]]:
    """Remove the rows matched by ``conditions`` (table name → condition), children first.

    The rows to touch are selected for every table before anything changes, because a
    ``via`` link of a child looks through its parent.
    """
    tables = [t for t in _tables() if t.name in conditions]
    plan: dict[str, list[tuple]] = {}
    blob_keys: list[str] = []
    for t in tables:
        pk_cols = list(t.primary_key.columns)
        blob_cols = [c for c in t.columns if isinstance(d := column_declaration(c), Personal) and d.blob]
        # Locked, parents first (PostgreSQL): a device report holding its device row is
        # waited for, and the child rows it wrote are then seen here, instead of being
        # missed or deadlocking. NO KEY UPDATE, so a foreign-key check (KEY SHARE) of such
        # a report on a parent row locked here does not wait for us.
        rows = (await session.execute(select(*pk_cols, *blob_cols).where(conditions[t.name])
                                      .with_for_update(key_share=True))).all()
        if not rows:
            continue
        plan[t.name] = [tuple(r[: len(pk_cols)]) for r in rows]
        # Blobs go whether the row is deleted or anonymised: a blob column is personal.
        for r in rows:
            blob_keys.extend(k for k in r[len(pk_cols) :] if k)
    counts: dict[str, int] = {}
    for t in reversed(tables):
        pks = plan.get(t.name)
        if not pks:
            continue
        pk_cols = list(t.primary_key.columns)
        decl = table_declaration(t)
        for chunk_start in range(0, len(pks), 500):
            chunk = pks[chunk_start : chunk_start + 500]
            if len(pk_cols) == 1:
                where = pk_cols[0].in_([p[0] for p in chunk])
            else:
                where = or_(*[and_(*[c == v for c, v in zip(pk_cols, p, strict=True)]) for p in chunk])
            if decl.on_erase == "delete":
                await session.execute(delete(t).where(where))
            else:
                values = {c.name: _anonymised(c) for c in t.columns if isinstance(column_declaration(c), Personal) and not c.primary_key}
                await session.execute(update(t).where(where).values(**values))
        counts[t.name] = len(pks)
    if blob_keys:
        existing = set((await session.execute(select(BlobTombstone.key).where(BlobTombstone.key.in_(blob_keys)))).scalars())
        new = [{"key": k, "created_at": utcnow()} for k in dict.fromkeys(blob_keys) if k not in existing]
        if new:
            await session.execute(insert(BlobTombstone), new)
    return counts, blob_keys


async def sweep_tombstones(db: Database, blobs: BlobStore) -> int:
    """Delete the blobs of removed rows; safe to run any time, any number of times."""
    n = 0
    async with db.session() as s:
        keys = list((await s.execute(select(BlobTombstone.key))).scalars())
    for key in keys:
        await blobs.delete(key)
        async with db.transaction() as s:
            await s.execute(delete(BlobTombstone).where(BlobTombstone.key == key))
        n += 1
    return n


async def _run_removal(db: Database, blobs: BlobStore, reason: str,
                       conditions: dict[str, ColumnElement[bool]]) -> RemovalReport:
    async with db.transaction() as s:
        counts, keys = await _remove(s, conditions)
        rec = ErasureRecord(reason=reason, counts=counts, blobs=len(set(keys)), finished_at=utcnow())
        s.add(rec)
    await db.checkpoint()  # SQLite: no erased value left in the write-ahead log
    await sweep_tombstones(db, blobs)
    return RemovalReport(counts=counts, blobs=len(set(keys)), record_id=rec.id)


# Domains that hold live state outside the database (a device's open broker connection)
# register a hook: called before the erasure with the subject, it returns an async
# callable run after the erasure committed (or None). Failures are logged, never raised:
# the data is already gone, and the follow-up is best effort.
ErasureHook = Callable[[Subject], Awaitable[Callable[[], Awaitable[None]] | None]]
ERASURE_HOOKS: list[ErasureHook] = []


async def erase_subject(db: Database, blobs: BlobStore, subject: Subject, reason: str = "erasure") -> RemovalReport:
    """Delete or anonymise everything held about ``subject`` (R3, B17), blobs included."""
    afters = []
    for hook in list(ERASURE_HOOKS):
        after = await hook(subject)
        if after is not None:
            afters.append(after)

    conds = {t.name: c for t in _tables() if (c := subject_condition(t, subject)) is not None}
    report = await _run_removal(db, blobs, reason, conds)
    log.info("privacy.erased", extra={"rows": report.rows, "blobs": report.blobs, "record": report.record_id})
    for after in afters:
        try:
            await after()
        except Exception:  # noqa: BLE001 - see ERASURE_HOOKS
            log.exception("privacy.erasure_hook_failed")
    return report


async def remove_rows(db: Database, blobs: BlobStore, table: str, condition: ColumnElement[bool], reason: str) -> RemovalReport:
    """Remove rows of one table (and, through ``via`` links, the rows hanging off them).

    Used where a domain ends one relationship rather than a whole subject: deleting a
    device (B10) erases the data of that binding through the same machinery.
    """

    conds: dict[str, ColumnElement[bool]] = {table: condition}
    # Children linked to this table by a declared via-link go with it.
    changed = True
    while changed:
        changed = False
        for t in _tables():
            decl = table_declaration(t)
            if t.name in conds or decl is None:
                continue
            for link in decl.links:
                if link.via in conds:
                    (ppk,) = Base.metadata.tables[link.via].primary_key.columns
                    conds[t.name] = t.c[link.column].in_(select(ppk).where(conds[link.via]))
                    changed = True
                    break
    return await _run_removal(db, blobs, reason, conds)


async def purge_expired(db: Database, blobs: BlobStore, now: dt.datetime | None = None) -> RemovalReport:
    """Remove rows past their declared expiry (RET1, RET5)."""
    now = now or utcnow()

    conds = {t.name: t.c[d.expiry.column] < now - d.expiry.after
             for t in _tables() if (d := table_declaration(t)) is not None and d.expiry is not None}
    return await _run_removal(db, blobs, "retention", conds)
