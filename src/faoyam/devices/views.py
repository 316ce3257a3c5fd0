"""How a device looks to the person asking: the owner sees the binding's details (B3, B6,
B8 presence); an invitee sees only what sharing needs — name, kind, model, status, cover
and the channels the share covers — never the serial, network or location details.

The read paths here (the device list, a device's page, its alarms) are what every page
polls, so they are written for few statements and little work per statement:

- the access decision and the channels are joined into the query that reads the rows
  (``authz.share_join``, decided by ``authz.decide``): the device list and a device's page
  are one statement, and the alarm list too unless a share covers only some channels;
- statements are built once, at import, with bound parameters: SQLAlchemy then reuses the
  compiled SQL and the statement's cache key instead of building both per request;
- rows are plain Core rows, never ORM objects, read through a plain connection
  (``ctx.db.reading()``: no ORM session around the statement; read-only, a fraction of the cost);
- a doorbell's chimes (and a chime's doorbell) of the account's own devices are found among
  the rows already read; only a shared doorbell or chime needs the pairs query.

``tests/devices/test_query_count.py`` holds the statement counts.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from sqlalchemy import Row, bindparam, select

from faoyam.accounts.service import user_briefs
from faoyam.core.context import Context
from faoyam.devices import authz
from faoyam.devices.authz import Access, Permission
from faoyam.devices.models import Alarm, Channel, Device, DeviceAddress, Share
from faoyam.devices.schemas import AlarmOut, ChannelOut, DeviceOut

# What ``describe`` shows of a device, and what the access decision and the pairs need: not
# the whole row (its credential hashes, status document and manufacturing date would be read
# and decoded for every channel row of the join, and never used).
_DEVICE_COLUMNS = (Device.id, Device.kind, Device.model, Device.abilities, Device.serial_hash, Device.paired_hash,
                   Device.owner_id, Device.serial, Device.name, Device.cover_key, Device.time_zone, Device.dst,
                   Device.wifi_ssid, Device.password_enc.is_not(None).label("has_password"), Device.bound_at,
                   Device.mac, Device.firmware, Device.country, Device.location, Device.activated_at, Device.online,
                   Device.last_seen_at, Device.config)
# A device's channels, joined to its row (one row per channel; NULLs for a device without).
_CHANNEL_COLUMNS = (Channel.index.label("ch_index"), Channel.name.label("ch_name"),
                    Channel.abilities.label("ch_abilities"), Channel.cover_key.label("ch_cover_key"))
# The device list: the account's devices and the devices shared with it (accepted shares),
# with the share, the address and the channels joined in.
_LIST = (select(*_DEVICE_COLUMNS, Share.permissions.label("share_permissions"), Share.channels.label("share_channels"),
                Share.accepted_at.label("share_accepted_at"), DeviceAddress.ip.label("address"), *_CHANNEL_COLUMNS)
         .outerjoin(Share, authz.share_join(bindparam("user_id")))
         .outerjoin(DeviceAddress, DeviceAddress.device_id == Device.id)
         .outerjoin(Channel, Channel.device_id == Device.id)
         .where((Device.owner_id == bindparam("user_id")) | (Share.id.is_not(None) & Device.owner_id.is_not(None)))
         .order_by(Channel.index))
# One device with the caller's share of it (the access decision), its address and channels.
_ONE = (select(*_DEVICE_COLUMNS, Share.permissions.label("share_permissions"), Share.channels.label("share_channels"),
               DeviceAddress.ip.label("address"), *_CHANNEL_COLUMNS)
        .outerjoin(Share, authz.share_join(bindparam("user_id")))
        .outerjoin(DeviceAddress, DeviceAddress.device_id == Device.id)
        .outerjoin(Channel, Channel.device_id == Device.id)
        .where(Device.id == bindparam("device_id"))
        .order_by(Channel.index))
_PAIRS = select(Device.id, Device.paired_hash, Device.serial_hash, Device.owner_id).where(
    Device.paired_hash.in_(bindparam("serials", expanding=True)) | Device.serial_hash.in_(bindparam("paired", expanding=True)))
_ALARM_COLUMNS = (Alarm.id, Alarm.channel, Alarm.type, Alarm.at, Alarm.snapshot_key)


@lru_cache(maxsize=None)
def _alarms_query(some_channels: bool, before: bool):
    """The alarm list's statement, one object per shape (so each stays compiled)."""
    q = select(*_ALARM_COLUMNS).where(Alarm.device_id == bindparam("device_id"))
    if some_channels:
        q = q.where(Alarm.channel.in_(bindparam("channels", expanding=True)))
    if before:
        q = q.where(Alarm.at < bindparam("before"))
    return q.order_by(Alarm.at.desc(), Alarm.id).limit(bindparam("limit"))


