"""``faoyam blobs``: look after the blob store (pictures, mail, video).

    faoyam blobs check            report files no record uses and records whose file is gone
    faoyam blobs check --repair   delete the unused files and clear the broken references
"""

from __future__ import annotations

import asyncio
import datetime as dt

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from faoyam.core.commands import DataDirOption, FriendlyGroup, state_settings
from faoyam.core.context import Context
from faoyam.privacy.reconcile import DEFAULT_GRACE, BlobCheck, check_blobs

app = typer.Typer(help="Files in the blob store: check that every file belongs to a record.", no_args_is_help=True,
                  cls=FriendlyGroup, pretty_exceptions_enable=False)
out = Console()
SHOW = 10  # list at most this many keys of each finding


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


@app.command("check")
def check(
    repair: bool = typer.Option(False, "--repair", help="Delete files no record uses (once older than the grace "
                                "period) and clear references to files that are gone."),
    grace_hours: float = typer.Option(DEFAULT_GRACE.total_seconds() / 3600, "--grace-hours",
                                      help="Files younger than this may still be being saved; they are never deleted."),
    force: bool = typer.Option(False, "--force", help="Repair even when most files look unused (usually a sign "
                               "that the service is using the wrong database)."),
    data_dir: DataDirOption = None,
):
    """Check that every file in the blob store belongs to a record, and every record's file exists."""
    settings = state_settings(data_dir)

    async def run() -> BlobCheck:
        ctx = Context.build(settings)
        try:
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed:,} files"),
                          TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
                task = bar.add_task("Checking the blob store", total=None)
                return await check_blobs(ctx.db, ctx.blobs, repair_orphans=repair, repair_dangling=repair, force=force,
                                         grace=dt.timedelta(hours=grace_hours),
                                         on_file=lambda n: bar.update(task, completed=n))
        finally:
            await ctx.close()

    r = asyncio.run(run())
    report(r, repair=repair, grace_hours=grace_hours)
    if r.refused or (not repair and not r.clean):
        raise typer.Exit(1)


def report(r: BlobCheck, *, repair: bool, grace_hours: float) -> None:
    out.print(f"Checked {_plural(r.stored, 'file')} in the blob store against "
              f"{_plural(r.referenced, 'file reference')} in the database.")
    if r.tombstoned:
        out.print(f"  {_plural(r.tombstoned, 'file is', 'files are')} waiting to be deleted after an erasure "
                  "or a change (this happens on its own).")
    if r.clean:
        out.print("[green]✓[/] Every file belongs to a record, and every record's file is there.")
    if r.orphans:
        out.print(f"[yellow]![/] {_plural(len(r.orphans), 'file belongs', 'files belong')} to no record "
                  f"(older than {grace_hours:g} hours):")
        for key in r.orphans[:SHOW]:
            out.print(f"    {key}")
        if len(r.orphans) > SHOW:
            out.print(f"    … and {len(r.orphans) - SHOW:,} more")
    if r.recent:
        out.print(f"  {_plural(len(r.recent), 'newer file belongs', 'newer files belong')} to no record yet "
                  "and may still be being saved: left alone.")
    if r.dangling:
        out.print(f"[yellow]![/] {_plural(len(r.dangling), 'record points', 'records point')} to a file that is gone:")
        for d in r.dangling[:SHOW]:
            fix = "" if d.nullable else "  (required: cannot be cleared, restore the file)"
            out.print(f"    {d.table}.{d.column} → {d.key}{fix}")
        if len(r.dangling) > SHOW:
            out.print(f"    … and {len(r.dangling) - SHOW:,} more")
    if r.refused:
        out.print(f"[red]✗[/] Not repaired: {r.refused}. Check the settings; use --force if you are sure.")
    elif repair:
        out.print(f"Repaired: deleted {_plural(r.deleted, 'unused file')}, "
                  f"cleared {_plural(r.nulled, 'broken reference')}.")
    elif not r.clean:
        out.print("Run [bold]faoyam blobs check --repair[/] to delete the unused files and clear the broken references.")
