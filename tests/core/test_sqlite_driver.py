"""The one-trip SQLite driver (core/sqlite_driver.py): fewer trips to aiosqlite's thread,
the same results, transactions and errors as SQLAlchemy's own aiosqlite dialect."""

from __future__ import annotations

import collections

import aiosqlite.core
import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from faoyam.core.database import Database
from faoyam.core.sqlite_driver import SCHEME, one_trip_url

META = sa.MetaData()
THINGS = sa.Table("things", META, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String, unique=True))


@pytest.fixture
async def db(tmp_path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    async with database.engine.begin() as conn:
        await conn.run_sync(META.create_all)
    yield database
    await database.dispose()


@pytest.fixture
def trips(monkeypatch):
    """Every call that crosses to a connection's thread, by what it runs."""
    seen: collections.Counter = collections.Counter()
    original = aiosqlite.core.Connection._execute

    async def counted(self, fn, *args, **kwargs):
        seen[getattr(fn, "__name__", repr(fn))] += 1
        return await original(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.core.Connection, "_execute", counted)
    return seen


def test_only_aiosqlite_urls_are_switched():
    assert one_trip_url("sqlite+aiosqlite:////tmp/a.db") == f"{SCHEME}:////tmp/a.db"
    assert one_trip_url("postgresql+asyncpg://u@h/db") == "postgresql+asyncpg://u@h/db"


async def test_a_read_is_one_trip_per_statement_and_no_trip_to_end_it(db, trips):
    async with db.transaction() as s:
        await s.execute(THINGS.insert(), [{"name": "a"}, {"name": "b"}])
    trips.clear()
    async with db.session() as s:
        rows = (await s.execute(sa.select(THINGS.c.name).order_by(THINGS.c.name))).all()
        count = (await s.execute(sa.select(sa.func.count()).select_from(THINGS))).scalar_one()
    assert [r.name for r in rows] == ["a", "b"] and count == 2
    assert dict(trips) == {"_run": 2}, trips  # no cursor/fetch/close/rollback trips


async def test_writes_commit_and_a_failed_transaction_rolls_back(db):
    async with db.transaction() as s:
        result = await s.execute(THINGS.insert().values(name="kept"))
        assert result.inserted_primary_key[0] is not None  # lastrowid made it back
    with pytest.raises(IntegrityError):
        async with db.transaction() as s:
            await s.execute(THINGS.insert().values(name="gone"))
            await s.execute(THINGS.insert().values(name="kept"))  # unique: fails
    async with db.session() as s:
        names = (await s.execute(sa.select(THINGS.c.name))).scalars().all()
        updated = await s.execute(THINGS.update().values(name="renamed"))
        assert updated.rowcount == 1
        await s.rollback()
        assert (await s.execute(sa.select(THINGS.c.name))).scalars().all() == ["kept"]
    assert names == ["kept"]


async def test_many_rows_and_streaming_still_work(db):
    async with db.transaction() as s:
        await s.execute(THINGS.insert(), [{"name": f"n{i}"} for i in range(500)])
    async with db.session() as s:
        streamed = [r.name async for r in await s.stream(sa.select(THINGS.c.name))]
        assert len(streamed) == 500 and len((await s.execute(sa.select(THINGS))).all()) == 500
