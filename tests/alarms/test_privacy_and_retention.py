"""Every datum of the alarms domain is declared, exported and erased (R1, R3, R7), and
alarm messages and pictures go after the register's seven days (RET5), in bounded
batches, by the retention job — tested with a frozen clock."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import create_engine, func, select, text

from faoyam.alarms import service as alarms
from faoyam.alarms.models import AlarmDelivery, AlarmEvent, AlarmMessage
from faoyam.core.database import utcnow
from faoyam.core.declarations import RETENTION_PERIODS
from faoyam.core.migrate import upgrade
from faoyam.privacy.export import export_json
from faoyam.privacy.register import RETENTION
from faoyam.privacy.subjects import Subject, erase_subject, purge_expired
from tests.alarms.conftest import grant, jpeg, person, raise_one


async def _count(ctx, model) -> int:
    async with ctx.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model)))


async def _export(ctx, user_id: str) -> dict:
    return json.loads(b"".join([c async for c in export_json(ctx.db, ctx.blobs, Subject(user_id=user_id))]))


@pytest.mark.req("R1", "R3", "R7", "B11")
async def test_export_and_erasure_cover_every_alarm_table(ctx, client, cam):
    owner = cam.owner.user_id
    friend = await person(ctx)
    await grant(ctx, cam.device_id, friend, ["alarms"])
    await alarms.add_push_subscription(ctx, owner, "https://push.example/Canary-Endpoint-7", "Canary-P256", "Canary-Auth")
    bangkok = utcnow() + dt.timedelta(hours=7)  # quiet hours that are not now, there
    await alarms.set_user_settings(ctx, owner, email=True, quiet_start=(bangkok + dt.timedelta(hours=6)).strftime("%H:00"),
                                   quiet_end=(bangkok + dt.timedelta(hours=7)).strftime("%H:00"), time_zone="Asia/Bangkok")
    await alarms.set_preference(ctx, owner, device_id=cam.device_id, kind="videoMotion", enabled=False)
    await alarms.set_message_callback(ctx, owner, callback_url="https://hooks.example/Canary-Hook",
                                      callback_flag="alarm", status="on")
    await alarms.set_schedule(ctx, owner, cam.device_id, 1, [{"days": [5, 6], "start": "08:00", "end": "18:00"}])
    await alarms.set_detection(ctx, owner, cam.device_id, True)
    await raise_one(ctx, cam, snapshot=jpeg())

    doc = await _export(ctx, owner)
    rec = doc["records"]
    for table in ("alarm_events", "alarm_messages", "alarm_deliveries", "alarm_push_subscriptions",
                  "alarm_user_settings", "alarm_preferences", "alarm_consent_records", "alarm_webhooks",
                  "alarm_schedules", "alarm_detection"):
        assert rec[table]["rows"], table
    assert rec["alarm_push_subscriptions"]["rows"][0]["endpoint"] == "https://push.example/Canary-Endpoint-7"
    assert rec["alarm_push_subscriptions"]["rows"][0]["auth"] == "(set)"
    assert rec["alarm_webhooks"]["rows"][0]["token"] == "(set)"
    consents = {(r["purpose"], r["granted"]) for r in rec["alarm_consent_records"]["rows"]}
    assert consents == {("alarm_email", True), ("alarm_notifications", False)}
    assert "alarm_snapshot" in {b["kind"] for b in doc["blobs"].values()}
    # The invitee's export holds their own message, not the owner's settings.
    theirs = (await _export(ctx, friend.user_id))["records"]
    assert len(theirs["alarm_messages"]["rows"]) == 1 and "alarm_webhooks" not in theirs

    await erase_subject(ctx.db, ctx.blobs, Subject(user_id=owner))
    for model_table in ("alarm_events", "alarm_push_subscriptions", "alarm_user_settings", "alarm_preferences",
                        "alarm_consent_records", "alarm_webhooks", "alarm_schedules", "alarm_detection",
                        "alarm_deliveries"):
        async with ctx.db.session() as s:
            assert (await s.execute(text(f"SELECT count(*) FROM {model_table}"))).scalar() == 0, model_table
    # The invitee's message went with the event it was about.
    assert await _count(ctx, AlarmMessage) == 0
    assert [k async for k in ctx.blobs.keys("alarm_snapshot/")] == []


@pytest.mark.req("RET5", "B11")
async def test_alarms_and_pictures_expire_after_the_registers_seven_days_in_batches(ctx, client, cam):
    assert RETENTION_PERIODS["7d"] == dt.timedelta(days=7) and "7d" in RETENTION
    await alarms.add_push_subscription(ctx, cam.owner.user_id, "https://push.example/x", "k", "a")
    for _ in range(7):
        await raise_one(ctx, cam, snapshot=jpeg())
    keys = [k async for k in ctx.blobs.keys("alarm_snapshot/")]
    assert len(keys) == 7
    now = utcnow()
    # Six days on: nothing is old enough.
    report = await purge_expired(ctx.db, ctx.blobs, now + dt.timedelta(days=6), chunk=3)
    assert not report.counts.get("alarm_events") and await _count(ctx, AlarmEvent) == 7
    # Seven days and a minute on (the frozen clock): events, messages, outbox rows and pictures go,
    # in transactions of at most three rows.
    report = await purge_expired(ctx.db, ctx.blobs, now + dt.timedelta(days=7, minutes=1), chunk=3)
    assert report.counts["alarm_events"] == 7 and report.failed == []
    assert await _count(ctx, AlarmEvent) == await _count(ctx, AlarmMessage) == await _count(ctx, AlarmDelivery) == 0
    assert [k async for k in ctx.blobs.keys("alarm_snapshot/")] == []


@pytest.mark.req("B11")
def test_the_migration_keeps_the_alarms_stored_before_it(tmp_path):
    """device_alarms rows (and their picture keys) move to alarm_events."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    upgrade(url, "a3c0d1e95f71")
    engine = create_engine(url.replace("+aiosqlite", ""))
    with engine.begin() as c:
        c.execute(text("INSERT INTO devices (id, serial_hash, kind, model, abilities, safety_code_hash, "
                       "factory_secret_hash, credential_generation, manufactured_at, dst, online) VALUES "
                       "('d1', 'h', 'camera', 'm', '[]', 's', 'f', 0, '2026-11-30 10:00:00', 0, 0)"))
        c.execute(text("INSERT INTO device_alarms (id, device_id, channel, type, at, snapshot_key, received_at) "
                       "VALUES ('a1', 'd1', 0, 'human', '2026-11-30 10:00:00', 'alarm_snapshot/k', '2026-11-30 10:00:01')"))
    upgrade(url)
    with engine.connect() as c:
        rows = c.execute(text("SELECT id, device_id, channel, kind, snapshot_key, source FROM alarm_events")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [("a1", "d1", 0, "human", "alarm_snapshot/k", "device")]
