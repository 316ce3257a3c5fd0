"""The migrations build exactly the schema the models describe, on SQLite and PostgreSQL."""

import os

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from faoyam import models  # noqa: F401
from faoyam.core.database import Base
from faoyam.core.migrate import upgrade


def _sync(url: str) -> str:
    return url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg2")


def test_migrations_match_models(tmp_path):
    if os.environ.get("FAOYAM_TEST_DB") == "postgres":
        import psycopg2

        from tests.conftest import PG_ADMIN

        admin = psycopg2.connect(PG_ADMIN)
        admin.autocommit = True
        name = f"faoyam_migr_{os.getpid()}"
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}"')
        url = f"{PG_ADMIN.rsplit('/', 1)[0].replace('postgresql://', 'postgresql+asyncpg://')}/{name}"
    else:
        admin, url = None, f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    try:
        upgrade(url)
        engine = create_engine(_sync(url))
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        engine.dispose()
        assert diff == [], f"models and migrations differ; run `faoyam db revision -m ...`: {diff}"
    finally:
        if admin is not None:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.close()


@pytest.mark.parametrize("dummy", [0])
def test_upgrade_is_idempotent(tmp_path, dummy):
    url = f"sqlite+aiosqlite:///{tmp_path / 'i.db'}"
    upgrade(url)
    upgrade(url)  # a second start of the service must not fail
    engine = create_engine(_sync(url))
    with engine.connect() as conn:
        assert MigrationContext.configure(conn).get_current_revision() is not None
    engine.dispose()