@lru_cache(maxsize=None)
def _alarms_with_access_query(before: bool):
    """The device's access columns and its newest alarms (one row per alarm, or one row of
    NULL alarm columns): the whole answer in one statement when every channel is visible."""
    on = Alarm.device_id == Device.id
    if before:
        on &= Alarm.at < bindparam("before")
    return (select(Device.owner_id, Device.serial, Share.permissions.label("share_permissions"),
                   Share.channels.label("share_channels"), *_ALARM_COLUMNS)
            .outerjoin(Share, authz.share_join(bindparam("user_id")))
            .outerjoin(Alarm, on)
            .where(Device.id == bindparam("device_id"))
            .order_by(Alarm.at.desc(), Alarm.id).limit(bindparam("limit")))


def _group(rows) -> list[tuple[Row, list]]:
    """Rows of devices joined to their channels -> [(the device's first row, its channels)]."""
    devices: dict[str, tuple[Row, list]] = {}
    for r in rows:
        entry = devices.setdefault(r.id, (r, []))
        if r.ch_index is not None:
            entry[1].append(r)
    return list(devices.values())


async def list_devices(ctx: Context, user_id: str) -> list[DeviceOut]:
    """The account's devices and those shared with it (accepted shares), shared ones marked:
    owned ones by the time they were added, then shared ones by the time they were accepted."""
    async with ctx.db.reading() as s:
        items: list[tuple[Row, Access, list]] = []
        for r, chans in _group((await s.execute(_LIST, {"user_id": user_id})).all()):
            acc = authz.decide(user_id, r.id, r.owner_id, r.serial, r.share_permissions, r.share_channels)
            if acc is not None:
                items.append((r, acc, chans))
        items.sort(key=lambda it: (not it[1].is_owner, (it[0].bound_at if it[1].is_owner else it[0].share_accepted_at)
                                   or dt.datetime.min.replace(tzinfo=dt.UTC), it[0].id))
        return await describe(ctx, s, items, all_owned_of=user_id)


async def get_device(ctx: Context, user_id: str, device_id: str, permission: Permission = "view") -> DeviceOut:
    """One device's page data: 404 for a stranger, like every device route."""
    if not authz.is_device_id(device_id):
        authz.check(None)
    async with ctx.db.reading() as s:
        grouped = _group((await s.execute(_ONE, {"user_id": user_id, "device_id": device_id})).all())
        row, chans = grouped[0] if grouped else (None, [])
        acc = authz.check(row and authz.decide(user_id, device_id, row.owner_id, row.serial, row.share_permissions,
                                               row.share_channels), permission)
        (out,) = await describe(ctx, s, [(row, acc, chans)])
    return out


async def list_alarms(ctx: Context, user_id: str, device_id: str, limit: int = 50,
                      before: dt.datetime | None = None) -> list[AlarmOut]:
    """The device's alarms of the last seven days, newest first (an invitee: their channels).

    One statement reads the access and the alarms; an invitee whose share covers only some
    channels needs a second, filtered one (a limit must count only the alarms they see)."""
    if not authz.is_device_id(device_id):
        authz.check(None)
    params: dict = {"user_id": user_id, "device_id": device_id, "limit": max(1, min(limit, 200))}
    if before is not None:
        params["before"] = before
    async with ctx.db.session() as s:
        rows = (await s.execute(_alarms_with_access_query(before is not None), params)).all()
        r = rows[0] if rows else None
        acc = authz.check(r and authz.decide(user_id, device_id, r.owner_id, r.serial, r.share_permissions,
                                             r.share_channels), "alarms")
        if acc.channels is not None:
            params["channels"] = sorted(acc.channels)
            rows = (await s.execute(_alarms_query(True, before is not None), params)).all()
    return [AlarmOut.model_construct(id=a.id, channel=a.channel, type=a.type, at=a.at, has_snapshot=bool(a.snapshot_key))
            for a in rows if a.id is not None]


