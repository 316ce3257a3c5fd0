"""Find, erase and purge a subject's data — driven by the declarations alone.

``link_conditions`` finds every row reachable from a subject through the declared links
(``privacy.export`` streams them out); ``erase_subject`` deletes (or anonymises, where
the table says so) the same rows in one transaction and tombstones their blobs;
``purge_expired`` does the same, table by table in bounded chunks, for rows past their
declared expiry. A link scoped to some columns (``Link(columns=...)``) erases only
those. No domain writes its own export or erasure code: declaring a column is what puts
it in reach of these operations.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Table, and_, case, delete, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import ColumnElement

from faoyam.core.database import Base, Database, utcnow
from faoyam.core.storage import BlobStore
from faoyam.core.tables import every_table
from faoyam.privacy.blobrefs import sweep_quietly, sweep_tombstones, tombstone
from faoyam.core.declarations import (
    Link,
    Personal,
    SubjectRoot,
    column_declaration,
    table_declaration,
)
from faoyam.privacy.models import ErasureRecord

__all__ = ["Subject", "erase_subject", "purge_expired", "remove_rows", "resolve_subject", "sweep_tombstones"]

log = logging.getLogger(__name__)

CHUNK = 500  # rows per retention transaction, and per statement of a removal


@dataclass(frozen=True)
class Subject:
    """Who the data is about: an account, and/or addresses held before an account existed."""

    user_id: str | None = None
    emails: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()

    def describe(self) -> dict:
        return {"user_id": self.user_id, "emails": sorted(self.emails), "phones": sorted(self.phones)}


def declared_tables() -> list[Table]:
    """Every table of every domain, parents before children."""
    return every_table()


def _root_table() -> tuple[Table, SubjectRoot]:
    for t in declared_tables():
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


def link_conditions(table: Table, subject: Subject, _depth: int = 0) -> list[tuple[Link | None, ColumnElement[bool]]]:
    """Each declared way ``table``'s rows reach ``subject``: (link, condition) pairs.

    The link is None for the subject root (the row *is* the subject). Links that cannot
    match this subject (an email link for a subject without an address) are left out.
    """
    if _depth > 8:
        raise RecursionError(f"privacy links through {table.name} loop")
    decl = table_declaration(table)
    if decl is None:
        return []
    if isinstance(decl.subject, SubjectRoot):
        return [(None, table.c[decl.subject.id_column] == subject.user_id)] if subject.user_id else []
    out: list[tuple[Link | None, ColumnElement[bool]]] = []
    by_name = Base.metadata.tables
    for link in decl.links:
        col = table.c[link.column]
        cond = None
        if link.via:
            other = by_name[link.via]
            inner = subject_condition(other, subject, _depth + 1)
            if inner is not None:
                (pk,) = other.primary_key.columns
                cond = col.in_(select(pk).where(inner))
        elif link.key == "user_id" and subject.user_id:
            cond = col == subject.user_id
        elif link.key == "email" and subject.emails:
            cond = func.lower(col).in_(sorted(e.lower() for e in subject.emails))
        elif link.key == "phone" and subject.phones:
            cond = col.in_(sorted(subject.phones))
        if cond is not None:
            out.append((link, cond))
    return out


def subject_condition(table: Table, subject: Subject, _depth: int = 0) -> ColumnElement[bool] | None:
    """The rows of ``table`` that belong to ``subject``, or None if it cannot hold any."""
    conds = [c for _, c in link_conditions(table, subject, _depth)]
    return or_(*conds) if conds else None


# Erasure and purge -----------------------------------------------------------------


@dataclass(frozen=True)
class Reach:
    """How a removal reaches rows of one table: a condition, and which columns it covers.

    ``columns=None``: the whole row (deleted, or anonymised where the table says so).
    Otherwise only these personal columns are anonymised: the row is also about someone
    else (``Link(columns=...)``), whose columns stay.
    """

    condition: ColumnElement[bool]
    columns: tuple[str, ...] | None = None


Conditions = dict[str, list[Reach]]


@dataclass
class RemovalReport:
    counts: dict[str, int] = field(default_factory=dict)
    blobs: int = 0
    record_id: str | None = None
    failed: list[str] = field(default_factory=list)  # tables a retention run could not purge

    @property
    def rows(self) -> int:
        return sum(self.counts.values())

    def add(self, counts: dict[str, int], blobs: int) -> None:
        for name, n in counts.items():
            self.counts[name] = self.counts.get(name, 0) + n
        self.blobs += blobs


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


def _pk_in(pk_cols: list, pks: list[tuple]) -> ColumnElement[bool]:
    if len(pk_cols) == 1:
        return pk_cols[0].in_([p[0] for p in pks])
    return or_(*[and_(*[c == v for c, v in zip(pk_cols, p, strict=True)]) for p in pks])


def _personal_columns(t: Table) -> list:
    return [c for c in t.columns if isinstance(column_declaration(c), Personal) and not c.primary_key]


def _blob_columns(t: Table) -> list:
    return [c for c in t.columns if isinstance(d := column_declaration(c), Personal) and d.blob]


@dataclass
class _TablePlan:
    whole: list[tuple] = field(default_factory=list)  # rows removed as a whole
    scoped: dict[frozenset[str], list[tuple]] = field(default_factory=dict)  # columns → rows


async def _plan(session: AsyncSession, t: Table, reaches: list[Reach]) -> tuple[_TablePlan, list[str]]:
    """Which rows of ``t`` go whole and which lose some columns, and the blobs that go."""
    pk_cols = list(t.primary_key.columns)
    blob_cols = _blob_columns(t)
    flags = [case((r.condition, 1), else_=0).label(f"_reach{i}") for i, r in enumerate(reaches)]
    # Locked, parents first (PostgreSQL): a device report holding its device row is waited
    # for, and the child rows it wrote are then seen here, instead of being missed or
    # deadlocking. NO KEY UPDATE, so a foreign-key check (KEY SHARE) of such a report on a
    # parent row locked here does not wait for us.
    q = (select(*pk_cols, *blob_cols, *flags).where(or_(*[r.condition for r in reaches]))
         .with_for_update(key_share=True))
    plan, keys = _TablePlan(), []
    n_pk, n_blob = len(pk_cols), len(blob_cols)
    for row in (await session.execute(q)).all():
        pk, row_keys, hit = tuple(row[:n_pk]), row[n_pk : n_pk + n_blob], row[n_pk + n_blob :]
        matched = [r for r, h in zip(reaches, hit, strict=True) if h]
        if any(r.columns is None for r in matched):
            plan.whole.append(pk)
            keys.extend(k for k in row_keys if k)  # a blob column is personal: it goes either way
            continue
        cols = frozenset(c for r in matched for c in r.columns or ())
        plan.scoped.setdefault(cols, []).append(pk)
        keys.extend(k for c, k in zip(blob_cols, row_keys, strict=True) if k and c.name in cols)
    return plan, keys


async def _remove(session: AsyncSession, conditions: Conditions) -> tuple[dict[str, int], list[str]]:
    """Remove the rows reached by ``conditions`` (table name → reaches), children first.

    The rows to touch are selected for every table before anything changes, because a
    ``via`` link of a child looks through its parent. Blob keys of removed values are
    tombstoned in the same transaction.
    """
    tables = [t for t in declared_tables() if conditions.get(t.name)]
    plans: dict[str, _TablePlan] = {}
    blob_keys: list[str] = []
    for t in tables:
        plan, keys = await _plan(session, t, conditions[t.name])
        if plan.whole or plan.scoped:
            plans[t.name] = plan
            blob_keys.extend(keys)
    counts: dict[str, int] = {}
    for t in reversed(tables):
        plan = plans.get(t.name)
        if plan is None:
            continue
        pk_cols = list(t.primary_key.columns)
        anonymise = table_declaration(t).on_erase == "anonymise"
        all_personal = {c.name: _anonymised(c) for c in _personal_columns(t)}
        batches = [(plan.whole, None)] + [(pks, cols) for cols, pks in plan.scoped.items()]
        for pks, cols in batches:
            for start in range(0, len(pks), CHUNK):
                where = _pk_in(pk_cols, pks[start : start + CHUNK])
                if cols is None and not anonymise:
                    await session.execute(delete(t).where(where))
                else:
                    values = all_personal if cols is None else {c: v for c, v in all_personal.items() if c in cols}
                    await session.execute(update(t).where(where).values(**values))
        counts[t.name] = len(plan.whole) + sum(len(p) for p in plan.scoped.values())
    await tombstone(session, blob_keys)
    return counts, blob_keys


async def _run_removal(db: Database, blobs: BlobStore, reason: str, conditions: Conditions) -> RemovalReport:
    """One transaction: the rows, their tombstones and the record; then the blobs, quietly.

    Once the transaction committed the removal has succeeded, whatever the blob store
    does next: a blob that cannot be deleted now stays tombstoned for the sweep job.
    """
    started = utcnow()
    async with db.transaction() as s:
        counts, keys = await _remove(s, conditions)
        rec = ErasureRecord(reason=reason, counts=counts, blobs=len(set(keys)), started_at=started, finished_at=utcnow())
        s.add(rec)
    await db.checkpoint()  # SQLite: no erased value left in the write-ahead log
    await sweep_quietly(db, blobs, keys)
    return RemovalReport(counts=counts, blobs=len(set(keys)), record_id=rec.id)


# Domains that hold live state outside the database (a device's open broker connection)
# register a hook: called before the erasure with the subject, it returns an async
# callable run after the erasure committed (or None). Failures are logged, never raised:
# the data is already gone, and the follow-up is best effort.
ErasureHook = Callable[[Subject], Awaitable[Callable[[], Awaitable[None]] | None]]
ERASURE_HOOKS: list[ErasureHook] = []


def _kept(t: Table) -> bool:
    d = table_declaration(t)
    return d is not None and d.on_erase == "keep"


def subject_conditions(subject: Subject) -> Conditions:
    """Every row of every table that reaches ``subject``, each link with its column scope."""
    out: Conditions = {}
    for t in declared_tables():
        if _kept(t):
            continue  # a legal duty keeps these rows through an erasure (on_erase="keep")
        reaches = [Reach(cond, link.columns if link is not None else None) for link, cond in link_conditions(t, subject)]
        if reaches:
            out[t.name] = reaches
    return out


async def erase_subject(db: Database, blobs: BlobStore, subject: Subject, reason: str = "erasure") -> RemovalReport:
    """Delete or anonymise everything held about ``subject`` (R3, B17), blobs included.

    Raises only if the database transaction fails (then nothing changed). After it
    committed, the blob deletions and the domains' follow-ups run and are never raised.
    """
    afters = []
    for hook in list(ERASURE_HOOKS):
        after = await hook(subject)
        if after is not None:
            afters.append(after)
    report = await _run_removal(db, blobs, reason, subject_conditions(subject))
    log.info("privacy.erased", extra={"rows": report.rows, "blobs": report.blobs, "record": report.record_id})
    for after in afters:
        try:
            await after()
        except Exception:  # noqa: BLE001 - see ERASURE_HOOKS
            log.exception("privacy.erasure_hook_failed")
    return report


def _with_children(conds: Conditions) -> Conditions:
    """Add the rows hanging off the reached rows by a declared ``via`` link, recursively."""
    conds = dict(conds)
    changed = True
    while changed:
        changed = False
        for t in declared_tables():
            decl = table_declaration(t)
            if t.name in conds or decl is None or decl.on_erase == "keep":
                continue
            for link in decl.links:
                whole = [r.condition for r in conds.get(link.via, ()) if r.columns is None]
                if whole:  # only rows removed as a whole take their children with them
                    (ppk,) = Base.metadata.tables[link.via].primary_key.columns
                    conds[t.name] = [Reach(t.c[link.column].in_(select(ppk).where(or_(*whole))))]
                    changed = True
                    break
    return conds


async def remove_rows(db: Database, blobs: BlobStore, table: str, condition: ColumnElement[bool], reason: str) -> RemovalReport:
    """Remove rows of one table (and, through ``via`` links, the rows hanging off them).

    Used where a domain ends one relationship rather than a whole subject: deleting a
    device (B10) erases the data of that binding through the same machinery.
    """
    return await _run_removal(db, blobs, reason, _with_children({table: [Reach(condition)]}))


# Retention -------------------------------------------------------------------------

async def _purge_table(db: Database, t: Table, cutoff_condition: ColumnElement[bool], chunk: int,
                       report: RemovalReport, swept: list[str]) -> None:
    """Purge one table's expired rows, ``chunk`` rows per transaction, until none is left."""
    pk_cols = list(t.primary_key.columns)
    pk = pk_cols[0] if len(pk_cols) == 1 else tuple_(*pk_cols)
    last: tuple | None = None
    while True:
        # Keyset pagination: an anonymised row still matches the cutoff, and must not be
        # picked again in the same run.
        q = select(*pk_cols).where(cutoff_condition).order_by(*pk_cols).limit(chunk)
        if last is not None:
            q = q.where(pk > (last[0] if len(pk_cols) == 1 else tuple_(*last)))
        async with db.transaction() as s:
            pks = [tuple(r) for r in (await s.execute(q)).all()]
            if not pks:
                return
            counts, keys = await _remove(s, _with_children({t.name: [Reach(_pk_in(pk_cols, pks))]}))
        report.add(counts, len(set(keys)))
        swept.extend(keys)
        last = pks[-1]
        if len(pks) < chunk:
            return


