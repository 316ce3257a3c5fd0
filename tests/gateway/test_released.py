"""A device whose binding was erased (its owner deleted it, or erased the account) stops
producing personal data: its reports are refused until someone adds it again, and a
report in flight while the erasure runs leaves nothing behind."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import func, select

from faoyam.alarms import service as alarms
from faoyam.devices import service
from faoyam.devices.gateway import messages as m
from faoyam.devices.gateway import protocol as p
from faoyam.devices.gateway.presence import DeviceConnection
from faoyam.alarms.models import AlarmEvent as Alarm
from faoyam.devices.models import Device, DeviceAddress
from faoyam.devices.ports import AlarmReport
from faoyam.devices.validation import BadReport
from faoyam.privacy.subjects import Subject, erase_subject
from tests.devices.conftest import activation
from tests.gateway.conftest import bind, device_row, make_user, new_device, online

PUBLIC_IP = "49.228.77.13"  # Thailand in the offline table


async def _clean(ctx, serial: str) -> None:
    """Nothing of the binding is left on the unit, and nothing hangs off it."""
    row = await device_row(ctx, serial)
    assert row.owner_id is None and row.serial is None
    assert row.status is None and row.country is None and row.location is None and row.config is None
    assert row.last_seen_at is None and row.online is False and row.credential_hash is None
    async with ctx.db.session() as s:
        for table in (DeviceAddress, Alarm, DeviceConnection):
            n = await s.scalar(select(func.count()).select_from(table).where(table.device_id == row.id))
            assert n == 0, table.__tablename__


async def _bound_online(svc):
    uid = await make_user(svc)
    ident = await new_device(svc)
    await bind(svc, ident, uid)
    a = await online(svc, ident)
    return uid, ident, a


@pytest.mark.req("R3", "B10")
async def test_a_heartbeat_noted_before_the_erasure_writes_nothing_after_it(svc):
    gw = svc.gateway
    uid, ident, a = await _bound_online(svc)
    await a.stop()
    await gw.flush()
    # A heartbeat with an address is noted (not yet written) when the account is erased.
    await gw._on_heartbeat(ident.serial, m.Heartbeat.model_validate(
        p.envelope(status={"ip": PUBLIC_IP, "rssi": -40})))
    await erase_subject(svc.db, svc.blobs, Subject(user_id=uid))
    await gw.flush()
    await _clean(svc, ident.serial)
    # The unit's other reports are refused too, and so is activating it again.
    await service.report_config(svc, ident.serial, {"led": "on"})
    await service.set_online(svc, ident.serial, True, dt.datetime.now(dt.UTC))
    fd = ident.factory_device()
    with pytest.raises(BadReport) as exc:
        await service.activate(svc, ident.serial, activation(fd), PUBLIC_IP)
    assert exc.value.code == "device-released"
    assert await alarms.record_device_alarm(svc, ident.serial, AlarmReport(
        channel=0, type="human", at=dt.datetime.now(dt.UTC))) == ""
    await _clean(svc, ident.serial)
    # Someone adds the unit again: then it may activate and report.
    other = await make_user(svc)
    await bind(svc, ident, other)
    await service.activate(svc, ident.serial, activation(fd), PUBLIC_IP)
    assert (await device_row(svc, ident.serial)).country == "TH"


@pytest.mark.req("R3", "B10")
async def test_heartbeats_racing_an_erasure_leave_no_personal_data(svc):
    """Heartbeats and alarms keep coming while the account is erased (on PostgreSQL they
    interleave with the erasure's transaction); once all are done nothing is left."""
    uid, ident, a = await _bound_online(svc)
    await a.stop()
    stop = asyncio.Event()

    async def reports():
        n = 0
        while not stop.is_set() or n < 5:
            n += 1
            await service.heartbeats(svc, [(ident.serial, dt.datetime.now(dt.UTC), {"ip": PUBLIC_IP, "n": n})])
            await alarms.record_device_alarm(svc, ident.serial, AlarmReport(
                channel=0, type="human", at=dt.datetime.now(dt.UTC)))
            await asyncio.sleep(0)
        return n

    tasks = [asyncio.create_task(reports()) for _ in range(3)]
    await asyncio.sleep(0.05)
    await erase_subject(svc.db, svc.blobs, Subject(user_id=uid))
    stop.set()
    assert all(n >= 5 for n in await asyncio.gather(*tasks))
    await _clean(svc, ident.serial)


@pytest.mark.req("B10")
async def test_deleting_a_device_refuses_its_reports_in_flight(svc):
    gw = svc.gateway
    uid, ident, a = await _bound_online(svc)
    async with svc.db.session() as s:
        device_id = await s.scalar(select(Device.id).where(Device.serial == ident.serial))
    await gw._on_heartbeat(ident.serial, m.Heartbeat.model_validate(p.envelope(status={"ip": PUBLIC_IP})))
    await service.delete_device(svc, uid, device_id)
    await gw.flush()
    await _clean(svc, ident.serial)
    assert not await gw.is_online(ident.serial)
    await a.stop()
