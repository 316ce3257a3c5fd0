"""Schedules read in the device's time zone, and the recorder's status reaching the
settings row (what the web role shows)."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from sqlalchemy import update

from faoyam.devices.models import Device
from faoyam.media.testfeed import feed
from faoyam.recordings import service

from tests.recordings.conftest import wait_for

# Monday 01:00-01:59 only.
MONDAY_1AM = [1 << 1, 0, 0, 0, 0, 0, 0]


async def _zone(ctx, device_id: str, tz: str | None) -> None:
    async with ctx.db.transaction() as s:
        await s.execute(update(Device).where(Device.id == device_id).values(time_zone=tz))


@pytest.mark.req("B5")
async def test_the_schedule_is_read_in_the_devices_time_zone(ctx, owned, recorder):
    channel = owned.channel()
    await service.set_channel_settings(ctx.db, owned.device_id, 0, service.ChannelSettings(schedule=MONDAY_1AM))
    sunday_18_utc = dt.datetime(2026, 11, 29, 18, 30, tzinfo=dt.UTC)  # Monday 01:30 in Bangkok (UTC+7)
    monday_01_utc = dt.datetime(2026, 11, 30, 1, 30, tzinfo=dt.UTC)  # Monday 08:30 in Bangkok
    await _zone(ctx, owned.device_id, "Asia/Bangkok")
    assert await recorder.sync(sunday_18_utc) == {channel}
    assert await recorder.sync(monday_01_utc) == set()
    await _zone(ctx, owned.device_id, None)  # no time zone: the schedule is read in UTC
    assert await recorder.sync(sunday_18_utc) == set()
    assert await recorder.sync(monday_01_utc) == {channel}
    await _zone(ctx, owned.device_id, "America/New_York")  # daylight saving comes with the zone
    summer_monday_01_ny = dt.datetime(2026, 7, 6, 5, 30, tzinfo=dt.UTC)  # EDT, UTC-4
    winter_monday_01_ny = dt.datetime(2026, 12, 7, 6, 30, tzinfo=dt.UTC)  # EST, UTC-5
    assert await recorder.sync(summer_monday_01_ny) == {channel}
    assert await recorder.sync(winter_monday_01_ny) == {channel}


@pytest.mark.req("B5", "B12")
async def test_the_recorder_writes_its_status_where_the_web_role_reads_it(ctx, owned, recorder, clip):
    await service.set_channel_settings(ctx.db, owned.device_id, 0, service.ChannelSettings())
    await recorder.sync()
    channel = owned.channel()
    rec = recorder.channels[channel]

    async def stored() -> str | None:
        return (await service.channel_status(ctx.db, owned.device_id, 0))[0]

    feed(recorder.hubs.get(channel), clip, loops=1)
    await wait_for(lambda: rec.status == "recording", what="recording")
    seen: list = []

    async def poll(want: str) -> None:
        for _ in range(500):
            value = await stored()
            seen.append(value)
            if value == want:
                return
            await asyncio.sleep(0.02)
        raise AssertionError(f"status {want!r} not stored: {seen[-3:]}")

    await poll("recording")
    await service.set_channel_settings(ctx.db, owned.device_id, 0, service.ChannelSettings(mode="off"))
    await recorder.sync()
    await poll("off")