async def purge_expired(db: Database, blobs: BlobStore, now: dt.datetime | None = None, *,
                        chunk: int = CHUNK) -> RemovalReport:
    """Remove rows past their declared expiry (RET1, RET5), table by table.

    Each table is purged in transactions of at most ``chunk`` rows, so a huge backlog
    neither holds one giant transaction nor starves the other tables, and a table that
    fails is logged and skipped (``report.failed``) while the others are purged. The run
    is recorded once in ``erasure_records``.
    """
    now = now or utcnow()
    started = utcnow()
    report = RemovalReport()
    swept: list[str] = []
    for t in declared_tables():
        d = table_declaration(t)
        if d is None or d.expiry is None:
            continue
        try:
            await _purge_table(db, t, t.c[d.expiry.column] < now - d.expiry.after, chunk, report, swept)
        except Exception:  # noqa: BLE001 - one table's failure must not stop the others
            log.exception("privacy.retention_failed", extra={"table": t.name})
            report.failed.append(t.name)
    async with db.transaction() as s:
        rec = ErasureRecord(reason="retention", counts=report.counts, blobs=report.blobs,
                            started_at=started, finished_at=utcnow())
        s.add(rec)
    report.record_id = rec.id
    await sweep_quietly(db, blobs, swept)
    return report
