"""The ``faoyam`` command as a new user meets it: run in the wrong directory it says which
data directory it looked at and stops in one line, creating nothing; ``--data-dir`` points it
elsewhere; an unexpected error is one line, not a traceback (``FAOYAM_DEBUG=1`` shows it)."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from faoyam.cli import app

# Every command that reads an installation's state (the database, the outbox, device keys).
STATE_COMMANDS = [
    ["outbox"],
    ["outbox", "--json"],
    ["privacy", "export", "someone@example.com", "-o", "x.zip"],
    ["privacy", "erase", "someone@example.com", "--yes"],
    ["privacy", "purge"],
    ["privacy", "child-reports"],
    ["privacy", "child-report-resolve", "abc"],
    ["devices", "rotate-keys"],
    ["devices", "simulate"],
    ["simulate"],
    ["devices", "bridge", "--url", "rtsp://cam/stream"],
]


@pytest.fixture
def empty_cwd(tmp_path, monkeypatch) -> Path:
    """An empty working directory, and no FAOYAM_* setting that would point elsewhere."""
    for name in list(os.environ):
        if name.startswith("FAOYAM_"):
            monkeypatch.delenv(name)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


def _faoyam(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed entry point, as a person runs it."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FAOYAM_")}
    return subprocess.run([sys.executable, "-m", "faoyam", *args], cwd=cwd, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv", STATE_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_state_command_outside_an_installation_refuses_in_one_line_and_creates_nothing(empty_cwd, argv):
    r = CliRunner().invoke(app, argv)
    assert r.exit_code == 1, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert str(empty_cwd / "faoyam-data") in lines[0] and "--data-dir" in lines[0]
    assert "Traceback" not in r.output
    assert list(empty_cwd.iterdir()) == []  # no ./faoyam-data, no export file


def test_an_empty_data_directory_is_refused_and_left_empty(empty_cwd):
    empty = empty_cwd / "d"
    empty.mkdir()
    r = CliRunner().invoke(app, ["outbox", "--data-dir", str(empty)])
    assert r.exit_code == 1
    assert r.stderr.strip() == (f"faoyam: no faoyam database in {empty}; run it where `faoyam serve` keeps its "
                                "data, or pass --data-dir DIR (or FAOYAM_DATA_DIR)")
    assert list(empty.iterdir()) == []


async def test_data_dir_points_a_command_at_an_installation_and_it_says_which(ctx, settings, empty_cwd, monkeypatch):
    """Against the test's own database (SQLite in its data directory, or PostgreSQL)."""
    await ctx.messenger.send_email("new@example.com", "Your code", "Your faoyam code is 123456.", template="code")
    if settings.database_url:
        monkeypatch.setenv("FAOYAM_DATABASE_URL", settings.database_url)
    for name, value in settings.model_dump().items():  # the S3 leg: the same blob store
        if (name.startswith(("blob_", "s3_"))) and value is not None:
            monkeypatch.setenv(f"FAOYAM_{name.upper()}", str(value))
    # In a thread: the command runs its own event loop, as it does from a shell.
    r = await asyncio.to_thread(CliRunner().invoke, app, ["outbox", "--json", "--data-dir", str(settings.data_dir)])
    assert r.exit_code == 0, r.output
    assert f"data directory: {settings.data_dir.resolve()}" in r.stderr
    [msg] = json.loads(r.stdout)
    assert msg["to"] == "new@example.com" and "123456" in msg["text"]
    assert list(empty_cwd.iterdir()) == []


def test_db_upgrade_makes_an_installation_the_state_commands_then_accept(empty_cwd):
    r = CliRunner().invoke(app, ["db", "upgrade", "--data-dir", "site"])
    assert r.exit_code == 0, r.output
    assert f"data directory: {empty_cwd / 'site'}" in r.stderr
    r = CliRunner().invoke(app, ["outbox", "--data-dir", "site"])
    assert r.exit_code == 0, r.output
    assert "the outbox is empty" in r.stdout


def test_an_unreachable_database_is_one_line_without_its_password(empty_cwd, monkeypatch):
    (empty_cwd / "faoyam-data").mkdir()
    monkeypatch.setenv("FAOYAM_DATABASE_URL", "postgresql+asyncpg://op:s3cret-pw@127.0.0.1:1/none")
    r = CliRunner().invoke(app, ["privacy", "purge"])
    assert r.exit_code == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "cannot reach the database" in r.stderr
    assert "s3cret-pw" not in r.output and "op:***@" in r.stderr


def _half_made_installation(root: Path) -> Path:
    """A data directory whose database has the bookkeeping table but none of the others."""
    data = root / "faoyam-data"
    data.mkdir()
    with sqlite3.connect(data / "faoyam.db") as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
    return data


def test_an_unexpected_error_is_one_line_not_a_traceback(tmp_path):
    _half_made_installation(tmp_path)
    r = _faoyam("outbox", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and "File \"" not in r.stderr
    [line] = [x for x in r.stderr.splitlines() if x.startswith("faoyam: error:")]
    assert "no such table" in line and "FAOYAM_DEBUG=1" in line
    assert len(r.stderr.strip().splitlines()) == 2  # "data directory: …" and the error


def test_faoyam_debug_shows_the_traceback(tmp_path):
    _half_made_installation(tmp_path)
    r = _faoyam("outbox", cwd=tmp_path, env={"FAOYAM_DEBUG": "1"})
    assert r.returncode == 1
    assert "Traceback (most recent call last)" in r.stderr and "no such table" in r.stderr
