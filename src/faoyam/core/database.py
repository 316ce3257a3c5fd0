"""The SQL database: one declarative ``Base``, an async engine and sessions.

SQLite (the embedded default) and PostgreSQL run the same models and migrations. For
SQLite we turn on ``secure_delete`` so that erased rows are overwritten on disk, not just
unlinked from the b-tree: the canary erasure test scans the raw database file.

SQLite runs in WAL mode: readers do not wait for the writer (the web process reads while
a gateway process writes heartbeats) and a commit appends to the log instead of
rewriting pages (``synchronous=NORMAL`` is durable in WAL mode across application
crashes; a power cut may lose the last commits, not corrupt the file). The log holds
the old versions of pages until a checkpoint copies the new ones back, so an erasure ends
with ``checkpoint()`` (the erased values must not linger in ``faoyam.db-wal``), and
``journal_size_limit=0`` truncates the log whenever it is reset.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import DateTime, MetaData, String, event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from faoyam.core.sqlite_driver import one_trip_url

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Every table. A model's ``__privacy__`` (a ``TablePrivacy``) lands in its table's info."""

    metadata = MetaData(naming_convention=NAMING)

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        decl = cls.__dict__.get("__privacy__")
        if decl is not None and "__table__" in cls.__dict__:
            cls.__table__.info["privacy"] = decl


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator):
    """A timestamp that is always timezone-aware UTC in Python, on SQLite and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def IdColumn() -> String:  # noqa: N802 - reads like a type
    return String(32)


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no branch
    module = type(dbapi_conn).__module__
    if "sqlite" not in module:
        return
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA secure_delete=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA journal_size_limit=0")
    cur.close()


class Database:
    """An engine plus a session factory. One per process; cheap to share."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        kwargs: dict = {"echo": echo, "hide_parameters": True}  # no personal values in logged errors
        if url.startswith("postgresql"):
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        # SQLite: the same aiosqlite driver with one thread trip per statement (sqlite_driver).
        self.engine: AsyncEngine = create_async_engine(one_trip_url(url), **kwargs)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as s:
            yield s

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A plain connection for a hot read path that runs Core statements and wants rows,
        not objects: no ORM unit of work, identity map or loading layer around each statement
        (a third of the device list's statement cost, ``bench/bench_api.py``). It has
        ``execute`` like a session; nothing written through it is committed."""
        async with self.engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session whose work commits on success and rolls back on any error."""
        async with self.sessions() as s, s.begin():
            yield s

    async def checkpoint(self) -> None:
        """SQLite: copy the write-ahead log into the database file and truncate it (after
        an erasure, so no old page version is left in the log). Nothing on PostgreSQL."""
        if self.dialect != "sqlite":
            return
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def create_all(self) -> None:
        """Create every table from the models (tests); production uses migrations."""
        async with self.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)

    async def dispose(self) -> None:
        await self.engine.dispose()
