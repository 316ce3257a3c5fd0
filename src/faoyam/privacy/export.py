"""The export of a subject (R1, R6), streamed: JSON or a ZIP of ``data.json`` plus files.

Nothing is held whole in memory, so an account with gigabytes of video exports with the
same memory as one with a photo:

- rows are read table by table in pages of ``PAGE`` rows (keyset pagination, one short
  session per page, so no read transaction stays open while the client downloads);
- each row is turned into JSON text and handed on at once;
- blobs are read with ``BlobStore.read_stream`` chunk by chunk, written into the ZIP
  (stored: pictures and video are compressed already) or base64-encoded into the JSON;
- the ZIP is written by ``zipfile`` to a write-only pipe that is drained after every
  chunk (a non-seekable ZIP: sizes and CRCs follow each entry in a data descriptor,
  ZIP64 when a file is large).

A row that links several subjects (``Link(columns=...)``) shows each subject only the
personal columns that are theirs. Only the small index of blob keys met in the rows is
kept until the files are written.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import enum
import json
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Table, case, or_, select, tuple_

from faoyam.core.context import Context
from faoyam.core.database import Database, utcnow
from faoyam.core.storage import BlobNotFound, BlobStore
from faoyam.privacy import register
from faoyam.core.declarations import BLOB_KINDS, Personal, column_declaration
from faoyam.privacy.subjects import Subject, declared_tables, link_conditions, resolve_subject

FORMAT = "faoyam-export/1"
PAGE = 500  # rows per query
FLUSH = 1 << 16  # hand ZIP bytes on once this many are buffered (blob chunks always)
EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "video/mp4": ".mp4", "message/rfc822": ".eml"}


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


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


@dataclass
class _Seen:
    """What the rows pass on to the rest of the document: blob keys and activities."""

    blobs: dict[str, str] = field(default_factory=dict)  # key → kind, in the order met
    activities: set[str] = field(default_factory=set)


def _row_out(table: Table, row, visible: set[str] | None, seen: _Seen) -> dict[str, Any]:
    """One row as the subject sees it: non-personal columns, and the personal ones that
    are theirs (``visible``; None: all), each by its ``export`` mode."""
    out: dict[str, Any] = {}
    for col in table.columns:
        d = column_declaration(col)
        value = row[col.name]
        if isinstance(d, Personal):
            if visible is not None and col.name not in visible:
                continue
            seen.activities.update(d.activities)
            if d.export == "omit":
                continue
            if d.export == "presence":
                out[col.name] = "(set)" if value is not None else None
                continue
            if d.blob and value:
                seen.blobs.setdefault(value, d.blob)
        out[col.name] = _jsonable(value)
    return out


async def _table_rows(db: Database, table: Table, subject: Subject, seen: _Seen) -> AsyncIterator[dict]:
    links = link_conditions(table, subject)
    if not links:
        return
    pk_cols = list(table.primary_key.columns)
    pk = pk_cols[0] if len(pk_cols) == 1 else tuple_(*pk_cols)
    flags = [case((cond, 1), else_=0).label(f"_faoyam_link{i}") for i, (_, cond) in enumerate(links)]
    base = select(table, *flags).where(or_(*[c for _, c in links])).order_by(*pk_cols).limit(PAGE)
    last = None
    while True:
        q = base if last is None else base.where(pk > (last[0] if len(pk_cols) == 1 else tuple_(*last)))
        async with db.session() as s:
            rows = (await s.execute(q)).mappings().all()
        for row in rows:
            matched = [link for i, (link, _) in enumerate(links) if row[f"_faoyam_link{i}"]]
            whole = any(link is None or link.columns is None for link in matched)
            visible = None if whole else {c for link in matched for c in link.columns or ()}
            yield _row_out(table, row, visible, seen)
        if len(rows) < PAGE:
            return
        last = tuple(rows[-1][c.name] for c in pk_cols)


async def _records(db: Database, subject: Subject, seen: _Seen) -> AsyncIterator[str]:
    """The ``records`` object as JSON text, row by row. Tables without rows are left out."""
    yield "{"
    first_table = True
    for table in declared_tables():
        first_row = True
        async for out in _table_rows(db, table, subject, seen):
            if first_row:
                cats = sorted({d.category for c in table.columns if isinstance(d := column_declaration(c), Personal)})
                yield f'{"" if first_table else ", "}{_dumps(table.name)}: {{"categories": {_dumps(cats)}, "rows": ['
                first_table = first_row = False
            else:
                yield ", "
            yield _dumps(out)
        if not first_row:
            yield "]}"
    yield "}"


@dataclass(frozen=True)
class _File:
    key: str
    kind: str
    size: int

    @property
    def meta(self) -> dict:
        k = BLOB_KINDS[self.kind]
        return {"kind": k.name, "content_type": k.content_type, "description": k.description, "size": self.size}

    @property
    def path(self) -> str:
        return f"files/{self.key}{EXTENSIONS.get(BLOB_KINDS[self.kind].content_type, '.bin')}"


async def _present(blobs: BlobStore, seen: _Seen) -> AsyncIterator[_File]:
    for key, kind in seen.blobs.items():
        try:
            st = await blobs.stat(key)
        except BlobNotFound:
            continue  # a dangling reference: the reconciler reports it
        yield _File(key, kind, st.size)


async def _base64(blobs: BlobStore, key: str) -> AsyncIterator[str]:
    rest = b""
    async for chunk in blobs.read_stream(key):
        data = rest + chunk
        cut = len(data) - len(data) % 3
        rest = data[cut:]
        if cut:
            yield base64.b64encode(data[:cut]).decode()
    if rest:
        yield base64.b64encode(rest).decode()


async def _document(db: Database, blobs: BlobStore, subject: Subject, *, inline: bool,
                    files: list[_File] | None = None) -> AsyncIterator[str]:
    """The export document as JSON text. ``inline``: blobs base64 in ``blobs``; otherwise
    only their description, and ``files`` receives what the ZIP must carry."""
    seen = _Seen()
    head = {"format": FORMAT, "generated_at": utcnow().isoformat(), "subject": subject.describe()}
    yield _dumps(head)[:-1] + ', "records": '
    async for piece in _records(db, subject, seen):
        yield piece
    yield ', "blobs": {'
    first = True
    async for f in _present(blobs, seen):
        yield ("" if first else ", ") + _dumps(f.key) + ": "
        first = False
        if not inline:
            yield _dumps(f.meta)
            if files is not None:
                files.append(f)
            continue
        yield _dumps(f.meta)[:-1] + ', "base64": "'
        async for text in _base64(blobs, f.key):
            yield text
        yield '"}'
    processing = {}
    for aid in sorted(seen.activities):
        a = register.ACTIVITIES[aid]
        processing[aid] = {"when": a.when, "purpose": a.purpose, "basis": list(a.basis),
                           "retention": register.RETENTION[a.retention]}
    yield '}, "processing": ' + _dumps(processing) + "}"


async def export_json(db: Database, blobs: BlobStore, subject: Subject) -> AsyncIterator[bytes]:
    """The export as one JSON document (blobs inline, base64), streamed."""
    async for text in _document(db, blobs, subject, inline=True):
        yield text.encode()


class _Pipe:
    """A write-only file for ``zipfile``: what it writes is collected until taken."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


