"""Who may do what with a device: one decision, made in the service layer for every query.

Roles: the **owner** (the account the device is bound to) may do everything; an
**invitee** whose share was accepted may see the device and do what the share grants,
on the channels it covers; anyone else is a **stranger** and gets 404 — the answer for
a device that does not exist, so nobody learns which devices exist by probing ids.

Permissions:
    view      see the device (name, channels, status, cover) — every accepted share
    live, playback, alarms, control    — grantable by a share (B9)
    manage    rename, cover, password, time zone, Wi-Fi, sharing, delete — owner only

Other domains (media for live/playback, alarms) call ``require`` with their permission.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from faoyam.core.context import Context
from faoyam.core.errors import Forbidden, NotFound
from faoyam.devices.models import Device, Share

GRANTABLE = ("live", "playback", "alarms", "control")
PERMISSIONS = ("view", *GRANTABLE, "manage")
Permission = Literal["view", "live", "playback", "alarms", "control", "manage"]
_ID_RE = re.compile(r"[0-9a-f]{32}")


class DeviceNotFound(NotFound):
    code, title = "device-not-found", "No such device"


@dataclass(frozen=True)
class Access:
    device_id: str
    role: Literal["owner", "shared"]
    permissions: frozenset[str]
    channels: frozenset[int] | None  # None: every channel, including ones added later
    owner_id: str
    serial: str | None

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"

    def sees_channel(self, index: int) -> bool:
        return self.channels is None or index in self.channels


def _not_found() -> DeviceNotFound:
    return DeviceNotFound("There is no such device in your account.")


async def access(ctx: Context, user_id: str, device_id: str, session=None) -> Access | None:
    """The user's access to a device, or None for a stranger (one query; in ``session`` if given)."""
    if not _ID_RE.fullmatch(device_id or ""):
        return None
    if session is None:
        async with ctx.db.session() as s:
            return await access(ctx, user_id, device_id, s)
    q = (select(Device.owner_id, Device.serial, Share.permissions, Share.channels)
         .outerjoin(Share, (Share.device_id == Device.id) & (Share.invitee_id == user_id) & (Share.status == "accepted"))
         .where(Device.id == device_id))
    row = (await session.execute(q)).first()
    if row is None or row.owner_id is None:
        return None
    if row.owner_id == user_id:
        return Access(device_id, "owner", frozenset(PERMISSIONS), None, row.owner_id, row.serial)
    share = row
    if share.permissions is None:
        return None
    channels = None if share.channels is None else frozenset(share.channels)
    return Access(device_id, "shared", frozenset(("view", *share.permissions)), channels, row.owner_id, row.serial)


async def require(ctx: Context, user_id: str, device_id: str, permission: Permission = "view",
                  channel: int | None = None, session=None) -> Access:
    """The caller's access, or the problem that refuses it: 404 stranger, 403 missing permission.

    ``session``: decide in the caller's session (a read path that goes on to query)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    acc = await access(ctx, user_id, device_id, session)
    if acc is None:
        raise _not_found()
    if permission not in acc.permissions:
        if permission == "manage":
            raise Forbidden("Only the device's owner can do this.", code="owner-only")
        raise Forbidden(f"This device was shared with you without the '{permission}' permission.",
                        code="permission-missing", permission=permission)
    if channel is not None and not acc.sees_channel(channel):
        raise NotFound("There is no such channel on this device.", code="channel-not-found")
    return acc
