"""The blob lifecycle: one way to change a reference, the tombstone sweep with retries,
erasure that never fails after it committed, and the orphan reconciler."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from faoyam.accounts.models import User
from faoyam.core.database import utcnow
from faoyam.devices.models import Device
from faoyam.privacy.blobrefs import blob_transaction, retry_delay, sweep_tombstones
from faoyam.privacy.models import BlobTombstone
from faoyam.privacy.reconcile import check_blobs
from faoyam.privacy.subjects import ERASURE_HOOKS
from tests.conftest import bearer, register


def _png(color=(1, 2, 3)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, "PNG")
    return out.getvalue()


async def _keys(ctx, prefix: str = "") -> set[str]:
    return {k async for k in ctx.blobs.keys(prefix)}


async def _tombstones(ctx) -> dict[str, BlobTombstone]:
    async with ctx.db.session() as s:
        return {t.key: t for t in (await s.execute(select(BlobTombstone))).scalars()}


async def _photo_key(ctx, user_id: str) -> str | None:
    async with ctx.db.session() as s:
        return (await s.get(User, user_id)).photo_key


def _failing_delete_for(ctx, monkeypatch, bad: set[str] | None):
    """Make the store's delete fail for the keys in ``bad`` (every key when None)."""
    real = ctx.blobs.delete

    async def delete(key):
        if bad is None or key in bad:
            raise OSError("the disk refused")
        await real(key)

    monkeypatch.setattr(ctx.blobs, "delete", delete)
    return real


@pytest.mark.req("B1b")
async def test_changing_the_photo_tombstones_the_old_key_and_sweeps_it(client, ctx, monkeypatch):
    s = await register(client, ctx, email="photo@example.com")
    h = {**bearer(s), "content-type": "image/png"}
    assert (await client.put("/api/v1/me/photo", content=_png(), headers=h)).status_code == 204
    first = await _photo_key(ctx, s["user_id"])
    # The old key is tombstoned in the change's transaction: with a store that cannot
    # delete right now, the tombstone is what is left, and the change still succeeds.
    real = _failing_delete_for(ctx, monkeypatch, None)
    assert (await client.put("/api/v1/me/photo", content=_png((9, 9, 9)), headers=h)).status_code == 204
    second = await _photo_key(ctx, s["user_id"])
    assert second != first and second in await _keys(ctx)
    assert set(await _tombstones(ctx)) == {first} and first in await _keys(ctx)
    # The sweep finishes it once the store works again.
    monkeypatch.setattr(ctx.blobs, "delete", real)
    assert (await sweep_tombstones(ctx.db, ctx.blobs, now=utcnow() + dt.timedelta(hours=1))).deleted == 1
    assert await _tombstones(ctx) == {} and await _keys(ctx, "profile_photo/") == {second}
    # With a working store the old file goes at once, and so does a deleted photo.
    await client.put("/api/v1/me/photo", content=_png((5, 5, 5)), headers=h)
    third = await _photo_key(ctx, s["user_id"])
    assert await _keys(ctx, "profile_photo/") == {third} and await _tombstones(ctx) == {}
    assert (await client.delete("/api/v1/me/photo", headers=bearer(s))).status_code == 204
    assert await _keys(ctx, "profile_photo/") == set() and await _photo_key(ctx, s["user_id"]) is None


@pytest.mark.req("B7")
async def test_changing_a_device_cover_goes_through_the_same_path(client, ctx, monkeypatch):
    from tests.devices.conftest import owned, person

    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    h = {**owner.h, "content-type": "image/png"}
    await client.put(f"/api/v1/devices/{device_id}/cover", content=_png(), headers=h)
    async with ctx.db.session() as s:
        first = (await s.get(Device, device_id)).cover_key
    _failing_delete_for(ctx, monkeypatch, None)
    assert (await client.put(f"/api/v1/devices/{device_id}/cover", content=_png((7, 7, 7)), headers=h)).status_code == 204
    assert set(await _tombstones(ctx)) == {first}