async def export_zip(db: Database, blobs: BlobStore, subject: Subject) -> AsyncIterator[bytes]:
    """The export as a ZIP, streamed: ``data.json`` first, then each blob under ``files/``."""
    pipe = _Pipe()
    stamp = utcnow().timetuple()[:6]
    files: list[_File] = []
    with zipfile.ZipFile(pipe, "w", allowZip64=True) as zf:
        info = zipfile.ZipInfo("data.json", date_time=stamp)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as entry:
            async for text in _document(db, blobs, subject, inline=False, files=files):
                entry.write(text.encode())
                if len(pipe.buf) >= FLUSH:
                    yield pipe.take()
        yield pipe.take()
        for f in files:
            info = zipfile.ZipInfo(f.path, date_time=stamp)
            info.compress_type = zipfile.ZIP_STORED
            info.file_size = f.size  # lets zipfile choose ZIP64 up front for a large file
            with zf.open(info, "w") as entry:
                async for chunk in blobs.read_stream(f.key):
                    entry.write(chunk)
                    yield pipe.take()
            yield pipe.take()
    yield pipe.take()


async def export_document(db: Database, blobs: BlobStore, subject: Subject) -> dict:
    """The JSON export parsed (tests and small tools; it holds everything in memory)."""
    return json.loads(b"".join([c async for c in export_json(db, blobs, subject)]))


async def write_zip_file(ctx: Context, user_id: str, path: Path) -> int:
    """``faoyam privacy export``: the streamed ZIP written to ``path``; returns its size."""
    async with ctx.db.session() as s:
        subject = await resolve_subject(s, user_id)
    size = 0
    with open(path, "wb") as fh:
        async for chunk in export_zip(ctx.db, ctx.blobs, subject):
            await asyncio.to_thread(fh.write, chunk)
            size += len(chunk)
    return size
