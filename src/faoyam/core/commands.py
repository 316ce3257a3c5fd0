"""What every ``faoyam`` command shares: the ``--data-dir`` option, the check that it holds
state, and the top-level error handler.

- ``DataDirOption``: the option, for a command's signature (``data_dir: DataDirOption = None``).
- ``state_settings(data_dir)``: the settings of a command that *reads* state. It says on
  stderr which data directory it uses and refuses, in one line and with exit code 1, a
  missing or empty one, instead of creating ``./faoyam-data`` and crashing on a missing table.
- ``FriendlyGroup``: the Typer group class whose commands print one line instead of a
  traceback when they fail (``FAOYAM_DEBUG=1`` lets the traceback through).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from faoyam.core import datadir
from faoyam.core.config import Settings

DEBUG_ENV = "FAOYAM_DEBUG"

DataDirOption = Annotated[Path | None, typer.Option(
    "--data-dir", help="the data directory to use (default: FAOYAM_DATA_DIR, else ./faoyam-data)",
    file_okay=False)]


def settings(**overrides) -> Settings:
    """Settings from the environment and config file, with the given (non-None) overrides."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def state_settings(data_dir: Path | None = None, **overrides) -> Settings:
    """Settings for a command that works on an existing installation, or exit 1 with one line."""
    s = settings(data_dir=data_dir, **overrides)
    problem = datadir.missing_state(s)
    if problem:
        typer.echo(f"faoyam: {problem}", err=True)
        raise typer.Exit(1)
    typer.echo(f"data directory: {datadir.describe(s)}", err=True)
    return s


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 300 characters)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    line = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return line if len(line) <= 300 else line[:297] + "..."


class FriendlyGroup(TyperGroup):
    """Runs a command; an unexpected error becomes one line on stderr and exit code 1.

    Typer's and Click's own exits (``typer.Exit``, usage errors, Ctrl-C's ``Abort``) pass
    through unchanged. The group is the top one, so the commands of nested groups
    (``faoyam db …``, ``faoyam privacy …``, ``faoyam devices …``) are covered too."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if _is_cli_signal(exc) or os.environ.get(DEBUG_ENV, "") not in ("", "0"):
                raise
            typer.echo(f"faoyam: error: {one_line(exc)}  ({DEBUG_ENV}=1 shows the traceback)", err=True)
            raise typer.Exit(1) from None


def _is_cli_signal(exc: Exception) -> bool:
    """Typer's (vendored Click's) usage errors carry an exit code and print themselves."""
    return hasattr(exc, "exit_code") and type(exc).__module__.split(".")[0] in ("typer", "click")
