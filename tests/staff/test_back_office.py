"""The back office: sign-in with password + TOTP, default deny, the customer actions and
their audit entries, and the audit log's append-only rule."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
import zipfile

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import DBAPIError

from faoyam.accounts.service import get_user_brief
from faoyam.core.database import utcnow
from faoyam.privacy.export import export_document
from faoyam.privacy.models import ErasureRecord
from faoyam.privacy.subjects import erase_subject, resolve_subject
from faoyam.staff import audit, service, totp
from faoyam.staff.models import AuditEntry, StaffAccount, StaffSession
from faoyam.staff.permissions import PERMISSIONS, PUBLIC, ROLES
from tests.conftest import DB_KIND, register
from tests.staff.helpers import code, enrolled, sign_in, signed_in

CUSTOMER = "nok@example.com"


async def _actions(ctx, subject_id=None) -> list[str]:
    return [e.action for e in reversed(await audit.entries(ctx, subject_id=subject_id))]


def _dependencies(dependant):
    for d in dependant.dependencies:
        yield d.call
        yield from _dependencies(d)


@pytest.mark.req("SEC1")
def test_every_staff_route_declares_a_permission(app):
    """Default deny: a /staff route without require_staff(...) and not in PUBLIC fails here."""
    seen, undeclared = set(), []
    for rc in iter_route_contexts(app.routes):
        if not rc.path.startswith("/staff"):
            continue
        for method in sorted(rc.methods - {"HEAD"}):
            key = f"{method} {rc.path}"
            seen.add(key)
            declared = [getattr(c, "staff_permission", None) for c in _dependencies(rc.route.dependant)]
            declared = [p for p in declared if p]
            if key in PUBLIC:
                assert not declared, key
            elif len(declared) != 1 or declared[0] not in PERMISSIONS:
                undeclared.append(key)
    assert len(seen) >= 10 and PUBLIC <= seen
    assert undeclared == []
    assert all(perms <= set(PERMISSIONS) for perms in ROLES.values())
    assert "customers:erase" not in ROLES["support"] and "audit:read" not in ROLES["support"]


@pytest.mark.req("SEC1")
async def test_sign_in_needs_the_password_and_a_fresh_totp_code(app, ctx, client):
    staff = await enrolled(ctx)
    assert (await sign_in(client, staff, code_="000000")).status_code == 401
    assert (await sign_in(client, staff, password="wrong-password-1")).status_code == 401
    assert "faoyam_staff" not in client.cookies
    good = code(staff)
    r = await sign_in(client, staff, code_=good)
    assert r.status_code == 303 and r.headers["location"] == "/staff/customers"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/staff" in cookie
    assert (await client.get("/staff/customers")).status_code == 200
    # The same code again (seen over a shoulder, say) does not sign in a second time.
    other = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    async with other:
        assert (await sign_in(other, staff, code_=good)).status_code == 401
        assert "faoyam_staff" not in other.cookies
    actions = await _actions(ctx)
    assert actions.count("staff.signin") == 1 and actions.count("staff.signin_failed") == 3


@pytest.mark.req("SEC1")
async def test_sign_in_is_rate_limited(ctx, client):
    staff = await enrolled(ctx)
    for _ in range(ctx.settings.login_max_failures):
        assert (await sign_in(client, staff, code_="000000")).status_code == 401
    # Now even the right password and code are refused for a while.
    assert (await sign_in(client, staff)).status_code == 429


@pytest.mark.req("SEC1")
async def test_no_staff_session_no_entry(app, ctx, client):
    customer = await register(client, ctx, email=CUSTOMER)
    uid = customer["user_id"]
    # Signed out: pages go to the staff sign-in, changes get 401.
    r = await client.get("/staff/customers")
    assert r.status_code == 303 and r.headers["location"].startswith("/staff/signin?next=/staff/customers")
    r = await client.post(f"/staff/customers/{uid}/erase", data={"reason": "x", "confirm": "yes"})
    assert (r.status_code, r.json()["code"]) == (401, "staff-signed-out")
    # A customer's session, by bearer token or by cookie, is nothing here.
    bearer = {"Authorization": f"Bearer {customer['token']}"}
    assert (await client.get("/staff/customers", headers=bearer)).status_code == 303
    client.cookies.set("faoyam_session", customer["token"])
    assert (await client.get(f"/staff/customers/{uid}")).status_code == 303
    r = await client.post(f"/staff/customers/{uid}/erase", data={"reason": "x", "confirm": "yes",
                                                                 "csrf_token": customer["csrf_token"]}, headers=bearer)
    assert r.status_code == 401
    assert await get_user_brief(ctx, uid) is not None
    assert await _actions(ctx) == []


@pytest.mark.req("SEC1", "R3")
async def test_support_reads_but_cannot_erase_export_or_read_the_log(app, ctx, client):
    uid = (await register(client, ctx, email=CUSTOMER))["user_id"]
    support = await enrolled(ctx, "help@operator.example", "support")
    async with signed_in(app, support) as (s, csrf):
        r = await s.get("/staff/customers", params={"q": CUSTOMER})
        assert r.status_code == 303 and r.headers["location"] == f"/staff/customers/{uid}"
        page = await s.get(r.headers["location"])
        assert page.status_code == 200 and CUSTOMER in page.text
        assert "/erase" not in page.text and "/export" not in page.text  # no buttons it may not use
        r = await s.post(f"/staff/customers/{uid}/erase", data={"reason": "asked", "confirm": "yes", "csrf_token": csrf})
        assert (r.status_code, r.json()["code"]) == (403, "staff-forbidden")
        r = await s.post(f"/staff/customers/{uid}/export", data={"reason": "asked", "csrf_token": csrf})
        assert (r.status_code, r.json()["code"]) == (403, "staff-forbidden")
        r = await s.get("/staff/audit")
        assert (r.status_code, r.json()["code"]) == (403, "staff-forbidden")
    assert await get_user_brief(ctx, uid) is not None
    assert await _actions(ctx, uid) == ["customer.search", "customer.view"]


@pytest.mark.req("SEC1")
async def test_changes_need_the_csrf_token(app, ctx, client):
    uid = (await register(client, ctx, email=CUSTOMER))["user_id"]
    dpo = await enrolled(ctx)
    async with signed_in(app, dpo) as (s, csrf):
        r = await s.post(f"/staff/customers/{uid}/erase", data={"reason": "asked", "confirm": "yes"})
        assert (r.status_code, r.json()["code"]) == (403, "csrf")
        r = await s.post(f"/staff/customers/{uid}/erase", data={"reason": "asked", "confirm": "yes", "csrf_token": csrf},
                         headers={"Origin": "https://evil.example"})
        assert (r.status_code, r.json()["code"]) == (403, "csrf")
    assert await get_user_brief(ctx, uid) is not None


@pytest.mark.req("R1", "R6", "R3")
async def test_export_and_erase_are_audited_with_their_reason(app, ctx, client):
    uid = (await register(client, ctx, email=CUSTOMER))["user_id"]
    dpo = await enrolled(ctx)
    async with signed_in(app, dpo) as (s, csrf):
        # No reason, no export (and no entry).
        r = await s.post(f"/staff/customers/{uid}/export", data={"reason": " ", "csrf_token": csrf})
        assert r.status_code == 422
        r = await s.post(f"/staff/customers/{uid}/export", data={"reason": "DSAR by email #41", "csrf_token": csrf})
        assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
        names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
        assert names
        r = await s.post(f"/staff/customers/{uid}/erase", data={"reason": "erasure request #42", "csrf_token": csrf})
        assert r.status_code == 422  # not confirmed
        assert await get_user_brief(ctx, uid) is not None
        r = await s.post(f"/staff/customers/{uid}/erase",
                         data={"reason": "erasure request #42", "confirm": "yes", "csrf_token": csrf})
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/customers?erased=")
        # The log page shows it all, after the account is gone.
        log_page = await s.get("/staff/audit", params={"subject": uid})
        assert log_page.status_code == 200 and "erasure request #42" in log_page.text
    assert await get_user_brief(ctx, uid) is None
    entries = {e.action: e for e in await audit.entries(ctx, subject_id=uid)}
    assert entries["customer.export"].reason == "DSAR by email #41" and entries["customer.export"].staff_id == dpo.id
    assert entries["customer.erase"].reason == "erasure request #42"
    assert entries["customer.erased"].detail["rows"] >= 1
    async with ctx.db.session() as db:
        rec = await db.get(ErasureRecord, entries["customer.erased"].detail["record"])
    assert rec.reason == "staff_erasure"
    # The two refused attempts showed the customer page again: reads, audited as such.
    assert await _actions(ctx, uid) == ["customer.view", "customer.export", "customer.view",
                                        "customer.erase", "subject.erased", "customer.erased"]


@pytest.mark.req("R1", "R3")
async def test_the_log_is_in_the_subjects_export_and_survives_their_erasure(app, ctx, client):
    uid = (await register(client, ctx, email=CUSTOMER))["user_id"]
    dpo = await enrolled(ctx)
    await audit.record(ctx, dpo.id, "customer.view", uid)
    async with ctx.db.session() as s:
        subject = await resolve_subject(s, uid)
    doc = await export_document(ctx.db, ctx.blobs, subject)
    text_ = str(doc)
    assert "customer.view" in text_ and dpo.id not in text_  # the staff member's id is theirs, not the customer's
    await erase_subject(ctx.db, ctx.blobs, subject)
    assert await _actions(ctx, uid) == ["customer.view", "subject.erased"]


@pytest.mark.req("R3")
async def test_the_audit_log_is_append_only(ctx):
    entry_id = await audit.record(ctx, None, "test.entry", detail={"n": 1})
    # The ORM refuses to change or delete an entry ...
    with pytest.raises(RuntimeError, match="append-only"):
        async with ctx.db.transaction() as s:
            (await s.get(AuditEntry, entry_id)).action = "changed"
    with pytest.raises(RuntimeError, match="append-only"):
        async with ctx.db.transaction() as s:
            await s.delete(await s.get(AuditEntry, entry_id))
    # ... and on PostgreSQL the database refuses even plain SQL.
    if DB_KIND == "postgres":
        for statement in (update(AuditEntry).values(action="changed"), delete(AuditEntry)):
            with pytest.raises(DBAPIError, match="append-only"):
                async with ctx.db.transaction() as s:
                    await s.execute(statement)
    async with ctx.db.session() as s:
        assert (await s.execute(select(AuditEntry.action))).scalars().all() == ["test.entry"]


@pytest.mark.req("R3")
async def test_retention_deletes_only_entries_past_the_operators_period(ctx):
    old = utcnow() - dt.timedelta(days=ctx.settings.audit_retention_days + 1)
    async with ctx.db.transaction() as s:
        s.add(AuditEntry(staff_id=None, action="old.entry", detail={}, at=old))
    await audit.record(ctx, None, "new.entry")
    assert await audit.purge(ctx) == 1
    assert sorted(await _actions(ctx)) == ["audit.purge", "new.entry"]
    if DB_KIND == "postgres":  # the purge's permission does not outlive its transaction
        with pytest.raises(DBAPIError, match="append-only"):
            async with ctx.db.transaction() as s:
                await s.execute(text("DELETE FROM audit_log"))


async def test_enrolment_link_works_once(app, ctx, client):
    new = await service.add_staff(ctx, "new@operator.example", "support")
    page = await client.get(f"/staff/enrol/{new.enrol_token}")
    assert page.status_code == 200 and new.secret in page.text and "otpauth://totp/" in page.text
    r = await client.post(f"/staff/enrol/{new.enrol_token}", data={"password": "quarry-lantern-velvet-62",
                                                                   "code": "000000"})
    assert r.status_code == 422
    r = await client.post(f"/staff/enrol/{new.enrol_token}", data={"password": "quarry-lantern-velvet-62",
                                                                   "code": totp.code_at(new.secret, time.time())})
    assert r.status_code == 303
    assert (await client.get(f"/staff/enrol/{new.enrol_token}")).status_code == 410


@pytest.mark.req("SEC1")
async def test_staff_sessions_are_short_and_end_with_the_account(app, ctx, client):
    dpo = await enrolled(ctx)
    async with signed_in(app, dpo) as (s, csrf):
        async with ctx.db.transaction() as db:  # half an hour without use
            await db.execute(update(StaffSession).values(
                last_seen_at=utcnow() - dt.timedelta(minutes=ctx.settings.staff_session_minutes + 1)))
        r = await s.get("/staff/customers")
        assert r.status_code == 303 and r.headers["location"].startswith("/staff/signin")
    async with signed_in(app, dpo, offset=30) as (s, csrf):
        await service.disable_staff(ctx, dpo.email)
        assert (await s.get("/staff/customers")).status_code == 303
    # A disabled account cannot sign in again, even with everything right (a code no sign-in used).
    async with ctx.db.transaction() as db:
        await db.execute(update(StaffAccount).values(totp_last_step=None))
    assert (await sign_in(client, dpo)).status_code == 401


@pytest.mark.req("SEC1")
async def test_a_cross_site_sign_in_form_is_refused(ctx, client):
    dpo = await enrolled(ctx)
    r = await client.post("/staff/signin", data={"email": dpo.email, "password": "x", "code": code(dpo)},
                          headers={"Origin": "https://evil.example"})
    assert (r.status_code, r.json()["code"]) == (403, "csrf")


@pytest.mark.req("R1", "R3")
async def test_a_persons_own_export_and_deletion_are_in_the_audit_log(ctx, client):
    customer = await register(client, ctx, email=CUSTOMER)
    uid, h = customer["user_id"], {"Authorization": f"Bearer {customer['token']}"}
    assert (await client.get("/api/v1/privacy/export", headers=h)).status_code == 200
    assert (await client.delete("/api/v1/me", headers=h)).status_code == 200
    entries = list(reversed(await audit.entries(ctx, subject_id=uid)))
    assert [e.action for e in entries] == ["subject.export", "subject.erased"]
    assert all(e.staff_id is None for e in entries)


async def test_command_line_erasure_is_audited(ctx, settings, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from faoyam.accounts.service import create_account
    from faoyam.cli import app as cli

    uid = await create_account(ctx, email=CUSTOMER, phone=None, country="TH", nickname="Nok",
                               password="violet-harbour-kettle-91")
    monkeypatch.chdir(tmp_path)
    if settings.database_url:
        monkeypatch.setenv("FAOYAM_DATABASE_URL", settings.database_url)
    for name, value in settings.model_dump().items():  # the S3 leg: the same blob store
        if name.startswith(("blob_", "s3_")) and value is not None:
            monkeypatch.setenv(f"FAOYAM_{name.upper()}", str(value))
    argv = ["privacy", "erase", CUSTOMER, "--yes", "--reason", "ticket 7", "--data-dir", str(settings.data_dir)]
    r = await asyncio.to_thread(CliRunner().invoke, cli, argv)
    assert r.exit_code == 0, r.output
    [entry] = await audit.entries(ctx, subject_id=uid)
    assert (entry.action, entry.reason, entry.detail["via"]) == ("operator.erase", "ticket 7", "cli")
    assert await get_user_brief(ctx, uid) is None


@pytest.mark.req("CH2")
async def test_the_customer_page_shows_open_child_reports_about_them(app, ctx, client):
    from faoyam.privacy import children

    uid = (await register(client, ctx, email=CUSTOMER))["user_id"]
    report_id = await children.file_report(ctx, None, CUSTOMER.upper(), "looks twelve")
    other = await children.file_report(ctx, None, "someone@example.com", None)
    dpo = await enrolled(ctx)
    async with signed_in(app, dpo) as (s, csrf):
        page = (await s.get(f"/staff/customers/{uid}")).text
    assert report_id in page and other not in page
