"""Privacy-layer precision: per-link column scopes, retention in bounded chunks, and the
erasure record's times."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from faoyam.accounts.models import SignInEvent
from faoyam.core.database import utcnow
from faoyam.core.models import RateEvent
from faoyam.privacy import subjects
from faoyam.privacy.export import export_document
from faoyam.privacy.models import ChildReport, ErasureRecord
from faoyam.privacy.subjects import Subject, erase_subject, purge_expired, resolve_subject
from tests.conftest import STRONG, register


async def _subject(ctx, user_id: str) -> Subject:
    async with ctx.db.session() as s:
        return await resolve_subject(s, user_id)


async def _report_row(ctx) -> ChildReport:
    async with ctx.db.session() as s:
        return (await s.execute(select(ChildReport))).scalar_one()


async def _report_rows_for(ctx, subject: Subject) -> list[dict]:
    doc = await export_document(ctx.db, ctx.blobs, subject)
    return doc["records"].get("child_reports", {}).get("rows", [])


@pytest.mark.req("CH2", "R1", "R3")
async def test_a_child_report_shows_and_erases_each_person_only_their_columns(client, ctx):
    parent = await register(client, ctx, email="parent.p7@example.com")
    kid = await register(client, ctx, email="kid.k7@example.com")
    r = await client.post("/api/v1/privacy/child-reports", json={
        "reported": "kid.k7@example.com", "reporter_email": "parent.p7@example.com", "details": "my son, 12"})
    assert r.status_code == 202
    p_subj, k_subj = await _subject(ctx, parent["user_id"]), await _subject(ctx, kid["user_id"])

    # Each export holds the report, with only that person's columns.
    (as_parent,) = await _report_rows_for(ctx, p_subj)
    assert as_parent["reporter_email"] == "parent.p7@example.com" and as_parent["details"] == "my son, 12"
    assert "reported" not in as_parent and as_parent["status"] == "open"
    (as_kid,) = await _report_rows_for(ctx, k_subj)
    assert as_kid["reported"] == "kid.k7@example.com"
    assert "reporter_email" not in as_kid and "details" not in as_kid

    # The parent erases their account: their columns go, the kid's identifier stays, so
    # the report can still be acted on.
    await erase_subject(ctx.db, ctx.blobs, p_subj)
    row = await _report_row(ctx)
    assert (row.reporter_email, row.details, row.reported, row.status) == (None, None, "kid.k7@example.com", "open")
    # The kid's account is erased: the identifier goes, the report's handling stays.
    await erase_subject(ctx.db, ctx.blobs, k_subj)
    row = await _report_row(ctx)
    assert row.reported is None and row.status == "open"


@pytest.mark.req("CH2")
async def test_a_report_by_and_about_the_same_address_is_wholly_theirs(client, ctx):
    me = await register(client, ctx, email="self.s7@example.com")
    await client.post("/api/v1/privacy/child-reports", json={
        "reported": "self.s7@example.com", "reporter_email": "self.s7@example.com", "details": "it is me, I am 15"})
    (row,) = await _report_rows_for(ctx, await _subject(ctx, me["user_id"]))
    assert row["reported"] == row["reporter_email"] == "self.s7@example.com" and row["details"]
    await erase_subject(ctx.db, ctx.blobs, await _subject(ctx, me["user_id"]))
    left = await _report_row(ctx)
    assert (left.reported, left.reporter_email, left.details) == (None, None, None)


async def _old_rate_events(ctx, n: int) -> None:
    old = utcnow() - dt.timedelta(days=3)
    async with ctx.db.transaction() as s:
        s.add_all([RateEvent(bucket="test", key_hash=f"{i:064x}", at=old) for i in range(n)])


async def _count(ctx, model) -> int:
    async with ctx.db.session() as s:
        return await s.scalar(select(func.count()).select_from(model))


@pytest.mark.req("RET1", "RET5")
async def test_retention_purges_a_big_table_in_bounded_chunks(ctx, monkeypatch):
    await _old_rate_events(ctx, 12)
    sizes: list[int] = []
    real = subjects._remove

    async def counting(session, conditions):
        counts, keys = await real(session, conditions)
        sizes.append(counts.get("rate_events", 0))
        return counts, keys

    monkeypatch.setattr(subjects, "_remove", counting)
    report = await purge_expired(ctx.db, ctx.blobs, chunk=5)
    assert report.counts["rate_events"] == 12 and await _count(ctx, RateEvent) == 0
    assert [n for n in sizes if n] == [5, 5, 2]  # three transactions, none larger than a chunk
    assert report.failed == []


@pytest.mark.req("RET1", "RET5")
async def test_a_failing_table_does_not_stop_retention_of_the_others(client, ctx, monkeypatch):
    await register(client, ctx, email="ret.r7@example.com")
    await client.post("/api/v1/sessions", json={"login": "ret.r7@example.com", "password": STRONG})
    await _old_rate_events(ctx, 3)
    real = subjects._remove

    async def broken_for_rate_events(session, conditions):
        if "rate_events" in conditions:
            raise RuntimeError("this table's disk is broken")
        return await real(session, conditions)

    monkeypatch.setattr(subjects, "_remove", broken_for_rate_events)
    report = await purge_expired(ctx.db, ctx.blobs, now=utcnow() + dt.timedelta(days=8))
    assert report.failed == ["rate_events"]
    assert report.counts["sign_in_events"] == 2 and await _count(ctx, SignInEvent) == 0
    assert await _count(ctx, RateEvent) >= 3  # left for the next run
    async with ctx.db.session() as s:
        rec = await s.get(ErasureRecord, report.record_id)
    assert rec.reason == "retention" and rec.counts["sign_in_events"] == 2


@pytest.mark.req("R3")
async def test_erasure_records_start_before_they_finish(client, ctx):
    s = await register(client, ctx, email="times.t7@example.com")
    before = utcnow()
    erased = await erase_subject(ctx.db, ctx.blobs, await _subject(ctx, s["user_id"]))
    await _old_rate_events(ctx, 2)
    purged = await purge_expired(ctx.db, ctx.blobs)
    after = utcnow()
    async with ctx.db.session() as session:
        for rid in (erased.record_id, purged.record_id):
            rec = await session.get(ErasureRecord, rid)
            assert before <= rec.started_at <= rec.finished_at <= after
