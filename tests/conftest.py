"""Test fixtures: a fresh Context on SQLite (default) or PostgreSQL (FAOYAM_TEST_DB=postgres),
with blobs in a local directory (default) or on a real S3 server (FAOYAM_TEST_BLOBS=s3).

Every test gets its own data directory and an empty database. On PostgreSQL one database
is migrated per run (which also proves the migrations on PostgreSQL) and emptied between
tests. On S3 one SeaweedFS server runs per session (tests/s3server.py) and every test gets
its own prefix in its bucket.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from faoyam.app import create_app
from faoyam.core.config import Settings
from faoyam.core.context import Context
from faoyam.core.database import Base

pytest_plugins = ["tests.compliance", "tests.s3server"]

DB_KIND = os.environ.get("FAOYAM_TEST_DB", "sqlite")
BLOB_KIND = os.environ.get("FAOYAM_TEST_BLOBS", "local")  # "s3": SeaweedFS, tests/s3server.py
PG_ADMIN = os.environ.get("FAOYAM_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")


def pytest_configure(config):
    config.addinivalue_line("markers", "req(*ids): requirement IDs")


def pytest_report_header(config):
    return f"faoyam test database: {DB_KIND}, blobs: {BLOB_KIND}"


@pytest.fixture(scope="session")
def pg_url() -> str | None:
    if DB_KIND != "postgres":
        yield None
        return
    import psycopg2

    name = f"faoyam_test_{os.getpid()}"
    admin = psycopg2.connect(PG_ADMIN)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cur.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    url = f"{base.replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    yield url
    with admin.cursor() as cur:
        cur.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
    admin.close()


@pytest.fixture
def blob_settings(request) -> dict:
    """The Settings fields for the blob backend this run tests (see tests/s3server.py)."""
    if BLOB_KIND != "s3":
        return {}
    server = request.getfixturevalue("s3_server")
    return server.settings_for(server.new_prefix())


@pytest.fixture
def settings(tmp_path: Path, pg_url, blob_settings) -> Settings:
    s = Settings(
        **blob_settings,
        data_dir=tmp_path / "data",
        database_url=pg_url,
        mqtt_mode="off",
        media_rtmp_port=0,  # never a fixed port in tests
        media_http_port=0,
        jobs_enabled=False,
        log_json=True,
        password_min_score=3,
        _env_file=None,
    )
    s.ensure_dirs()
    return s


_pg_ready: set[str] = set()


async def _empty_pg(ctx: Context) -> None:
    """Create the tables once per run (from the models: test_migrations proves the
    migrations give the same schema), then empty them before every test."""
    from sqlalchemy import text

    if ctx.db.url not in _pg_ready:
        await ctx.db.create_all()
        _pg_ready.add(ctx.db.url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with ctx.db.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} CASCADE"))


@pytest_asyncio.fixture
async def ctx(settings: Settings) -> AsyncIterator[Context]:
    c = Context.build(settings)
    if DB_KIND == "postgres":
        await _empty_pg(c)
    else:
        await c.db.create_all()
    yield c
    await c.close()


@pytest_asyncio.fixture
async def app(ctx: Context):
    application = create_app(ctx=ctx)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as c:
        yield c


STRONG = "violet-harbour-kettle-91"


async def latest_code(ctx: Context, to: str) -> str:
    msgs = await ctx.messenger.outbox(to)
    assert msgs, f"no message to {to}"
    m = re.search(r"\b(\d{6})\b", msgs[0]["text"])
    assert m, msgs[0]["text"]
    return m.group(1)


async def register(client: httpx.AsyncClient, ctx: Context, *, email: str | None = "user@example.com",
                   phone: str | None = None, nickname: str = "Somchai", country: str = "TH",
                   password: str = STRONG, terminal: dict | None = None) -> dict:
    """Register and confirm an account; returns the session (token, csrf_token, user_id)."""
    body = {"email": email, "phone": phone, "country": country, "nickname": nickname, "password": password,
            "age_confirmed": True}
    r = await client.post("/api/v1/accounts/register", json=body)
    assert r.status_code == 202, r.text
    code = await latest_code(ctx, email or phone)
    r = await client.post("/api/v1/accounts/register/confirm",
                          json={"pending_id": r.json()["pending_id"], "code": code, "terminal": terminal or {}})
    assert r.status_code == 201, r.text
    client.cookies.clear()  # tests authenticate with bearer tokens unless they test cookies
    return r.json()


async def all_blob_bytes(ctx: Context) -> bytes:
    """Every byte the blob store holds, read through the store (so it works on S3), plus,
    on the local backend, every file under its directory (stray temp files included)."""
    stored = [await ctx.blobs.read(k) async for k in ctx.blobs.keys()]
    root = ctx.settings.blobs_path
    files = [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()] if root.exists() else []
    return b"".join(stored + files)


def bearer(session: dict) -> dict:
    return {"Authorization": f"Bearer {session['token']}"}
