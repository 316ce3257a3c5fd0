"""Who may do what with a device: one decision, made in the service layer for every query.

Roles: the **owner** (the account the device is bound to) may do everything; an
**invitee** whose share was accepted may see the device and do what the share grants,
on the channels it covers; anyone else is a **stranger** and gets 404 — the answer for
a device that does not exist, so nobody learns which devices exist by probing ids.

Permissions:
    view      see the device (name, channels, status, cover) — every accepted share
    live, playback, alarms, control    — grantable by a share (B9); ``control`` covers
              commands: reboot, snapshot, configuration, PTZ, and talk-back on a doorbell
              (``devices.talkback``; the media token's ``talk`` maps to it)
    manage    rename, cover, password, time zone, Wi-Fi, sharing, delete — owner only

Other domains (media for live/playback, alarms) call ``require`` with their permission.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import bindparam, select

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


def share_join(user_id):
    """The outer join that finds ``user_id``'s accepted share of a device, if any: the one
    join every access decision reads (``access`` and the read paths that fold it in)."""
    return (Share.device_id == Device.id) & (Share.invitee_id == user_id) & (Share.status == "accepted")


# Built once: an unchanged statement object keeps its SQL compiled and its cache key.
_ACCESS = (select(Device.owner_id, Device.serial, Share.permissions, Share.channels)
           .outerjoin(Share, share_join(bindparam("user_id")))
           .where(Device.id == bindparam("device_id")))


def decide(user_id: str, device_id: str, owner_id: str | None, serial: str | None,
           share_permissions: list | None, share_channels: list | None) -> Access | None:
    """The access a device row (and ``user_id``'s accepted share of it, joined with
    ``share_join``) gives, or None for a stranger. The one place the roles are decided."""
    if owner_id is None:
        return None
    if owner_id == user_id:
        return Access(device_id, "owner", frozenset(PERMISSIONS), None, owner_id, serial)
    if share_permissions is None:
        return None
    channels = None if share_channels is None else frozenset(share_channels)
    return Access(device_id, "shared", frozenset(("view", *share_permissions)), channels, owner_id, serial)


def is_device_id(device_id: str | None) -> bool:
    return bool(_ID_RE.fullmatch(device_id or ""))


async def access(ctx: Context, user_id: str, device_id: str, session=None) -> Access | None:
    """The user's access to a device, or None for a stranger (one query; in ``session`` if given)."""
    if not is_device_id(device_id):
        return None
    if session is None:
        async with ctx.db.session() as s:
            return await access(ctx, user_id, device_id, s)
    row = (await session.execute(_ACCESS, {"user_id": user_id, "device_id": device_id})).first()
    if row is None:
        return None
    return decide(user_id, device_id, row.owner_id, row.serial, row.permissions, row.channels)


def check(acc: Access | None, permission: Permission = "view", channel: int | None = None) -> Access:
    """``acc`` if it allows ``permission`` (on ``channel``), else the problem that refuses it:
    404 stranger, 403 missing permission."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
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


async def require(ctx: Context, user_id: str, device_id: str, permission: Permission = "view",
                  channel: int | None = None, session=None) -> Access:
    """The caller's access, or the problem that refuses it (``check``).

    ``session``: decide in the caller's session (a read path that goes on to query)."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission!r}")
    return check(await access(ctx, user_id, device_id, session), permission, channel)