@pytest.mark.req("B1b")
async def test_a_blob_written_before_a_failed_insert_is_removed(client, ctx):
    await register(client, ctx, email="taken@example.com")
    with pytest.raises(IntegrityError):
        async with blob_transaction(ctx.db, ctx.blobs) as tx:
            key = await tx.put("profile_photo", b"\xff\xd8\xff fake jpeg")
            assert key in await _keys(ctx)
            # The insert fails at commit: the address is taken (a unique constraint).
            tx.session.add(User(email="taken@example.com", country="TH", nickname="Dup", photo_key=key,
                                age_confirmed_at=utcnow()))
    assert key not in await _keys(ctx)

    async def video():
        for _ in range(3):
            yield b"\x00" * 1000

    with pytest.raises(RuntimeError):
        async with blob_transaction(ctx.db, ctx.blobs) as tx:
            streamed = await tx.put_stream("profile_photo", video())
            assert (await ctx.blobs.stat(streamed)).size == 3000
            raise RuntimeError("the upload's row could not be written")
    assert streamed not in await _keys(ctx)
    # When even that delete fails, the fresh blob is tombstoned for the sweep instead.
    real = ctx.blobs.delete

    async def refuse(k):
        raise OSError("no")

    ctx.blobs.delete = refuse
    try:
        with pytest.raises(RuntimeError):
            async with blob_transaction(ctx.db, ctx.blobs) as tx:
                key2 = await tx.put("profile_photo", b"\xff\xd8\xff other")
                raise RuntimeError("the request failed")
    finally:
        ctx.blobs.delete = real
    assert set(await _tombstones(ctx)) == {key2}


@pytest.mark.req("R3")
async def test_one_bad_key_does_not_block_the_sweep_and_is_retried_with_backoff(ctx, monkeypatch):
    keys = [await ctx.blobs.put("profile_photo", f"photo {i}".encode()) for i in range(5)]
    async with ctx.db.transaction() as s:
        from faoyam.privacy.blobrefs import tombstone

        await tombstone(s, keys)
    bad = keys[2]
    real = _failing_delete_for(ctx, monkeypatch, {bad})
    now = utcnow()
    r = await sweep_tombstones(ctx.db, ctx.blobs, now=now)
    assert r.deleted == 4 and r.failed == [bad]
    assert await _keys(ctx, "profile_photo/") == {bad}
    t = (await _tombstones(ctx))[bad]
    assert t.attempts == 1 and t.next_try_at == now + retry_delay(1)
    # Not due yet: left alone. Due and still failing: the delay grows.
    assert (await sweep_tombstones(ctx.db, ctx.blobs, now=now + dt.timedelta(seconds=30))).failed == []
    later = now + retry_delay(1)
    assert (await sweep_tombstones(ctx.db, ctx.blobs, now=later)).failed == [bad]
    t = (await _tombstones(ctx))[bad]
    assert t.attempts == 2 and t.next_try_at == later + retry_delay(2) and retry_delay(2) > retry_delay(1)
    monkeypatch.setattr(ctx.blobs, "delete", real)
    assert (await sweep_tombstones(ctx.db, ctx.blobs, now=later + dt.timedelta(hours=7))).deleted == 1
    assert await _keys(ctx, "profile_photo/") == set() and await _tombstones(ctx) == {}


@pytest.mark.req("B17", "R3")
async def test_deleting_the_account_succeeds_and_ends_the_session_when_the_store_fails(client, ctx, monkeypatch):
    s = await register(client, ctx, email="leaving@example.com")
    await client.put("/api/v1/me/photo", content=_png(), headers={**bearer(s), "content-type": "image/png"})
    ran: list[str] = []

    async def hook(subject):
        async def after():
            ran.append(subject.user_id)
        return after

    ERASURE_HOOKS.append(hook)
    try:
        real = _failing_delete_for(ctx, monkeypatch, None)
        r = await client.delete("/api/v1/me", headers=bearer(s))
    finally:
        ERASURE_HOOKS.remove(hook)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert 'session="";' in r.headers["set-cookie"] or "Max-Age=0" in r.headers["set-cookie"]
    assert (await client.get("/api/v1/me", headers=bearer(s))).status_code == 401
    assert ran == [s["user_id"]]  # the domains' follow-ups ran although the sweep failed
    assert len(await _tombstones(ctx)) == 2  # photo + mail, kept for the sweep job
    monkeypatch.setattr(ctx.blobs, "delete", real)
    await sweep_tombstones(ctx.db, ctx.blobs, now=utcnow() + dt.timedelta(hours=1))
    assert await _keys(ctx) == set() and await _tombstones(ctx) == {}


