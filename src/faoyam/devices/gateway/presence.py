"""Which devices are connected, in the database, so that every node sees it.

With several gateway processes on one broker (shared subscriptions), a device's online
announcement may be handled by one node, its heartbeats by another, its last will by a
third, and a command for it may come from a web node that handles none of them. So the
truth about a live connection is one row per connected unit in ``device_connections``,
written by whichever gateway node handles the message:

* an online announcement (or a heartbeat from a device with no row) inserts or replaces it,
  with the connection id the device chose (``conn``);
* heartbeats move ``seen_at`` forward, in batches (one transaction per flush);
* a last will deletes it, but only if it is the will of *that* connection (a late will of
  an older connection changes nothing), and any node's sweeper deletes rows whose
  ``seen_at`` is older than the heartbeat timeout.

Every statement is conditional, so two nodes doing the same thing at once (two sweepers)
cannot both act. The row holds no personal data of its own (a random connection id and
times); it hangs off the device row, so erasing a binding deletes it with the binding.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime
from faoyam.devices.models import Device
from faoyam.core.declarations import Link, TablePrivacy, not_personal


class DeviceConnection(Base):
    """A unit's live broker connection, as the gateway nodes see it."""

    __tablename__ = "device_connections"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"))

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True, info=not_personal(
        "random id of the device row this belongs to"))
    conn: Mapped[str | None] = mapped_column(String(64), info=not_personal(
        "random id the device chose for this connection; NULL when first seen through a heartbeat"))
    node: Mapped[str] = mapped_column(String(64), info=not_personal("the gateway process that saw it come online"))
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True, info=not_personal(
        "bookkeeping: the last sign of life of this connection (the owner sees devices.last_seen_at)"))


async def connect(db, device_id: str, conn: str | None, node: str, at: dt.datetime) -> None:
    """The device announced a (new) connection: replace whatever row it had."""
    for attempt in range(2):
        try:
            async with db.transaction() as s:
                row = await s.get(DeviceConnection, device_id)
                if row is None:
                    s.add(DeviceConnection(device_id=device_id, conn=conn, node=node, seen_at=at))
                else:
                    row.conn, row.node, row.seen_at = conn, node, max(at, row.seen_at)
            return
        except IntegrityError:  # another node inserted it a moment ago: update theirs
            if attempt:
                raise


async def disconnect(db, device_id: str, conn: str | None = None) -> bool:
    """Remove the row (of connection ``conn`` only, if given, or one of unknown connection).
    True if this call removed it."""
    q = delete(DeviceConnection).where(DeviceConnection.device_id == device_id)
    if conn is not None:
        q = q.where((DeviceConnection.conn == conn) | DeviceConnection.conn.is_(None))
    async with db.transaction() as s:
        return (await s.execute(q)).rowcount > 0


async def beat(db, seen: dict[str, dt.datetime], node: str) -> list[str]:
    """Heartbeats of many devices in one transaction; returns the ids that had no row
    (devices this node now marks online)."""
    if not seen:
        return []
    for attempt in range(2):
        try:
            async with db.transaction() as s:
                have = set((await s.execute(select(DeviceConnection.device_id)
                                            .where(DeviceConnection.device_id.in_(list(seen))))).scalars())
                if have:
                    await s.execute(update(DeviceConnection), [
                        {"device_id": d, "seen_at": at} for d, at in seen.items() if d in have])
                fresh = [d for d in seen if d not in have]
                s.add_all(DeviceConnection(device_id=d, conn=None, node=node, seen_at=seen[d]) for d in fresh)
            return fresh
        except IntegrityError:
            if attempt:
                raise
    return []


async def is_connected(db, device_id: str) -> bool:
    async with db.session() as s:
        return await s.get(DeviceConnection, device_id) is not None


async def connected_ids(db, device_ids: list[str]) -> set[str]:
    async with db.session() as s:
        return set((await s.execute(select(DeviceConnection.device_id)
                                    .where(DeviceConnection.device_id.in_(device_ids)))).scalars())


async def expire(db, before: dt.datetime) -> list[str]:
    """Delete the rows silent since ``before`` and mark those devices offline; returns the
    device ids this call removed (a row another node removed first is not counted)."""
    async with db.session() as s:
        stale = list((await s.execute(select(DeviceConnection.device_id)
                                      .where(DeviceConnection.seen_at < before))).scalars())
    gone = []
    for device_id in stale:
        async with db.transaction() as s:
            res = await s.execute(delete(DeviceConnection).where(DeviceConnection.device_id == device_id,
                                                                 DeviceConnection.seen_at < before))
            if res.rowcount:
                await s.execute(update(Device).where(Device.id == device_id).values(online=False))
                gone.append(device_id)
    return gone
