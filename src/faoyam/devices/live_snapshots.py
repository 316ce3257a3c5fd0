"""The last live snapshot of each channel: the picture on a device's card on Home (B4).

The media worker, while a channel's stream runs, decodes its latest keyframe to JPEG at
most every ``media_snapshot_seconds`` and hands it to :func:`store_snapshot`. The picture
is a blob of the declared kind ``live_snapshot`` referenced from
``device_channels.snapshot_key`` — part of the binding, so export lists it, erasure and
deleting the device tombstone it (``docs/blob-lifecycle.md``), and replacing it tombstones
the previous one in the same transaction (``blob_transaction``).

Reading it is a live-view right: the owner, an invitee whose share has ``live`` on that
channel, or a share link naming the channel. The picture is never at a public address;
the card's ``<img>`` points at an authorized route with the snapshot's time as a version,
so a browser may cache it privately and still sees a new one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.errors import NotFound
from faoyam.devices import authz
from faoyam.devices.links import live_link
from faoyam.devices.models import Channel, Device
from faoyam.devices.schemas import DeviceOut
from faoyam.privacy.blobrefs import blob_transaction


@dataclass(frozen=True)
class CardSnapshot:
    """Which channel's picture a card shows, and a version for its URL (cache busting)."""

    channel: int
    version: int  # the snapshot's time, unix milliseconds


class _Unbound(Exception):
    """The channel is gone or its device was unbound while the picture was being written."""


def _bound_channel(device_id: str, channel: int):
    return (select(Channel).join(Device, Device.id == Channel.device_id)
            .where(Channel.device_id == device_id, Channel.index == channel, Device.owner_id.is_not(None)))


async def store_snapshot(ctx: Context, device_id: str, channel: int, jpeg: bytes) -> bool:
    """Make ``jpeg`` the channel's last snapshot (the previous one is tombstoned). False if
    the channel does not exist or its device is not bound to anyone (nothing is kept)."""
    async with ctx.db.session() as s:  # a camera of a removed device: no blob is even written
        if (await s.execute(_bound_channel(device_id, channel))).scalar_one_or_none() is None:
            return False
    try:
        async with blob_transaction(ctx.db, ctx.blobs) as tx:  # blob first; removed again on failure
            key = await tx.put("live_snapshot", jpeg)
            row = (await tx.session.execute(_bound_channel(device_id, channel))).scalar_one_or_none()
            if row is None:  # unbound meanwhile
                raise _Unbound()
            tx.drop(row.snapshot_key)
            row.snapshot_key, row.snapshot_at = key, utcnow()
    except _Unbound:
        return False
    return True


async def _read(ctx: Context, device_id: str, channel: int) -> tuple[bytes, dt.datetime]:
    async with ctx.db.session() as s:
        row = (await s.execute(select(Channel.snapshot_key, Channel.snapshot_at)
                               .where(Channel.device_id == device_id, Channel.index == channel))).first()
    if row is None or not row.snapshot_key:
        raise NotFound("This camera has no snapshot yet.", code="no-snapshot")
    return await ctx.blobs.read(row.snapshot_key), row.snapshot_at


async def last_snapshot(ctx: Context, user_id: str, device_id: str, channel: int) -> tuple[bytes, dt.datetime]:
    """(JPEG, taken at) for a viewer allowed live view of the channel; 404/403 problems otherwise."""
    await authz.require(ctx, user_id, device_id, "live", channel)
    return await _read(ctx, device_id, channel)


async def link_last_snapshot(ctx: Context, token: str, channel: int) -> tuple[bytes, dt.datetime]:
    """The same through a share link that names the channel."""
    _, device_id = await live_link(ctx, token, channel)
    return await _read(ctx, device_id, channel)


async def card_snapshots(ctx: Context, devices: Iterable[DeviceOut]) -> dict[str, CardSnapshot]:
    """For Home: the picture each card may show, by device id — the lowest-numbered channel
    the viewer may watch that has a snapshot. ``devices`` is what ``list_devices`` gave this
    viewer (its ``permissions`` and ``channels`` are already cut to what they may see)."""
    visible = {d.id: {c.index for c in d.channels} for d in devices if "live" in d.permissions}
    if not visible:
        return {}
    async with ctx.db.session() as s:
        rows = (await s.execute(select(Channel.device_id, Channel.index, Channel.snapshot_at)
                                .where(Channel.device_id.in_(list(visible)), Channel.snapshot_key.is_not(None))
                                .order_by(Channel.device_id, Channel.index))).all()
    found: dict[str, CardSnapshot] = {}
    for device_id, index, at in rows:
        if device_id not in found and index in visible[device_id]:
            version = int(at.timestamp() * 1000) if at is not None else 0
            found[device_id] = CardSnapshot(index, version)
    return found
