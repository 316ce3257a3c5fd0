"""Who an alarm of a device is for (B11, B9): the owner, and every invitee whose accepted
share grants ``alarms`` (on the channels it covers). The alarms domain asks this once per
alarm, so it is two statements whatever the number of shares."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import bindparam, select

from faoyam.core.context import Context
from faoyam.devices.models import Channel, Device, Share

_DEVICE = (select(Device.owner_id, Device.name, Device.model, Device.kind, Device.time_zone,
                  Channel.index.label("ch_index"), Channel.name.label("ch_name"))
           .outerjoin(Channel, Channel.device_id == Device.id)
           .where(Device.id == bindparam("device_id")))
_SHARES = select(Share.invitee_id, Share.permissions, Share.channels).where(
    Share.device_id == bindparam("device_id"), Share.status == "accepted")


@dataclass(frozen=True)
class AlarmAudience:
    device_id: str
    owner_id: str
    name: str
    kind: str
    time_zone: str | None
    channels: dict[int, str | None] = field(default_factory=dict)  # index -> name
    # user id -> the channels their share covers (None: all), the owner first
    recipients: dict[str, frozenset[int] | None] = field(default_factory=dict)

    def for_channel(self, channel: int) -> list[str]:
        return [u for u, chans in self.recipients.items() if chans is None or channel in chans]


async def alarm_audience(ctx: Context, device_id: str, session=None) -> AlarmAudience | None:
    """The device's owner, channels and alarm recipients; None when it is not bound.
    ``session``: read in the caller's session (it goes on to read its own tables)."""
    if session is None:
        async with ctx.db.session() as s:
            return await alarm_audience(ctx, device_id, s)
    rows = (await session.execute(_DEVICE, {"device_id": device_id})).all()
    if not rows or rows[0].owner_id is None:
        return None
    shares = (await session.execute(_SHARES, {"device_id": device_id})).all()
    first = rows[0]
    recipients: dict[str, frozenset[int] | None] = {first.owner_id: None}
    for sh in shares:
        if "alarms" in (sh.permissions or []) and sh.invitee_id not in recipients:
            recipients[sh.invitee_id] = None if sh.channels is None else frozenset(sh.channels)
    return AlarmAudience(device_id=device_id, owner_id=first.owner_id, name=first.name or first.model, kind=first.kind,
                         time_zone=first.time_zone,
                         channels={r.ch_index: r.ch_name for r in rows if r.ch_index is not None},
                         recipients=recipients)
