"""raise_alarm: the event, its messages and its outbox rows in one transaction; who gets
what (shares, preferences, quiet hours, arming, detection); bad input; the bus."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from faoyam.alarms import bus
from faoyam.alarms import service as alarms
from faoyam.alarms.models import AlarmDelivery, AlarmEvent, AlarmMessage, ConsentRecord
from faoyam.alarms.runtime import FloodGuard, runtime
from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.errors import Invalid
from faoyam.devices.ports import AlarmReport
from faoyam.devices.validation import BadReport
from faoyam.devices import service as devices
from tests.alarms.conftest import activation, grant, jpeg, owned, person, raise_one


async def _count(ctx, model, *where) -> int:
    async with ctx.db.session() as s:
        return int(await s.scalar(select(func.count()).select_from(model).where(*where)))


async def _subscribe(ctx, user_id: str) -> None:
    await alarms.add_push_subscription(ctx, user_id, f"https://push.example/{user_id}", "BKey", "auth")


@pytest.mark.req("B11")
async def test_an_alarm_is_stored_with_its_messages_and_outbox_rows(ctx, client, cam):
    await _subscribe(ctx, cam.owner.user_id)
    await alarms.set_user_settings(ctx, cam.owner.user_id, email=True)
    alarm_id = await raise_one(ctx, cam, snapshot=jpeg())
    async with ctx.db.session() as s:
        ev = await s.get(AlarmEvent, alarm_id)
        msgs = (await s.execute(select(AlarmMessage).where(AlarmMessage.alarm_id == alarm_id))).scalars().all()
        outbox = (await s.execute(select(AlarmDelivery.channel, AlarmDelivery.status))).all()
    assert ev.kind == "human" and ev.source == "device" and ev.snapshot_key.startswith("alarm_snapshot/")
    assert await ctx.blobs.read(ev.snapshot_key) == jpeg()
    assert [m.user_id for m in msgs] == [cam.owner.user_id]
    assert sorted(outbox) == [("email", "pending"), ("push", "pending")]


@pytest.mark.req("B11")
async def test_a_crash_after_the_commit_loses_no_notification(ctx, client, cam, settings):
    """The outbox rows are in the database: a fresh process (a new context, nothing in
    memory) finds them and delivers them."""
    await alarms.set_user_settings(ctx, cam.owner.user_id, email=True)
    await raise_one(ctx, cam)
    fresh = Context.build(settings)  # the "restarted" node: settings' outbox backend
    try:
        assert await alarms.dispatch_once(fresh) == 1
    finally:
        await fresh.close()
    assert await _count(ctx, AlarmDelivery, AlarmDelivery.status == "sent") == 1
    assert [m["template"] for m in await ctx.messenger.outbox()].count("alarm") == 1


@pytest.mark.req("B11", "B9")
async def test_shared_users_get_alarms_only_if_their_share_grants_them(ctx, client, cam):
    watcher, viewer, partial = await person(ctx), await person(ctx), await person(ctx)
    await grant(ctx, cam.device_id, watcher, ["alarms"])
    await grant(ctx, cam.device_id, viewer, ["live", "playback"])
    await grant(ctx, cam.device_id, partial, ["alarms"], channels=[1])
    on_0 = await raise_one(ctx, cam, channel=0)
    on_1 = await raise_one(ctx, cam, channel=1)
    async with ctx.db.session() as s:
        rows = (await s.execute(select(AlarmMessage.alarm_id, AlarmMessage.user_id))).all()
    got = {(a, u) for a, u in rows}
    assert got == {(on_0, cam.owner.user_id), (on_0, watcher.user_id), (on_1, cam.owner.user_id),
                   (on_1, watcher.user_id), (on_1, partial.user_id)}


@pytest.mark.req("B11", "R7")
async def test_switching_off_is_a_consent_withdrawal_effective_at_once(ctx, client, cam):
    owner = cam.owner.user_id
    await _subscribe(ctx, owner)
    await raise_one(ctx, cam, kind="human")  # waiting in the outbox when consent is withdrawn
    before = utcnow()
    out = await alarms.set_preference(ctx, owner, device_id=cam.device_id, kind="human", enabled=False)
    assert out["enabled"] is False
    assert await _count(ctx, AlarmDelivery, AlarmDelivery.status == "pending") == 0
    assert await raise_one(ctx, cam, kind="human") is not None
    assert await _count(ctx, AlarmMessage) == 1  # the new alarm is for nobody
    # Another type of the same device still notifies.
    await raise_one(ctx, cam, kind="videoMotion")
    assert await _count(ctx, AlarmDelivery, AlarmDelivery.status == "pending") == 1
    async with ctx.db.session() as s:
        rec = (await s.execute(select(ConsentRecord))).scalar_one()
    assert rec.user_id == owner and rec.granted is False and rec.at >= before
    assert rec.scope == {"device_id": cam.device_id, "kind": "human"}
    # Every type of every device, then on again for one device.
    await alarms.set_preference(ctx, owner, enabled=False)
    assert await _count(ctx, AlarmDelivery, AlarmDelivery.status == "pending") == 0
    await alarms.set_preference(ctx, owner, device_id=cam.device_id, enabled=True)
    await raise_one(ctx, cam, kind="videoMotion")
    assert await _count(ctx, AlarmDelivery, AlarmDelivery.status == "pending") == 1
    assert [r["granted"] for r in await alarms.consent_history(ctx, owner)] == [False, False, True]


@pytest.mark.req("B11")
async def test_quiet_hours_keep_the_message_and_send_nothing(ctx, client, cam):
    await _subscribe(ctx, cam.owner.user_id)
    now = utcnow()
    start = (now - dt.timedelta(minutes=30)).strftime("%H:%M")
    end = (now + dt.timedelta(minutes=30)).strftime("%H:%M")
    await alarms.set_user_settings(ctx, cam.owner.user_id, quiet_start=start, quiet_end=end, time_zone="UTC")
    await raise_one(ctx, cam)
    assert await _count(ctx, AlarmMessage) == 1 and await _count(ctx, AlarmDelivery) == 0


@pytest.mark.req("B11")
async def test_arming_schedule_and_detection_switch(ctx, client, cam):
    owner = cam.owner.user_id
    now = utcnow()
    # Armed only in a window that is not now: the alarm is not kept.
    later = [{"days": list(range(7)), "start": (now + dt.timedelta(hours=2)).strftime("%H:00"),
              "end": (now + dt.timedelta(hours=3)).strftime("%H:00")}]
    await alarms.set_schedule(ctx, owner, cam.device_id, 0, later, "UTC")
    assert await raise_one(ctx, cam, channel=0) is None
    assert await raise_one(ctx, cam, channel=1) is not None  # the other channel is always armed
    await alarms.set_schedule(ctx, owner, cam.device_id, 0, None)
    assert await raise_one(ctx, cam, channel=0) is not None
    # Detection off: motion and person events go, a doorbell press still comes.
    await alarms.set_detection(ctx, owner, cam.device_id, False)
    assert await raise_one(ctx, cam, kind="videoMotion", source="detection") is None
    assert await raise_one(ctx, cam, kind="human") is None
    assert await raise_one(ctx, cam, kind="doorbell") is not None
    assert not await alarms.detection_enabled(ctx, cam.device_id)


@pytest.mark.req("B11")
async def test_bad_input_is_refused_and_stores_nothing(ctx, client, cam):
    with pytest.raises(Invalid) as exc:
        await raise_one(ctx, cam, channel=7)
    assert exc.value.code == "unknown-channel"
    with pytest.raises(Invalid) as exc:
        await raise_one(ctx, cam, at=utcnow() + dt.timedelta(days=30))
    assert exc.value.code == "alarm-in-future"
    with pytest.raises(Invalid):
        await raise_one(ctx, cam, at=utcnow() - dt.timedelta(days=30))
    with pytest.raises(Invalid):
        await raise_one(ctx, cam, kind="<script>")
    with pytest.raises(BadReport) as bad:  # through the gateway's door
        await alarms.record_device_alarm(ctx, cam.serial, AlarmReport(channel=9, type="human", at=utcnow()))
    assert bad.value.code == "unknown-channel"
    assert await _count(ctx, AlarmEvent) == 0
    # A picture that is not a JPEG, or too big: the alarm is kept without it.
    png_ish = b"\x89PNG\r\n\x1a\n" + b"0" * 100
    fake_jpeg = b"\xff\xd8\xff" + b"0" * 100
    huge = jpeg()[:-2] + b"\0" * (4 * 1024 * 1024) + b"\xff\xd9"
    for pic in (png_ish, fake_jpeg, huge):
        alarm_id = await raise_one(ctx, cam, snapshot=pic)
        async with ctx.db.session() as s:
            assert (await s.get(AlarmEvent, alarm_id)).snapshot_key is None
    assert [k async for k in ctx.blobs.keys("alarm_snapshot/")] == []
    # A clock a little ahead is clamped to now, not refused.
    skewed = await raise_one(ctx, cam, at=utcnow() + dt.timedelta(minutes=2))
    async with ctx.db.session() as s:
        assert (await s.get(AlarmEvent, skewed)).at <= utcnow()


@pytest.mark.req("B11")
async def test_a_flooding_device_is_rate_limited_and_others_are_not(ctx, client, cam):
    other = await person(ctx)
    other_id, fd = await owned(ctx, client, other, kind="camera")
    await devices.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    runtime(ctx).flood = FloodGuard(rate=0.001, burst=5)
    kept = 0
    for _ in range(20):
        try:
            await raise_one(ctx, cam)
            kept += 1
        except alarms.Flooded:
            pass
    assert kept == 5
    assert await alarms.raise_alarm(ctx, device_id=other_id, channel=0, kind="human", at=utcnow(),
                                    snapshot=None) is not None
    assert runtime(ctx).stats["flooded"] == 15


@pytest.mark.req("B11")
async def test_every_stored_alarm_is_published_on_the_bus(ctx, client, cam):
    sent: list[tuple[str, bytes]] = []

    class Bus:
        async def publish_raw(self, topic, payload, qos=1):
            sent.append((topic, payload))

    ctx.gateway = Bus()
    try:
        alarm_id = await raise_one(ctx, cam, channel=1, kind="doorbell")
    finally:
        ctx.gateway = None
    assert [t for t, _ in sent] == [bus.TOPIC] == ["faoyam/svc/alarm"]
    body = bus.decode(sent[0][1])
    assert body["alarm_id"] == alarm_id and body["device_id"] == cam.device_id and body["channel"] == 1
    assert body["kind"] == "doorbell" and dt.datetime.fromisoformat(body["at"]).tzinfo is not None
    assert set(body) == {"alarm_id", "device_id", "channel", "kind", "at"}