def _aged(ctx, monkeypatch, **hours_by_key: float):
    """Make stored blobs look old: the store's ``stat`` reports them ``hours`` older than
    now (works on every backend; S3 has no way to back-date an object)."""
    real = ctx.blobs.stat
    ages = {k.replace("__", "/"): h for k, h in hours_by_key.items()}

    async def stat(key):
        st = await real(key)
        if key in ages:
            return dataclasses.replace(st, modified=utcnow() - dt.timedelta(hours=ages[key]))
        return st

    monkeypatch.setattr(ctx.blobs, "stat", stat)


def _k(key: str) -> str:
    return key.replace("/", "__")


@pytest.mark.req("R3")
async def test_the_reconciler_finds_orphans_and_dangling_references_and_repairs_them(client, ctx, monkeypatch):
    s = await register(client, ctx, email="rec@example.com")
    await client.put("/api/v1/me/photo", content=_png(), headers={**bearer(s), "content-type": "image/png"})
    photo = await _photo_key(ctx, s["user_id"])
    old_orphan = await ctx.blobs.put("profile_photo", b"left by a crash")
    new_orphan = await ctx.blobs.put("device_cover", b"an upload whose row is being written")
    _aged(ctx, monkeypatch, **{_k(old_orphan): 48, _k(photo): 48})  # the photo is referenced: never an orphan
    r = await check_blobs(ctx.db, ctx.blobs)
    assert r.orphans == [old_orphan] and r.recent == [new_orphan] and r.dangling == [] and r.deleted == 0
    assert old_orphan in await _keys(ctx)  # a check alone changes nothing
    # A record whose file is gone.
    await ctx.blobs.delete(photo)
    r = await check_blobs(ctx.db, ctx.blobs)
    assert [(d.table, d.column, d.key, d.nullable) for d in r.dangling] == [("users", "photo_key", photo, True)]
    r = await check_blobs(ctx.db, ctx.blobs, repair_orphans=True, repair_dangling=True)
    assert (r.deleted, r.nulled) == (1, 1)
    assert old_orphan not in await _keys(ctx) and new_orphan in await _keys(ctx)
    assert await _photo_key(ctx, s["user_id"]) is None
    assert (await client.get("/api/v1/me/photo", headers=bearer(s))).status_code == 404
    r = await check_blobs(ctx.db, ctx.blobs)
    assert r.clean and r.recent == [new_orphan]


async def test_the_reconciler_refuses_to_repair_a_store_that_looks_like_the_wrong_database(ctx, monkeypatch):
    keys = [await ctx.blobs.put("device_cover", b"x%d" % i) for i in range(25)]
    _aged(ctx, monkeypatch, **{_k(k): 48 for k in keys})
    r = await check_blobs(ctx.db, ctx.blobs, repair_orphans=True)
    assert r.refused and r.deleted == 0 and await _keys(ctx) == set(keys)
    r = await check_blobs(ctx.db, ctx.blobs, repair_orphans=True, force=True)
    assert r.deleted == 25 and await _keys(ctx) == set()


async def test_the_reconciler_job_is_scheduled_and_removes_old_orphans(app, ctx, monkeypatch):
    from faoyam.core.jobs import scheduler

    jobs = scheduler(ctx)
    assert {"privacy.sweep", "privacy.retention", "privacy.blob_check"} <= set(jobs.jobs)
    orphan = await ctx.blobs.put("device_cover", b"orphan")
    _aged(ctx, monkeypatch, **{_k(orphan): 48})
    result = await jobs.run_now("privacy.blob_check")
    assert result.deleted == 1 and orphan not in await _keys(ctx)


