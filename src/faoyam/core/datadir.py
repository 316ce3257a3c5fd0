"""Which data directory (and database) a command works on, and whether it holds faoyam's state.

The embedded defaults keep everything under ``data_dir`` (``./faoyam-data`` unless
``FAOYAM_DATA_DIR`` or ``--data-dir`` says otherwise). A command that only *reads* state —
``faoyam outbox``, the privacy requests, key rotation — must not create an empty directory
and a fresh, table-less database when it is run in the wrong place: it says which directory
it looked at and stops. ``missing_state`` tells, without creating or writing anything.

    problem = missing_state(settings)
    if problem:
        print(problem)          # one line for a person
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from sqlalchemy.engine import make_url

from faoyam.core.config import Settings

# A migrated database has Alembic's bookkeeping table, one made from the models (tests) the
# accounts table; an empty database, or a file that is not faoyam's, has neither.
MARKER_TABLES = ("alembic_version", "users")


def describe(settings: Settings) -> str:
    """``/abs/faoyam-data`` and, when the database lives elsewhere, where (no password)."""
    where = str(settings.data_dir.resolve())
    if settings.database_url:
        where += f", database {make_url(settings.database_url).render_as_string(hide_password=True)}"
    return where


def missing_state(settings: Settings) -> str | None:
    """A one-line explanation when ``settings`` point at no faoyam installation, else None.

    Touches nothing: the SQLite file is opened read-only, a server database by a short
    connection that only asks whether the schema exists."""
    hint = "run it where `faoyam serve` keeps its data, or pass --data-dir DIR (or FAOYAM_DATA_DIR)"
    data_dir = settings.data_dir.resolve()
    if not settings.database_url:
        db_file = Path(make_url(settings.db_url).database or "")
        if not data_dir.is_dir():
            return f"no data directory {data_dir}; {hint}"
        if not db_file.is_file() or not _sqlite_has_schema(db_file):
            return f"no faoyam database in {data_dir}; {hint}"
        return None
    try:
        present = asyncio.run(_server_has_schema(settings.database_url))
    except Exception as exc:  # noqa: BLE001 - any driver error means the same to a person
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"cannot reach the database of {describe(settings)}: {first}"
    if not present:
        return f"the database of {describe(settings)} has no faoyam tables (run `faoyam db upgrade`)"
    return None


def _sqlite_has_schema(path: Path) -> bool:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            marks = ",".join("?" * len(MARKER_TABLES))
            row = conn.execute(f"SELECT 1 FROM sqlite_master WHERE type='table' AND name IN ({marks})",
                               MARKER_TABLES).fetchone()
    except sqlite3.DatabaseError:
        return False  # not a database at all
    return row is not None


async def _server_has_schema(url: str) -> bool:
    from sqlalchemy import inspect
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, hide_parameters=True)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: any(inspect(c).has_table(t) for t in MARKER_TABLES))
    finally:
        await engine.dispose()
