"""SQLite runs in WAL mode, and an erasure leaves no old page version in the log."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import text

from faoyam.accounts.models import User
from faoyam.privacy.subjects import Subject, erase_subject
from tests.conftest import DB_KIND

pytestmark = pytest.mark.skipif(DB_KIND != "sqlite", reason="SQLite's write-ahead log")


async def test_sqlite_is_in_wal_mode(ctx):
    async with ctx.db.session() as s:
        assert (await s.execute(text("PRAGMA journal_mode"))).scalar() == "wal"


@pytest.mark.req("R3")
async def test_an_erasure_leaves_nothing_in_the_write_ahead_log(ctx):
    marker = "Wal-Canary-7Q"
    async with ctx.db.transaction() as s:
        u = User(country="TH", nickname=marker, age_confirmed_at=dt.datetime.now(dt.UTC))
        s.add(u)
    path = Path(ctx.db.url.split("///", 1)[1])
    wal = path.with_name(path.name + "-wal")
    # The engine stays open (a running service): the log is where the last commits are.
    assert marker.encode() in path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    await erase_subject(ctx.db, ctx.blobs, Subject(user_id=u.id))
    data = path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
    assert marker.encode() not in data
