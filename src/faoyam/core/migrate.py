"""Running Alembic from code: ``faoyam db upgrade`` and the service's start-up."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from faoyam.core.tables import every_table

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def revision(url: str, message: str) -> None:
    """Autogenerate a migration. Privacy declarations live in ``info``, which Alembic would
    render into the migration; they are model metadata, not schema, so hide them meanwhile."""
    saved = []
    for t in every_table():
        saved.append((t, dict(t.info)))
        t.info.clear()
        for c in t.columns:
            saved.append((c, dict(c.info)))
            c.info.clear()
    try:
        command.revision(alembic_config(url), message=message, autogenerate=True)
    finally:
        for obj, info in saved:
            obj.info.update(info)


async def upgrade_async(url: str) -> None:
    await asyncio.to_thread(upgrade, url)
