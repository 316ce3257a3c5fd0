"""How a device looks to the person asking: the owner sees the binding's details (B3, B6,
B8 presence); an invitee sees only what sharing needs — name, kind, model, status, cover
and the channels the share covers — never the serial, network or location details.
"""

from __future__ import annotations

from sqlalchemy import Row, select

from faoyam.accounts.service import user_briefs
from faoyam.core.context import Context
from faoyam.devices.authz import Access
from faoyam.devices.models import Channel, Device, DeviceAddress
from faoyam.devices.schemas import ChannelOut, DeviceOut


async def describe(ctx: Context, session, items: list[tuple[Device | Row, Access]],
                   addresses: dict[str, str] | None = None) -> list[DeviceOut]:
    """DeviceOut for each (row, access), with a fixed number of queries for the whole list:
    channels, then the doorbell/chime pairs and the sharers' nicknames when there are any.
    ``addresses`` (device id -> IP) when the caller loaded them with the rows."""
    if not items:
        return []
    ids = [row.id for row, _ in items]
    channels: dict[str, list] = {i: [] for i in ids}
    q = (select(Channel.device_id, Channel.index.label("idx"), Channel.name, Channel.abilities, Channel.cover_key)
         .where(Channel.device_id.in_(ids)).order_by(Channel.index))
    for ch in (await session.execute(q)).all():  # plain rows: read-only, cheaper than ORM objects
        channels[ch.device_id].append(ch)
    owned = [row for row, acc in items if acc.is_owner]
    if addresses is None:
        addresses = {}
        if owned:
            q = select(DeviceAddress.device_id, DeviceAddress.ip).where(DeviceAddress.device_id.in_([r.id for r in owned]))
            addresses = {d: ip for d, ip in (await session.execute(q)).all()}
    family = await _family(session, [row for row, _ in items])
    briefs = await user_briefs(session, {acc.owner_id for _, acc in items if not acc.is_owner})
    out = []
    for row, acc in items:
        parent_id, accessory_ids = family.get(row.id, (None, []))
        d = DeviceOut(
            id=row.id, kind=row.kind, model=row.model, name=row.name, role=acc.role, shared=not acc.is_owner,
            permissions=sorted(acc.permissions), online=row.online, last_seen_at=row.last_seen_at,
            has_cover=bool(row.cover_key), abilities=list(row.abilities or []),
            channels=[ChannelOut(index=c.idx, name=c.name, abilities=list(c.abilities or []), has_cover=bool(c.cover_key))
                      for c in channels[row.id] if acc.sees_channel(c.idx)],
            parent_id=parent_id, accessory_ids=accessory_ids,
        )
        if acc.is_owner:
            d = d.model_copy(update=dict(
                serial=row.serial, time_zone=row.time_zone, dst=row.dst, wifi_ssid=row.wifi_ssid,
                has_password=bool(row.password_enc), mac=row.mac, ip=addresses.get(row.id), firmware=row.firmware,
                country=row.country, location=row.location, bound_at=row.bound_at, activated_at=row.activated_at,
                config=row.config,
            ))
        else:
            brief = briefs.get(acc.owner_id)
            d = d.model_copy(update={"shared_by": brief.nickname if brief else ""})
        out.append(d)
    return out


async def _family(session, rows: list[Device]) -> dict[str, tuple[str | None, list[str]]]:
    """Doorbell ↔ chime pairs bound to the same account: {device id: (parent id, accessory ids)}."""
    out: dict[str, tuple[str | None, list[str]]] = {}
    doorbells = [r for r in rows if r.kind == "doorbell"]
    chimes = [r for r in rows if r.kind == "chime" and r.paired_hash]
    if not doorbells and not chimes:
        return out
    # One query for both directions: the doorbells' chimes and the chimes' doorbells.
    q = select(Device.id, Device.paired_hash, Device.serial_hash, Device.owner_id).where(
        Device.paired_hash.in_([d.serial_hash for d in doorbells]) | Device.serial_hash.in_([c.paired_hash for c in chimes]))
    related = (await session.execute(q)).all()
    for d in doorbells:
        out[d.id] = (None, sorted(k.id for k in related if k.paired_hash == d.serial_hash and k.owner_id == d.owner_id))
    for c in chimes:
        p = next((p.id for p in related if p.serial_hash == c.paired_hash and p.owner_id == c.owner_id), None)
        out[c.id] = (p, [])
    return out
