"""The registry's side of the gateway contract (devices/ports.py), called directly."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from faoyam.alarms import service as alarms
from faoyam.core.database import utcnow
from faoyam.devices import service
from faoyam.alarms.models import AlarmEvent as Alarm
from faoyam.devices.models import Channel, Device, DeviceAddress
from faoyam.devices.ports import AlarmReport, FactoryDevice
from faoyam.devices.validation import BadReport
from faoyam.privacy.subjects import purge_expired
from tests.devices.conftest import activation, jpeg, make_device, owned, person


async def _row(ctx, serial: str) -> Device:
    async with ctx.db.session() as s:
        return await service.find_by_serial(s, ctx, serial)


async def test_factory_register_is_idempotent_and_keeps_no_serial_in_clear(ctx):
    fd = await make_device(ctx, kind="nvr", channels=4)
    await service.factory_register(ctx, fd)
    async with ctx.db.session() as s:
        rows = (await s.execute(select(Device))).scalars().all()
        chans = (await s.execute(select(Channel.index).where(Channel.device_id == rows[0].id))).scalars().all()
    assert len(rows) == 1 and sorted(chans) == [0, 1, 2, 3]
    assert rows[0].owner_id is None and rows[0].serial is None
    assert fd.serial not in rows[0].serial_hash and fd.safety_code not in rows[0].safety_code_hash


@pytest.mark.parametrize("change", [dict(serial="lower-case"), dict(kind="fridge"), dict(channels=-1),
                                    dict(factory_secret="short"), dict(paired_with="DOORBELL1"),
                                    dict(safety_code="!!"), dict(model=""), dict(abilities=("x" * 41,))])
async def test_factory_register_refuses_bad_facts(ctx, change):
    base = dict(serial="FYGOOD0001", kind="camera", model="FY-1", channels=1, safety_code="ABC123",
                factory_secret="long-enough-secret")
    with pytest.raises(ValueError):
        await service.factory_register(ctx, FactoryDevice(**{**base, **change}))


@pytest.mark.req("B6")
async def test_activation_stores_b6_data_and_derives_country_from_a_public_ip(ctx):
    fd = await make_device(ctx)
    creds = await service.activate(ctx, fd.serial, activation(fd, mac="02-AA-BB-CC-DD-EE"), "8.8.8.8")
    assert creds.username == fd.serial and len(creds.password) >= 24
    row = await _row(ctx, fd.serial)
    assert row.mac == "02:aa:bb:cc:dd:ee" and row.firmware == "2.840.0000000.1.R"
    assert row.country == "US" and row.location  # coarse: a country, derived offline
    assert row.activated_at is not None and row.online is True
    assert row.config == {"motion": {"enabled": True}}
    # The broker password is kept only as a keyed hash.
    assert row.credential_hash and creds.password not in row.credential_hash
    async with ctx.db.session() as s:
        ip = await s.scalar(select(DeviceAddress.ip).where(DeviceAddress.device_id == row.id))
        names = (await s.execute(select(Channel.name).where(Channel.device_id == row.id))).scalars().all()
    assert ip == "8.8.8.8" and names == ["Channel 1"]


@pytest.mark.req("B6")
async def test_private_addresses_give_no_country_and_the_broker_view_wins(ctx):
    fd = await make_device(ctx)
    await service.activate(ctx, fd.serial, activation(fd, ip="1.1.1.1"), "127.0.0.1")
    row = await _row(ctx, fd.serial)
    assert row.country is None and row.location is None
    fd2 = await make_device(ctx)
    await service.activate(ctx, fd2.serial, activation(fd2, ip="1.1.1.1"), None)
    row2 = await _row(ctx, fd2.serial)
    assert row2.country == "AU"


@pytest.mark.parametrize("bad", [dict(mac="not-a-mac"), dict(firmware=""), dict(channels=[{"index": -1}]),
                                 dict(channels=[{"index": 0}, {"index": 0}]), dict(config={"x": float("nan")})])
async def test_a_bad_activation_report_is_refused_and_changes_nothing(ctx, bad):
    fd = await make_device(ctx)
    with pytest.raises(BadReport):
        await service.activate(ctx, fd.serial, activation(fd, **bad), "8.8.8.8")
    row = await _row(ctx, fd.serial)
    assert row.mac is None and row.credential_hash is None and row.credential_generation == 0


@pytest.mark.req("B6", "B10")
async def test_authenticate_accepts_factory_then_device_credentials(ctx):
    fd = await make_device(ctx, secret="burned-in-secret")
    auth = await service.authenticate_device(ctx, f"factory:{fd.serial}", "burned-in-secret")
    assert auth is not None and auth.serial == fd.serial and auth.stage == "factory"
    assert await service.authenticate_device(ctx, f"factory:{fd.serial}", "wrong-secret") is None
    # No device credentials before activation.
    assert await service.authenticate_device(ctx, fd.serial, "anything") is None
    assert await service.credentials_revoked(ctx, fd.serial) is False
    creds = await service.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    auth = await service.authenticate_device(ctx, creds.username, creds.password)
    assert auth is not None and auth.stage == "device"
    assert await service.authenticate_device(ctx, creds.username, creds.password + "x") is None
    assert await service.authenticate_device(ctx, "NOSUCHSERIAL", creds.password) is None
    # A second activation replaces the credentials: the old password stops working.
    creds2 = await service.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    assert await service.authenticate_device(ctx, creds.username, creds.password) is None
    assert await service.authenticate_device(ctx, creds2.username, creds2.password) is not None


@pytest.mark.req("B10")
async def test_deleting_a_device_revokes_its_broker_credentials(ctx, client, gw):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner)
    creds = await service.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    gw.connected.add(fd.serial)
    assert (await client.delete(f"/api/v1/devices/{device_id}", headers=owner.h)).status_code == 204
    assert await service.credentials_revoked(ctx, fd.serial) is True
    assert await service.authenticate_device(ctx, creds.username, creds.password) is None
    assert gw.disconnected == [fd.serial]
    # The unit itself is back in factory state and can activate again with its factory secret.
    assert await service.authenticate_device(ctx, f"factory:{fd.serial}", fd.factory_secret) is not None
    assert await service.credentials_revoked(ctx, "NOSUCHSERIAL") is True


@pytest.mark.req("B6")
async def test_online_heartbeat_and_config(ctx):
    fd = await make_device(ctx)
    t0 = utcnow()
    await service.set_online(ctx, fd.serial, True, t0)
    await service.heartbeat(ctx, fd.serial, t0 + dt.timedelta(seconds=30), {"rssi": -51, "ip": "49.228.1.2"})
    row = await _row(ctx, fd.serial)
    assert row.online and row.last_seen_at == t0 + dt.timedelta(seconds=30)
    assert row.status == {"rssi": -51} and row.country == "TH"
    # A late last will from an older connection does not turn a live device offline.
    await service.set_online(ctx, fd.serial, False, t0 + dt.timedelta(seconds=10))
    assert (await _row(ctx, fd.serial)).online is True
    await service.set_online(ctx, fd.serial, False, t0 + dt.timedelta(seconds=90))
    row = await _row(ctx, fd.serial)
    assert row.online is False and row.last_seen_at == t0 + dt.timedelta(seconds=90)
    await service.report_config(ctx, fd.serial, {"night_vision": "auto"})
    assert (await _row(ctx, fd.serial)).config == {"night_vision": "auto"}
    with pytest.raises(BadReport):
        await service.report_config(ctx, fd.serial, ["not", "an", "object"])
    # Unknown serials are ignored, not stored.
    await service.set_online(ctx, "NOSUCHSERIAL", True, t0)


@pytest.mark.req("B11", "RET5")
async def test_alarm_with_snapshot_is_kept_seven_days(ctx, client):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner)
    at = utcnow()
    alarm_id = await alarms.record_device_alarm(ctx, fd.serial, AlarmReport(channel=0, type="human", at=at, snapshot=jpeg()))
    assert alarm_id
    async with ctx.db.session() as s:
        alarm = await s.get(Alarm, alarm_id)
    assert alarm.kind == "human" and alarm.snapshot_key.startswith("alarm_snapshot/")
    assert (await ctx.blobs.read(alarm.snapshot_key))[:3] == b"\xff\xd8\xff"
    r = await client.get(f"/api/v1/devices/{device_id}/alarms/{alarm_id}/snapshot", headers=owner.h)
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    # Six days later it is still there; past seven days the retention job removes row and picture.
    await purge_expired(ctx.db, ctx.blobs, now=utcnow() + dt.timedelta(days=6))
    async with ctx.db.session() as s:
        assert await s.get(Alarm, alarm_id) is not None
    report = await purge_expired(ctx.db, ctx.blobs, now=utcnow() + dt.timedelta(days=7, minutes=1))
    assert report.counts.get("alarm_events") == 1 and report.blobs >= 1
    async with ctx.db.session() as s:
        assert await s.get(Alarm, alarm_id) is None
    assert [k async for k in ctx.blobs.keys("alarm_snapshot/")] == []


@pytest.mark.req("B11")
async def test_alarm_input_is_checked(ctx, client):
    owner = await person(ctx)
    _, fd = await owned(ctx, client, owner)
    # Not a JPEG: the alarm is kept without a picture.
    alarm_id = await alarms.record_device_alarm(ctx, fd.serial, AlarmReport(channel=0, type="videoMotion", at=utcnow(),
                                                                      snapshot=b"\xff\xd8\xff" + b"junk" * 10))
    async with ctx.db.session() as s:
        assert (await s.get(Alarm, alarm_id)).snapshot_key is None
    with pytest.raises(BadReport):
        await alarms.record_device_alarm(ctx, fd.serial, AlarmReport(channel=5, type="human", at=utcnow()))
    with pytest.raises(BadReport):
        await alarms.record_device_alarm(ctx, fd.serial, AlarmReport(channel=0, type="human", at=dt.datetime(2026, 1, 1)))
    # An unbound device has nobody to notify: nothing is kept.
    loose = await make_device(ctx)
    assert await alarms.record_device_alarm(ctx, loose.serial, AlarmReport(channel=0, type="human", at=utcnow(),
                                                                     snapshot=jpeg())) == ""
    assert [k async for k in ctx.blobs.keys("alarm_snapshot/")] == []


@pytest.mark.req("RET5")
async def test_device_ip_is_kept_seven_days(ctx):
    fd = await make_device(ctx)
    await service.activate(ctx, fd.serial, activation(fd), "49.228.77.13")
    await purge_expired(ctx.db, ctx.blobs, now=utcnow() + dt.timedelta(days=7, minutes=1))
    async with ctx.db.session() as s:
        assert (await s.execute(select(DeviceAddress))).first() is None
