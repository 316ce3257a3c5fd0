"""SQLAlchemy's aiosqlite dialect with one thread hop per statement instead of four or five.

aiosqlite runs each SQLite connection in a thread of its own; every call on it (make a
cursor, execute, fetch the rows, close the cursor, roll back) is a round trip through a
queue to that thread and a future back. SQLAlchemy's adapter makes four such trips per
SELECT, and two more when the session ends (the session's rollback, then the pool's reset),
even after a read that never opened a transaction. On the device list (two statements)
that was ten trips per request, the largest single cost in ``bench/bench_api.py --profile``.

Here a statement is one trip: a function that makes the cursor, executes, fetches every row
and closes the cursor runs in the connection's thread (aiosqlite's own ``_execute``, the
same private entry SQLAlchemy's adapter uses through ``_tx`` for its isolation level).
Commit and rollback are skipped when SQLite is not inside a transaction: Python's
``sqlite3`` does nothing in that case either, so the result is the same without the trip.

Selected by the URL scheme ``sqlite+faoyam_aiosqlite://`` (``Database`` swaps it in for
``sqlite+aiosqlite://``); server-side (streaming) cursors stay aiosqlite's.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

import aiosqlite

from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

SCHEME = "sqlite+faoyam_aiosqlite"


def _run(conn, operation: str, parameters, many: bool):
    """In the connection's thread: the whole statement, rows included."""
    cur = conn.cursor()
    try:
        if many:
            cur.executemany(operation, parameters)
        elif parameters is None:
            cur.execute(operation)
        else:
            cur.execute(operation, parameters)
        description = cur.description
        rows = cur.fetchall() if description else ()
        return description, rows, cur.rowcount, cur.lastrowid
    finally:
        cur.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose statement, rows and close are one trip to the thread."""

    __slots__ = ("_description", "_rowcount", "_lastrowid")

    def __init__(self, adapt_connection):  # no aiosqlite cursor: nothing to open up front
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description = None
        self._rowcount = -1
        self._lastrowid = None

    @property
    def description(self):
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self):
        return self._lastrowid

    async def _async_soft_close(self) -> None:  # the sqlite3 cursor is closed already
        return None

    def close(self) -> None:
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        return None

    async def _trip(self, operation, parameters, many: bool) -> None:
        async with self._adapt_connection._execute_mutex:
            conn = self._connection
            result = await conn._execute(_run, conn._conn, operation, parameters, many)
        self._description, rows, self._rowcount, self._lastrowid = result
        self._rows = collections.deque(rows)

    def execute(self, operation, parameters=None):
        try:
            await_(self._trip(operation, parameters, False))
        except Exception as error:
            self._adapt_connection._handle_exception(error)

    def executemany(self, operation, seq_of_parameters):
        try:
            await_(self._trip(operation, seq_of_parameters, True))
        except Exception as error:
            self._adapt_connection._handle_exception(error)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor

    def _in_transaction(self) -> bool:
        # Read between trips, while this session owns the connection: nothing else runs on it.
        conn = self._connection._connection
        return conn is not None and conn.in_transaction

    def rollback(self) -> None:
        if self._in_transaction():
            super().rollback()

    def commit(self) -> None:
        if self._in_transaction():
            super().commit()


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> OneTripConnection:
        adapted = super().connect(*arg, **kw)
        return OneTripConnection(self, adapted._connection)


class OneTripDialect(SQLiteDialect_aiosqlite):
    driver = "faoyam_aiosqlite"
    supports_statement_cache = True  # nothing here changes how SQL is compiled

    @classmethod
    def import_dbapi(cls):
        return OneTripDBAPI(aiosqlite, sqlite3)


registry.register("sqlite.faoyam_aiosqlite", __name__, "OneTripDialect")


def one_trip_url(url: str) -> str:
    """The same database through this dialect, for an aiosqlite URL; other URLs unchanged."""
    prefix = "sqlite+aiosqlite:"
    return SCHEME + ":" + url[len(prefix):] if url.startswith(prefix) else url
