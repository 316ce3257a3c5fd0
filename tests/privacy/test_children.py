"""CH1/CH2: a report of a child's data leads to finding and deleting it."""

import pytest
from sqlalchemy import select

from faoyam.privacy.children import list_reports, resolve_report
from faoyam.privacy.models import ChildReport
from tests.conftest import STRONG, register


async def _find(ctx, value):
    from faoyam.accounts.service import find_user_by_contact

    u = await find_user_by_contact(ctx, value)
    return u.id if u else None


@pytest.mark.req("CH2")
async def test_child_report_leads_to_erasure(client, ctx):
    await register(client, ctx, email="kid.k9@example.com")
    r = await client.post("/api/v1/privacy/child-reports",
                          json={"reported": "kid.k9@example.com", "reporter_email": "Parent@example.com", "details": "my son, 12"})
    assert r.status_code == 202
    # The privacy contact is told.
    assert (await ctx.messenger.outbox(ctx.settings.dpo_email))[0]["template"] == "child_report"
    (report,) = await list_reports(ctx)
    assert report.reporter_email == "parent@example.com"
    out = await resolve_report(ctx, report.id, erase=True, find_account=lambda v: _find(ctx, v))
    assert out["erased_rows"] >= 3
    assert (await client.post("/api/v1/sessions", json={"login": "kid.k9@example.com", "password": STRONG})).status_code == 401
    async with ctx.db.session() as s:
        row = (await s.execute(select(ChildReport))).scalar_one()
    assert row.status == "erased" and row.reported is None and row.reporter_email is None and row.details is None
    with pytest.raises(Exception):
        await resolve_report(ctx, report.id, erase=True, find_account=lambda v: _find(ctx, v))


@pytest.mark.req("CH2")
async def test_rejected_report_keeps_the_account_and_forgets_the_report(client, ctx):
    await register(client, ctx, email="adult@example.com")
    await client.post("/api/v1/privacy/child-reports", json={"reported": "adult@example.com"})
    (report,) = await list_reports(ctx)
    await resolve_report(ctx, report.id, erase=False, find_account=lambda v: _find(ctx, v))
    assert (await client.post("/api/v1/sessions", json={"login": "adult@example.com", "password": STRONG})).status_code == 201
    assert await list_reports(ctx) == []


async def test_child_report_bad_input(client):
    r = await client.post("/api/v1/privacy/child-reports", json={"reported": "   "})
    assert r.status_code == 422
    r = await client.post("/api/v1/privacy/child-reports", json={"reported": "x@example.com", "reporter_email": "nope"})
    assert r.status_code == 422 and r.json()["code"] == "invalid-email"
