"""Export (R1, R6), erasure (R3) and retention (RET1, RET5) driven by the declarations."""

from __future__ import annotations

import datetime as dt
import io
import json
import zipfile

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from faoyam.accounts.models import SignInEvent, User
from faoyam.core.database import utcnow
from faoyam.core.models import OutboundMessage
from faoyam.privacy.models import BlobTombstone, ErasureRecord
from faoyam.privacy.subjects import Subject, erase_subject, purge_expired, resolve_subject, sweep_tombstones
from tests.conftest import STRONG, bearer, register


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.req("R1", "R6")
async def test_export_is_complete_structured_and_hides_secrets(client, ctx):
    s = await register(client, ctx, email="export@example.com", terminal={"os": "iOS 19", "install_id": "i-1"})
    await client.put("/api/v1/me/photo", content=_png(), headers={**bearer(s), "content-type": "image/png"})
    doc = (await client.get("/api/v1/privacy/export", headers=bearer(s))).json()
    assert doc["format"] == "faoyam-export/1"
    users = doc["records"]["users"]["rows"]
    assert users[0]["email"] == "export@example.com" and users[0]["password_hash"] == "(set)"
    sessions = doc["records"]["sessions"]["rows"]
    assert sessions[0]["terminal_os"] == "iOS 19" and "token_hash" not in sessions[0] and "csrf_token" not in sessions[0]
    assert "sign_in_events" in doc["records"] and "outbound_messages" in doc["records"]
    assert "code_hash" not in json.dumps(doc["records"].get("pending_registrations", {}))
    # Each activity that produced the data is explained, with its legal basis.
    assert {"B1a", "B2"} <= set(doc["processing"])
    assert doc["processing"]["B1a"]["basis"] == ["contract", "legitimate_interest"]
    (photo,) = [b for b in doc["blobs"].values() if b["kind"] == "profile_photo"]
    assert photo["content_type"] == "image/jpeg"
    # The ZIP form carries the same data and the files themselves.
    r = await client.get("/api/v1/privacy/export?format=zip", headers=bearer(s))
    assert r.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    data = json.loads(zf.read("data.json"))
    assert data["records"]["users"]["rows"][0]["email"] == "export@example.com"
    jpgs = [n for n in zf.namelist() if n.startswith("files/profile_photo/") and n.endswith(".jpg")]
    assert len(jpgs) == 1 and zf.read(jpgs[0])[:2] == b"\xff\xd8"


@pytest.mark.req("R1")
async def test_export_contains_only_the_subjects_data(client, ctx):
    a = await register(client, ctx, email="a@example.com")
    await register(client, ctx, email="b@example.com")
    doc = (await client.get("/api/v1/privacy/export", headers=bearer(a))).json()
    assert "b@example.com" not in json.dumps(doc)


@pytest.mark.req("RET5", "RET1")
async def test_retention_purges_expired_rows_and_their_blobs(client, ctx):
    await register(client, ctx, email="old@example.com")
    await client.post("/api/v1/sessions", json={"login": "old@example.com", "password": STRONG})
    async with ctx.db.session() as s:
        n_events = await s.scalar(select(func.count()).select_from(SignInEvent))
        n_msgs = await s.scalar(select(func.count()).select_from(OutboundMessage))
    assert n_events == 2 and n_msgs == 1
    # Nothing is due yet.
    r = await purge_expired(ctx.db, ctx.blobs)
    assert r.counts.get("sign_in_events", 0) == 0 and r.counts.get("outbound_messages", 0) == 0
    # Eight days later, IP-bearing sign-in events and mail are gone, with the mail file.
    later = utcnow() + dt.timedelta(days=8)
    r = await purge_expired(ctx.db, ctx.blobs, now=later)
    assert r.counts["sign_in_events"] == 2 and r.counts["outbound_messages"] == 1 and r.blobs == 1
    assert [k async for k in ctx.blobs.keys("mail_outbox/")] == []
    async with ctx.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(User)) == 1  # the account itself stays
        assert await s.scalar(select(func.count()).select_from(ErasureRecord).where(ErasureRecord.reason == "retention")) == 2


@pytest.mark.req("R3")
async def test_blob_deletion_survives_a_crash_between_commit_and_delete(client, ctx, monkeypatch):
    s = await register(client, ctx, email="crash@example.com")
    await client.put("/api/v1/me/photo", content=_png(), headers={**bearer(s), "content-type": "image/png"})
    real_delete = ctx.blobs.delete

    async def failing_delete(key):
        raise OSError("disk went away")

    monkeypatch.setattr(ctx.blobs, "delete", failing_delete)
    async with ctx.db.session() as session:
        subject = await resolve_subject(session, s["user_id"])
    # The erasure committed, so it succeeded: the blob store's failure is not raised.
    report = await erase_subject(ctx.db, ctx.blobs, subject)
    assert report.blobs == 2
    # The rows are gone (committed) and the blobs are remembered as tombstones.
    async with ctx.db.session() as session:
        assert await session.get(User, s["user_id"]) is None
        assert await session.scalar(select(func.count()).select_from(BlobTombstone)) == 2  # photo + outbox mail
    assert len([k async for k in ctx.blobs.keys()]) == 2
    monkeypatch.setattr(ctx.blobs, "delete", real_delete)
    # The sweep retries after its backoff.
    assert (await sweep_tombstones(ctx.db, ctx.blobs, now=utcnow() + dt.timedelta(hours=1))).deleted == 2
    assert [k async for k in ctx.blobs.keys()] == []


@pytest.mark.req("R3")
async def test_erasure_is_all_or_nothing(client, ctx, monkeypatch):
    s = await register(client, ctx, email="atomic@example.com")
    from faoyam.privacy import subjects

    real = subjects._remove

    async def broken(session, conditions):
        counts, keys = await real(session, conditions)
        raise RuntimeError("power cut after the deletes, before commit")

    monkeypatch.setattr(subjects, "_remove", broken)
    async with ctx.db.session() as session:
        subject = await resolve_subject(session, s["user_id"])
    with pytest.raises(RuntimeError):
        await erase_subject(ctx.db, ctx.blobs, subject)
    async with ctx.db.session() as session:
        assert await session.get(User, s["user_id"]) is not None
    assert (await client.get("/api/v1/me", headers=bearer(s))).status_code == 200


@pytest.mark.req("R3", "E1")
async def test_subject_by_address_only_reaches_pending_data(client, ctx):
    """Someone without an account (an abandoned registration) can be erased by address."""
    body = {"email": "pending@example.com", "country": "TH", "nickname": "P", "password": STRONG, "age_confirmed": True}
    assert (await client.post("/api/v1/accounts/register", json=body)).status_code == 202
    r = await erase_subject(ctx.db, ctx.blobs, Subject(emails=frozenset({"pending@example.com"})))
    assert r.counts == {"pending_registrations": 1, "outbound_messages": 1} and r.blobs == 1