def test_blobs_check_command_reports_in_plain_words_and_repairs(settings, blob_settings, monkeypatch):
    import asyncio

    from typer.testing import CliRunner

    from faoyam.cli import app
    from faoyam.core.context import Context

    async def in_store(fn):
        c = Context.build(settings)
        try:
            return await fn(c)
        finally:
            await c.close()

    async def setup(c) -> str:
        await c.db.create_all()
        return await c.blobs.put("device_cover", b"nobody's")

    orphan = asyncio.run(in_store(setup))
    # The command reads the service's settings from the environment, as in production.
    monkeypatch.setenv("FAOYAM_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("FAOYAM_DATABASE_URL", settings.database_url)
    for name, value in blob_settings.items():
        monkeypatch.setenv(f"FAOYAM_{name.upper()}", str(value))
    runner = CliRunner()
    r = runner.invoke(app, ["blobs", "check"])
    assert r.exit_code == 0, r.output  # within the grace period a file is no problem yet
    assert "1 newer file belongs to no record yet" in r.output and orphan not in r.output
    r = runner.invoke(app, ["blobs", "check", "--grace-hours", "0"])
    assert r.exit_code == 1, r.output
    assert "file belongs to no record" in r.output and orphan in r.output
    assert "faoyam blobs check --repair" in r.output
    r = runner.invoke(app, ["blobs", "check", "--repair", "--grace-hours", "0"])
    assert r.exit_code == 0, r.output
    assert "deleted 1 unused file" in r.output
    assert orphan not in asyncio.run(in_store(lambda c: _keys(c)))


@pytest.mark.req("R3")
async def test_a_huge_erasure_answers_after_a_bounded_sweep_and_the_job_finishes(client, ctx, monkeypatch):
    from faoyam.core.models import OutboundMessage
    from faoyam.privacy import blobrefs
    from faoyam.privacy.subjects import erase_subject, resolve_subject

    s = await register(client, ctx, email="many@example.com")
    async with blob_transaction(ctx.db, ctx.blobs) as tx:
        for i in range(5):
            key = await tx.put("mail_outbox", b"mail %d" % i)
            tx.session.add(OutboundMessage(channel="email", recipient="many@example.com", user_id=s["user_id"],
                                           template="t", body_key=key, backend="outbox"))
    monkeypatch.setattr(blobrefs, "INLINE_SWEEP", 2)
    async with ctx.db.session() as session:
        subject = await resolve_subject(session, s["user_id"])
    report = await erase_subject(ctx.db, ctx.blobs, subject)
    assert report.blobs == 6  # five mails and the registration code's
    assert len(await _tombstones(ctx)) == 4 and len(await _keys(ctx)) == 4
    assert (await sweep_tombstones(ctx.db, ctx.blobs, limit=3)).deleted == 3
    assert (await sweep_tombstones(ctx.db, ctx.blobs)).deleted == 1
    assert await _keys(ctx) == set() and await _tombstones(ctx) == {}


@pytest.mark.req("B17", "R3")
async def test_the_erasure_succeeds_and_its_hooks_run_even_when_the_sweep_itself_breaks(client, ctx, monkeypatch):
    from faoyam.privacy import blobrefs

    s = await register(client, ctx, email="sweepless@example.com")
    ran: list[str] = []

    async def hook(subject):
        async def after():
            ran.append(subject.user_id)
        return after

    async def broken_sweep(*args, **kwargs):
        raise RuntimeError("the database went away after the commit")

    monkeypatch.setattr(blobrefs, "sweep_tombstones", broken_sweep)
    ERASURE_HOOKS.append(hook)
    try:
        r = await client.delete("/api/v1/me", headers=bearer(s))
    finally:
        ERASURE_HOOKS.remove(hook)
    assert r.status_code == 200 and r.json()["deleted"] is True
    assert ran == [s["user_id"]]
    assert (await client.get("/api/v1/me", headers=bearer(s))).status_code == 401
    assert len(await _tombstones(ctx)) == 1  # the registration mail, for the sweep job