async def describe(ctx: Context, session, items: list[tuple[Row, Access, list]], *,
                   all_owned_of: str | None = None) -> list[DeviceOut]:
    """DeviceOut for each (row, access, channel rows), with a fixed number of queries for the
    whole list: the sharers' nicknames and the pairs of shared doorbells/chimes, when there are
    any. Each row carries ``address`` (the device's IP, joined in by the caller).
    ``all_owned_of``: the items hold every device of this account (the device list), so
    the pairs among its own devices are found in them."""
    if not items:
        return []
    family = await _family(session, [row for row, _, _ in items], all_owned_of)
    briefs = await user_briefs(session, {acc.owner_id for _, acc, _ in items if not acc.is_owner})
    out = []
    for row, acc, chans in items:
        parent_id, accessory_ids = family.get(row.id, (None, []))
        fields = dict(
            id=row.id, kind=row.kind, model=row.model, name=row.name, role=acc.role, shared=not acc.is_owner,
            permissions=sorted(acc.permissions), online=row.online, last_seen_at=row.last_seen_at,
            has_cover=bool(row.cover_key), abilities=list(row.abilities or []),
            channels=[ChannelOut.model_construct(index=c.ch_index, name=c.ch_name, abilities=list(c.ch_abilities or []),
                                 has_cover=bool(c.ch_cover_key)) for c in chans if acc.sees_channel(c.ch_index)],
            parent_id=parent_id, accessory_ids=accessory_ids,
        )
        if acc.is_owner:
            fields.update(
                serial=row.serial, time_zone=row.time_zone, dst=row.dst, wifi_ssid=row.wifi_ssid,
                has_password=bool(row.has_password), mac=row.mac, ip=row.address, firmware=row.firmware,
                country=row.country, location=row.location, bound_at=row.bound_at, activated_at=row.activated_at,
                config=row.config,
            )
        else:
            brief = briefs.get(acc.owner_id)
            fields["shared_by"] = brief.nickname if brief else ""
        # The values come typed from the database: constructing without validation is safe,
        # and a tenth of the cost (``JsonOut`` serialises by the declared types).
        out.append(DeviceOut.model_construct(**fields))
    return out


async def _family(session, rows: list[Row], all_owned_of: str | None) -> dict[str, tuple[str | None, list[str]]]:
    """Doorbell ↔ chime pairs bound to the same account: {device id: (parent id, accessory ids)}.

    A pair is two devices of one owner; when ``rows`` hold every device of ``all_owned_of``,
    that account's pairs are among them and only the others' need a query."""
    out: dict[str, tuple[str | None, list[str]]] = {}
    doorbells = [r for r in rows if r.kind == "doorbell"]
    chimes = [r for r in rows if r.kind == "chime" and r.paired_hash]
    if not doorbells and not chimes:
        return out
    known = [r for r in rows if all_owned_of is not None and r.owner_id == all_owned_of]

    def unknown(r) -> bool:
        return all_owned_of is None or r.owner_id != all_owned_of

    related = list(known)
    if any(unknown(r) for r in doorbells) or any(unknown(r) for r in chimes):
        # One query for both directions: the doorbells' chimes and the chimes' doorbells.
        related += (await session.execute(_PAIRS, {"serials": [d.serial_hash for d in doorbells if unknown(d)],
                                                   "paired": [c.paired_hash for c in chimes if unknown(c)]})).all()
    for d in doorbells:
        out[d.id] = (None, sorted({k.id for k in related if k.paired_hash == d.serial_hash and k.owner_id == d.owner_id}))
    for c in chimes:
        p = next((p.id for p in related if p.serial_hash == c.paired_hash and p.owner_id == c.owner_id), None)
        out[c.id] = (p, [])
    return out
