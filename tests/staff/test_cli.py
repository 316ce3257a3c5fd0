"""``faoyam staff add``: the account waits for enrolment through the printed link."""

from __future__ import annotations

import asyncio
import re

from typer.testing import CliRunner

from faoyam.cli import app
from faoyam.staff import service


async def test_staff_add_prints_a_working_enrolment_link(ctx, settings, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    if settings.database_url:
        monkeypatch.setenv("FAOYAM_DATABASE_URL", settings.database_url)
    argv = ["staff", "add", "--email", "DPO@Operator.Example", "--role", "dpo", "--show-secret",
            "--data-dir", str(settings.data_dir)]
    r = await asyncio.to_thread(CliRunner().invoke, app, argv)
    assert r.exit_code == 0, r.output
    assert "staff account dpo@operator.example (dpo) created" in r.stdout
    token = re.search(r"/staff/enrol/(\S+)", r.stdout).group(1)
    secret = re.search(r"TOTP key: (\S+)", r.stdout).group(1)
    assert "otpauth://totp/" in r.stdout
    email, stored, uri = await service.enrolment(ctx, token)
    assert (email, stored) == ("dpo@operator.example", secret) and secret in uri

    bad = await asyncio.to_thread(CliRunner().invoke, app, ["staff", "add", "--email", "x@operator.example",
                                                            "--role", "root", "--data-dir", str(settings.data_dir)])
    assert bad.exit_code == 2 and "unknown role" in bad.output
