"""The ``faoyam`` command: run the service, manage the database, serve privacy requests.

    faoyam serve            run the service (migrates the database first)
    faoyam demo             run it with simulated cameras bound to a demo account
    faoyam db upgrade       apply migrations
    faoyam privacy check    list undeclared personal data (exit 1 if any)
    faoyam privacy export   write everything about an account to a file
    faoyam privacy erase    erase an account and everything about it
    faoyam privacy purge    remove data past its retention
    faoyam outbox           show mail and SMS written to the local outbox
    faoyam blobs check      find files no record uses, and records whose file is gone
    faoyam staff add        create a back-office account (prints its enrolment link)

Commands that read state (outbox, privacy requests, device keys) take ``--data-dir``, say
which data directory they use, and refuse one that holds no faoyam database instead of
creating it. An unexpected error prints one line; ``FAOYAM_DEBUG=1`` shows the traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from faoyam.core.commands import DataDirOption, FriendlyGroup, state_settings
from faoyam.core.config import Settings
from faoyam.privacy import blobs_cli

# Commands import what they use inside their own body, so that ``faoyam --help`` and a
# light command start fast (importing the whole app takes about 2 s). Start-up speed is
# the only reason for a function-local import of a faoyam module, and only in CLI modules
# (docs/decisions/layers.md; tests/test_layers.py checks it).

app = typer.Typer(help="faoyam: an open, self-hostable smart-camera cloud.", no_args_is_help=True,
                  cls=FriendlyGroup, pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema.")
privacy_app = typer.Typer(help="Data-subject requests and retention.")
app.add_typer(db_app, name="db")
app.add_typer(privacy_app, name="privacy")
staff_app = typer.Typer(help="Back-office staff accounts (roles, TOTP enrolment; docs/staff-back-office.md).",
                        no_args_is_help=True)
app.add_typer(staff_app, name="staff")


def _add_devices_cli() -> None:
    from faoyam.devices import cli as devices_cli

    app.add_typer(devices_cli.app, name="devices")
    app.command("simulate", help="Run simulated cameras, an NVR and a doorbell against a faoyam broker.")(devices_cli.simulate)


_add_devices_cli()
app.add_typer(blobs_cli.app, name="blobs")
console = Console(stderr=True, soft_wrap=True)


def _settings(**overrides) -> Settings:
    s = Settings(**{k: v for k, v in overrides.items() if v is not None})
    s.ensure_dirs()
    return s


@app.command()
def serve(host: Annotated[str | None, typer.Option(help="address the web app listens on")] = None,
          port: Annotated[int | None, typer.Option(help="port the web app listens on")] = None,
          data_dir: Annotated[Path | None, typer.Option(help="where the embedded defaults keep state")] = None,
          demo: Annotated[bool, typer.Option(help="bind simulated devices to a demo account")] = False,
          role: Annotated[list[str] | None, typer.Option(
              "--role", help="run only this role: web, gateway or media (repeat it or give a comma list; "
              "default: all, one process each)")] = None,
          no_migrate: Annotated[bool, typer.Option("--no-migrate", hidden=True,
                                                   help="the supervisor migrated already")] = False):
    """Run the service: the web app, the device gateway and the media worker, one process
    each (see docs/process-roles.md); with --role, only those roles, for several nodes."""
    from faoyam import roles as process_roles
    from faoyam.core.migrate import upgrade

    try:
        wanted = process_roles.parse_roles(role)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from None
    s = _settings(host=host, port=port, data_dir=data_dir, demo=demo or None)
    if not no_migrate:
        with console.status("Migrating the database…"):
            upgrade(s.db_url)
    if len(wanted) > 1:
        options = [*(["--host", s.host, "--port", str(s.port)]), "--data-dir", str(s.data_dir.resolve()),
                   *(["--demo"] if s.demo else [])]
        console.print(f"[bold green]faoyam[/] {', '.join(wanted)} on http://{s.host}:{s.port}  "
                      f"(data in {s.data_dir.resolve()})")
        raise typer.Exit(process_roles.run_supervised(s, wanted, options))
    (only,) = wanted
    if only == "web":
        import uvicorn

        from faoyam.app import create_app

        console.print(f"[bold green]faoyam[/] web on http://{s.host}:{s.port}  (data in {s.data_dir.resolve()})")
        uvicorn.run(create_app(s, roles=frozenset({"web"})), host=s.host, port=s.port, access_log=False,
                    log_config=None,
                    # X-Forwarded-For is read by faoyam.core.http, from trusted_proxies only.
                    proxy_headers=False)
    else:
        asyncio.run(process_roles.run_workers(s, [only]))


@app.command()
def demo(port: int = typer.Option(8080, help="the web app's port"),
         data_dir: DataDirOption = None):
    """Run the service with a demo account and simulated cameras (see README)."""
    import os
    import socket

    s = Settings()

    def taken(host: str, number: int) -> bool:
        """Does something already listen on this port (another broker, RTMP server, …)?"""
        with socket.socket() as probe:
            return probe.connect_ex((host if host not in ("0.0.0.0", "") else "127.0.0.1", number)) == 0

    if s.mqtt_mode == "embedded" and s.mqtt_port and "FAOYAM_MQTT_PORT" not in os.environ \
            and taken(s.mqtt_host, s.mqtt_port):
        # Another broker has the MQTT port (a Mosquitto service, say): the demo's own
        # broker takes any free port; its simulated devices find it by themselves.
        console.print(f"[yellow]port {s.mqtt_port} is taken by another MQTT broker; "
                      "the demo's broker uses a free port instead[/]")
        os.environ["FAOYAM_MQTT_PORT"] = "0"
    if s.media_rtmp_port and "FAOYAM_MEDIA_RTMP_PORT" not in os.environ and taken("127.0.0.1", s.media_rtmp_port):
        # Another RTMP server has the port: the media role binds a free one and tells the
        # simulated cameras with each start_stream.
        console.print(f"[yellow]port {s.media_rtmp_port} is taken; the demo's RTMP ingest uses a free port[/]")
        os.environ["FAOYAM_MEDIA_RTMP_PORT"] = "0"
    if "FAOYAM_MEDIA_HTTP_PORT" not in os.environ and taken("127.0.0.1", s.media_http_port):
        # The web process must know where browsers find the media worker, so the free port
        # is chosen here, before both processes start, not bound as 0.
        with socket.socket() as free:
            free.bind(("127.0.0.1", 0))
            other = free.getsockname()[1]
        console.print(f"[yellow]port {s.media_http_port} is taken; live video is served on {other}[/]")
        os.environ["FAOYAM_MEDIA_HTTP_PORT"] = str(other)
    serve(host="127.0.0.1", port=port, data_dir=data_dir, demo=True)


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="the migration to reach (default: the newest)"),
               data_dir: DataDirOption = None):
    """Create or update the database schema (migrations up to REVISION)."""
    from faoyam.core.migrate import upgrade

    s = _settings(data_dir=data_dir)
    console.print(f"data directory: {s.data_dir.resolve()}")
    upgrade(s.db_url, revision)
    console.print("[green]database is up to date[/]")


@db_app.command("revision")
def db_revision(message: str = typer.Option(..., "-m", help="what the migration changes (its file name)")):
    """(developers) Write a new migration from the difference between the models and the database."""
    from faoyam import models  # noqa: F401 - autogenerate compares every table
    from faoyam.core.migrate import revision

    revision(_settings().db_url, message)


@privacy_app.command("check")
def privacy_check():
    """Every column and blob kind must be declared; lists what is not."""
    from faoyam import models  # noqa: F401 - check every table
    from faoyam.privacy.classification import problems

    found = problems()
    for p in found:
        console.print(f"[red]✗[/] {p}")
    if found:
        raise typer.Exit(1)
    console.print("[green]every column and blob kind is declared[/]")


async def _with_ctx(settings: Settings, fn):
    from faoyam import models  # noqa: F401 - the privacy engine sees every table
    from faoyam.core.context import Context

    ctx = Context.build(settings)
    try:
        return await fn(ctx)
    finally:
        await ctx.close()


async def _user_id(ctx, account: str) -> str:
    from faoyam.accounts.service import find_user_id

    if "@" in account or account.startswith("+"):
        uid = await find_user_id(ctx, account)
        if uid is None:
            console.print("[red]no such account[/]")
            raise typer.Exit(2)
        return uid
    return account


@privacy_app.command("export")
def privacy_export(account: str = typer.Argument(..., help="user id, email or +phone"),
                   out: Path = typer.Option(Path("export.zip"), "-o", help="the ZIP file to write"),
                   reason: str = typer.Option("", help="why (recorded in the audit log)"),
                   data_dir: DataDirOption = None):
    """Write everything held about an account to a ZIP file (the person's right of access and to a copy).

    Recorded in the audit log (``operator.export``, by the command line)."""
    from faoyam.privacy.export import write_zip_file
    from faoyam.staff import audit

    async def run(ctx):
        uid = await _user_id(ctx, account)
        await audit.record(ctx, None, "operator.export", uid, reason, {"via": "cli"})
        return await write_zip_file(ctx, uid, out)

    n = asyncio.run(_with_ctx(state_settings(data_dir), run))
    console.print(f"[green]wrote {out}[/]: {n:,} bytes")


@privacy_app.command("erase")
def privacy_erase(account: str = typer.Argument(..., help="user id, email or +phone"),
                  yes: bool = typer.Option(False, "--yes", help="do not ask"),
                  reason: str = typer.Option("", help="why (recorded in the audit log)"), data_dir: DataDirOption = None):
    """Erase an account and everything about it (on the person's request, or a reported child's account).

    Recorded in the audit log (``operator.erase``, by the command line), which the erasure keeps."""
    s = state_settings(data_dir)
    if not yes and not typer.confirm(f"Erase {account} and all its data? This cannot be undone"):
        raise typer.Exit(1)
    from faoyam.privacy.subjects import erase_subject, resolve_subject
    from faoyam.staff import audit

    async def run(ctx):
        uid = await _user_id(ctx, account)
        async with ctx.db.session() as s:
            subject = await resolve_subject(s, uid)
        report = await erase_subject(ctx.db, ctx.blobs, subject)
        await audit.record(ctx, None, "operator.erase", uid, reason,
                           {"via": "cli", "rows": report.rows, "blobs": report.blobs, "record": report.record_id})
        return report

    r = asyncio.run(_with_ctx(s, run))
    console.print(f"[green]erased[/] {r.rows} rows and {r.blobs} files (record {r.record_id})")


@privacy_app.command("purge")
def privacy_purge(data_dir: DataDirOption = None):
    """Remove rows and files kept past their declared retention (the service also does it hourly)."""
    from faoyam.privacy.subjects import purge_expired

    r = asyncio.run(_with_ctx(state_settings(data_dir), lambda ctx: purge_expired(ctx.db, ctx.blobs)))
    console.print(f"[green]purged[/] {r.rows} rows and {r.blobs} files")


@privacy_app.command("child-reports")
def child_reports(all_: bool = typer.Option(False, "--all", help="resolved ones too"), data_dir: DataDirOption = None):
    """Reports that an account belongs to a child under 16, waiting for the operator."""
    from faoyam.privacy.children import list_reports

    rows = asyncio.run(_with_ctx(state_settings(data_dir), lambda ctx: list_reports(ctx, None if all_ else "open")))
    out = Console()
    if not rows:
        out.print("no reports")
    for r in rows:
        out.print(f"[bold]{r.id}[/]  {r.created_at:%Y-%m-%d %H:%M}  {r.status}  reported: {r.reported or '—'}"
                  f"  reporter: {r.reporter_email or '—'}\n    {r.details or ''}")


@privacy_app.command("child-report-resolve")
def child_report_resolve(report_id: str = typer.Argument(..., help="the report's id (from child-reports)"),
                         reject: bool = typer.Option(False, help="the report is unfounded"), data_dir: DataDirOption = None):
    """Erase the reported account's data (or reject the report); the report keeps no personal data."""
    from faoyam.accounts.service import find_user_id
    from faoyam.privacy.children import resolve_report

    r = asyncio.run(_with_ctx(state_settings(data_dir), lambda ctx: resolve_report(ctx, report_id, erase=not reject,
                                                         find_account=lambda v: find_user_id(ctx, v))))
    console.print(f"[green]resolved[/]: {r['erased_rows']} rows erased")


@staff_app.command("add")
def staff_add(email: str = typer.Option(..., help="the staff member's work email address"),
              role: str = typer.Option(..., help="admin (operator), dpo (data protection officer) or support"),
              show_secret: bool = typer.Option(False, "--show-secret", help="also print the TOTP key and otpauth:// URI"),
              data_dir: DataDirOption = None):
    """Create a staff account and print its one-time enrolment link (password + authenticator app).

    The link is valid ``staff_enrol_hours`` (72), once; the account signs in only after
    enrolment. --show-secret prints the TOTP key too, for a set-up without a browser."""
    from faoyam.staff.permissions import ROLES
    from faoyam.staff.service import add_staff

    if role not in ROLES:
        console.print(f"[red]unknown role {role!r}[/]: choose {', '.join(ROLES)}")
        raise typer.Exit(2)
    s = state_settings(data_dir)
    new = asyncio.run(_with_ctx(s, lambda ctx: add_staff(ctx, email, role)))
    out = Console(soft_wrap=True)
    out.print(f"staff account {new.email} ({new.role}) created")
    out.print(f"enrolment link (valid {s.staff_enrol_hours} h, once): {s.base_url.rstrip('/')}/staff/enrol/{new.enrol_token}")
    if show_secret:
        out.print(f"TOTP key: {new.secret}")
        out.print(f"otpauth URI: {new.otpauth_uri}")


@staff_app.command("disable")
def staff_disable(email: str = typer.Option(..., help="the staff member's work email address"),
                  data_dir: DataDirOption = None):
    """End a staff account: signed out now, cannot sign in again; its audit entries stay."""
    from faoyam.staff.service import disable_staff

    asyncio.run(_with_ctx(state_settings(data_dir), lambda ctx: disable_staff(ctx, email)))
    Console().print(f"staff account {email} disabled")


@app.command()
def outbox(to: str = typer.Option(None, help="only messages to this address"),
           as_json: bool = typer.Option(False, "--json", help="print the messages as JSON on stdout"),
           data_dir: DataDirOption = None):
    """Mail and SMS the embedded default wrote to the outbox instead of sending."""
    msgs = asyncio.run(_with_ctx(state_settings(data_dir), lambda ctx: ctx.messenger.outbox(to)))
    if as_json:
        json.dump(msgs, sys.stdout, ensure_ascii=False, indent=2)
        return
    out = Console()
    if not msgs:
        out.print("the outbox is empty")
    for m in msgs:
        out.rule(f"{m['created_at'][:19]}  {m['channel']} to {m['to']}  {m['subject']}")
        out.print(m["text"].strip())


def main() -> None:  # pragma: no cover
    app()
