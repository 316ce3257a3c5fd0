"""The message center (B11): a person's alarm messages, filtered, marked read, deleted;
and a device's alarm list and snapshots for whoever may see its alarms.

A message shows only while its reader may still see the device's alarms on that channel
(the owner, or a share granting ``alarms`` over it): a share taken back hides the messages
it brought, and their snapshots with them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import bindparam, delete, func, select, update

from faoyam.alarms import links
from faoyam.alarms.models import AlarmDelivery, AlarmEvent, AlarmMessage
from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.errors import NotFound
from faoyam.devices import authz
from faoyam.devices import service as devices

MAX_PAGE = 200


@dataclass(frozen=True)
class MessageView:
    id: str
    alarm_id: str
    device_id: str
    device_name: str
    device_kind: str
    channel: int
    channel_name: str | None
    kind: str
    at: dt.datetime
    read: bool
    has_snapshot: bool
    snapshot_url: str | None  # signed, short-lived
    clip_url: str

    def as_json(self) -> dict:
        d = dict(self.__dict__)
        d["at"] = self.at.isoformat()
        return d


async def _visible(ctx: Context, user_id: str) -> dict:
    """device id -> the device (``DeviceOut``: its channels are those the user may see) for
    every device whose alarms the user may see."""
    out = {}
    for d in await devices.list_devices(ctx, user_id):
        if "alarms" in d.permissions:
            out[d.id] = d
    return out


def _view(ctx: Context, user_id: str, r, d) -> MessageView:
    at = r.at.astimezone(dt.UTC)
    channel_name = next((c.name for c in d.channels if c.index == r.channel), None)
    return MessageView(id=r.id, alarm_id=r.alarm_id, device_id=r.device_id, device_name=d.name or d.model,
                       device_kind=d.kind, channel=r.channel, channel_name=channel_name, kind=r.kind, at=at,
                       read=r.read_at is not None, has_snapshot=bool(r.snapshot_key),
                       snapshot_url=links.snapshot_link(ctx.key, ctx.settings.base_url, r.alarm_id, user_id)
                       if r.snapshot_key else None,
                       clip_url=links.clip_link(r.device_id, r.channel, at.isoformat()))


def _sees(d, channel: int) -> bool:
    return any(c.index == channel for c in d.channels)


_COLUMNS = (AlarmMessage.id, AlarmMessage.alarm_id, AlarmMessage.read_at, AlarmEvent.device_id, AlarmEvent.channel,
            AlarmEvent.kind, AlarmEvent.at, AlarmEvent.snapshot_key)


async def list_messages(ctx: Context, user_id: str, *, device_id: str | None = None, kind: str | None = None,
                        since: dt.datetime | None = None, until: dt.datetime | None = None,
                        unread: bool | None = None, before: dt.datetime | None = None,
                        limit: int = 50) -> list[MessageView]:
    """The person's messages, newest first, with the filters given (device, type, dates)."""
    visible = await _visible(ctx, user_id)
    if device_id is not None:
        visible = {k: v for k, v in visible.items() if k == device_id}
    if not visible:
        return []
    q = (select(*_COLUMNS).join(AlarmEvent, AlarmEvent.id == AlarmMessage.alarm_id)
         .where(AlarmMessage.user_id == user_id, AlarmEvent.device_id.in_(list(visible))))
    if kind:
        q = q.where(AlarmEvent.kind == kind)
    if since is not None:
        q = q.where(AlarmMessage.at >= since)
    if until is not None:
        q = q.where(AlarmMessage.at < until)
    if before is not None:
        q = q.where(AlarmMessage.at < before)
    if unread is not None:
        q = q.where(AlarmMessage.read_at.is_(None) if unread else AlarmMessage.read_at.is_not(None))
    limit = max(1, min(limit, MAX_PAGE))
    async with ctx.db.session() as s:
        rows = (await s.execute(q.order_by(AlarmMessage.at.desc(), AlarmMessage.id).limit(limit * 2))).all()
    out = [_view(ctx, user_id, r, visible[r.device_id]) for r in rows if _sees(visible[r.device_id], r.channel)]
    return out[:limit]


async def message_for_alarm(ctx: Context, user_id: str, alarm_id: str) -> MessageView | None:
    """The person's message of one alarm (the live stream's item), or None."""
    async with ctx.db.session() as s:
        r = (await s.execute(select(*_COLUMNS).join(AlarmEvent, AlarmEvent.id == AlarmMessage.alarm_id).where(
            AlarmMessage.user_id == user_id, AlarmMessage.alarm_id == alarm_id))).first()
    if r is None:
        return None
    visible = await _visible(ctx, user_id)
    d = visible.get(r.device_id)
    return _view(ctx, user_id, r, d) if d is not None and _sees(d, r.channel) else None


async def unread_count(ctx: Context, user_id: str) -> int:
    async with ctx.db.session() as s:
        return int((await s.execute(select(func.count()).select_from(AlarmMessage).where(
            AlarmMessage.user_id == user_id, AlarmMessage.read_at.is_(None)))).scalar() or 0)


