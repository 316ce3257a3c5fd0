"""Devices' clocks: the time zone each device lives in, for domains that read a schedule
in the owner's local hours (recording schedules). Read in bulk, one query."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from faoyam.core.database import Database
from faoyam.devices.models import Device


async def time_zones(db: Database, device_ids: Iterable[str]) -> dict[str, str | None]:
    """device id -> its IANA time zone (None: not set; the device's schedules read in UTC)."""
    ids = sorted(set(device_ids))
    if not ids:
        return {}
    async with db.session() as s:
        rows = await s.execute(select(Device.id, Device.time_zone).where(Device.id.in_(ids)))
        return {r.id: r.time_zone for r in rows}