async def mark_read(ctx: Context, user_id: str, message_ids: list[str] | None) -> int:
    """Mark these messages (None: all) read; returns how many changed."""
    q = update(AlarmMessage).where(AlarmMessage.user_id == user_id, AlarmMessage.read_at.is_(None))
    if message_ids is not None:
        q = q.where(AlarmMessage.id.in_(message_ids))
    async with ctx.db.transaction() as s:
        return (await s.execute(q.values(read_at=utcnow()))).rowcount


async def delete_messages(ctx: Context, user_id: str, message_ids: list[str] | None) -> int:
    """Delete these messages (None: all) of the person's message center, with their
    notifications; the event stays for the device's other recipients until it expires."""
    where = AlarmMessage.user_id == user_id
    if message_ids is not None:
        where &= AlarmMessage.id.in_(message_ids)
    async with ctx.db.transaction() as s:
        ids = list((await s.execute(select(AlarmMessage.id).where(where))).scalars())
        if not ids:
            return 0
        await remove_message_rows(s, ids)
    return len(ids)


async def remove_message_rows(s, ids: list[str]) -> None:
    await s.execute(delete(AlarmDelivery).where(AlarmDelivery.message_id.in_(ids)))  # they reference the messages
    await s.execute(delete(AlarmMessage).where(AlarmMessage.id.in_(ids)))


async def message_one(ctx: Context, user_id: str, message_id: str) -> MessageView:
    async with ctx.db.session() as s:
        alarm_id = (await s.execute(select(AlarmMessage.alarm_id).where(
            AlarmMessage.id == message_id, AlarmMessage.user_id == user_id))).scalar()
    view = alarm_id and await message_for_alarm(ctx, user_id, alarm_id)
    if not view:
        raise NotFound("There is no such message.", code="message-not-found")
    return view


# A device's alarms (the device page; the owner and invitees with ``alarms``) ----------------


@dataclass(frozen=True)
class AlarmView:
    id: str
    device_id: str
    channel: int
    kind: str
    at: dt.datetime
    has_snapshot: bool
    source: str

    def as_json(self) -> dict:
        return {"id": self.id, "channel": self.channel, "kind": self.kind, "type": self.kind,
                "at": self.at.isoformat(), "has_snapshot": self.has_snapshot, "source": self.source,
                "clip_url": links.clip_link(self.device_id, self.channel, self.at.isoformat())}


@lru_cache(maxsize=None)
def _device_alarms_query(some_channels: bool, before: bool):
    """The device alarm list's statement, one object per shape (each stays compiled)."""
    q = select(AlarmEvent.id, AlarmEvent.channel, AlarmEvent.kind, AlarmEvent.at, AlarmEvent.snapshot_key,
               AlarmEvent.source).where(AlarmEvent.device_id == bindparam("device_id"))
    if some_channels:
        q = q.where(AlarmEvent.channel.in_(bindparam("channels", expanding=True)))
    if before:
        q = q.where(AlarmEvent.at < bindparam("before"))
    return q.order_by(AlarmEvent.at.desc(), AlarmEvent.id).limit(bindparam("limit"))


async def list_device_alarms(ctx: Context, user_id: str, device_id: str, limit: int = 50,
                             before: dt.datetime | None = None) -> list[AlarmView]:
    """The device's alarms of the last seven days, newest first (an invitee: their channels)."""
    if not authz.is_device_id(device_id):
        authz.check(None)
    params: dict = {"device_id": device_id, "limit": max(1, min(limit, MAX_PAGE)), "before": before}
    async with ctx.db.reading() as s:  # rows, not objects: a hot read path (bench/bench_api.py)
        acc = await authz.require(ctx, user_id, device_id, "alarms", session=s)
        if acc.channels is not None:
            params["channels"] = sorted(acc.channels)
        rows = (await s.execute(_device_alarms_query(acc.channels is not None, before is not None), params)).all()
    return [AlarmView(r.id, device_id, r.channel, r.kind, r.at.astimezone(dt.UTC), bool(r.snapshot_key), r.source) for r in rows]


async def alarm_snapshot(ctx: Context, user_id: str, alarm_id: str, device_id: str | None = None) -> bytes:
    """The alarm's picture, for someone who may see the device's alarms on its channel."""
    async with ctx.db.session() as s:
        row = await s.get(AlarmEvent, alarm_id) if alarm_id and len(alarm_id) <= 32 else None
    if row is None or (device_id is not None and row.device_id != device_id):
        raise NotFound("There is no such alarm.", code="alarm-not-found")
    acc = await authz.require(ctx, user_id, row.device_id, "alarms")
    if not acc.sees_channel(row.channel):
        raise NotFound("There is no such alarm.", code="alarm-not-found")
    if not row.snapshot_key:
        raise NotFound("This alarm has no picture.", code="no-snapshot")
    return await ctx.blobs.read(row.snapshot_key)
