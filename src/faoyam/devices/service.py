"""Device logic: adding, listing, naming, covers, time zone, deleting (B3, B6, B7, B10).

Every function that acts for a person takes their user id and asks ``authz.require``
first; routes never decide who may do what. The gateway-facing functions of the
contract (``devices/ports.py``) live in ``registry`` and are re-exported here, as are
the device commands (``control``), sharing (``sharing``) and share links (``links``), so
that ``faoyam.devices.service`` is the one public surface of the domain.
"""

from __future__ import annotations

import datetime as dt
import hmac
import logging

from sqlalchemy import select, update

from faoyam.accounts.photos import reencode_photo
from faoyam.core.context import Context
from faoyam.core.cpu import offload
from faoyam.core.database import utcnow
from faoyam.core.errors import Conflict, Forbidden, Invalid, NotFound
from faoyam.core.ratelimit import Limit
from faoyam.devices import authz, commands
from faoyam.devices import validation as v
from faoyam.devices.authz import Access
from faoyam.devices.control import (  # noqa: F401 - re-exported
    device_password,
    password_context,
    provision_wifi,
    ptz_locate,
    ptz_move,
    ptz_position,
    reboot,
    reset_password,
    set_config,
    set_password,
    snapshot,
)
from faoyam.devices.links import create_link, list_links, revoke_link, view_link  # noqa: F401 - re-exported (B9)
from faoyam.devices.models import Alarm, Channel, Device, DeviceAddress, Share
from faoyam.devices.registry import (  # noqa: F401 - re-exported: the contract of ports.py
    activate,
    authenticate_device,
    credentials_revoked,
    factory_register,
    find_by_serial,
    heartbeat,
    heartbeats,
    record_alarm,
    record_server_alarm,
    report_config,
    safety_code_hash,
    set_online,
)
from faoyam.devices.schemas import AddDeviceIn, AlarmOut, DeviceOut, DevicePatchIn
from faoyam.devices.sharing import (  # noqa: F401 - re-exported (B9)
    accept_share,
    decline_share,
    incoming_shares,
    leave_share,
    list_shares,
    revoke_share,
    share_device,
    update_share,
)
from faoyam.devices.views import get_device, list_alarms, list_devices  # noqa: F401 - re-exported: the read paths
from faoyam.privacy.blobrefs import blob_transaction
from faoyam.privacy.subjects import remove_rows

log = logging.getLogger(__name__)

COVER_MAX_SIDE = 960
_ADD_WINDOW = dt.timedelta(minutes=15)
_ADD_MAX_FAILURES = 10  # wrong serials or codes per account per window
_SERIAL_WINDOW = dt.timedelta(hours=1)
_SERIAL_MAX_FAILURES = 10  # wrong codes for one serial per hour, whoever tries


class UnknownSerial(NotFound):
    code, title = "unknown-serial", "Unknown serial number"


class WrongSafetyCode(Forbidden):
    code, title = "wrong-safety-code", "Wrong safety code"


class AlreadyYours(Conflict):
    code, title = "already-yours", "Already in your account"


class BoundElsewhere(Conflict):
    code, title = "bound-elsewhere", "Added to another account"


# Adding a device (B3) -------------------------------------------------------------------


async def add_device(ctx: Context, user_id: str, data: AddDeviceIn) -> DeviceOut:
    """Bind a device to the account with the serial and safety code from its label.

    Everything is checked before anything is written; a Wi-Fi password goes to the
    device (``provision_wifi``) and nowhere else. Chimes paired with a doorbell at the
    factory come along with it.
    """
    serial = v.normalize_serial(data.serial)
    code = v.normalize_safety_code(data.safety_code)
    name = v.normalize_name(data.name) if data.name is not None else None
    tz = v.normalize_time_zone(data.time_zone) if data.time_zone is not None else None
    ssid = v.normalize_ssid(data.wifi_ssid) if data.wifi_ssid is not None else None
    wifi_password = data.wifi_password.get_secret_value() if data.wifi_password is not None else None
    if wifi_password is not None:
        if ssid is None:
            raise Invalid("wifi_ssid", "Give the Wi-Fi network name with its password.", code="ssid-required")
        v.check_wifi_password(wifi_password)
    device_pw = data.device_password.get_secret_value() if data.device_password is not None else None
    if device_pw is not None:
        v.check_device_password(device_pw, "device_password")

    # Each try counts (atomically, before the code is compared) and is forgotten if it was right.
    msg = "Too many wrong serial numbers or safety codes. Wait a while, then try again."
    tried = await ctx.limiter.reserve([Limit("device-add-user", user_id, _ADD_MAX_FAILURES, _ADD_WINDOW),
                                       Limit("device-add-serial", serial, _SERIAL_MAX_FAILURES, _SERIAL_WINDOW)], msg)
    async with ctx.db.session() as s:
        row = await find_by_serial(s, ctx, serial)
        doorbell_owner = None
        if row is not None and row.kind == "chime" and row.paired_hash:
            doorbell_owner = await s.scalar(select(Device.owner_id).where(Device.serial_hash == row.paired_hash))
    if row is None:
        raise UnknownSerial("No device has this serial number. Check it on the label.")
    if row.owner_id == user_id:
        await ctx.limiter.release(tried)
        raise AlreadyYours("This device is already in your account.")
    if not hmac.compare_digest(row.safety_code_hash, safety_code_hash(ctx, serial, code)):
        raise WrongSafetyCode("The safety code does not match this device. Check it on the label.")
    await ctx.limiter.release(tried)  # the label was right
    # Only someone holding the label learns that the device is bound to someone else.
    if row.owner_id is not None or doorbell_owner not in (None, user_id):
        raise BoundElsewhere("This device is in another account. Its owner must delete it first.")
    if data.model is not None and data.model.strip().casefold() != row.model.casefold():
        raise Invalid("model", f"This serial belongs to a {row.model}, not a {data.model.strip()}.", code="model-mismatch")

    if wifi_password is not None:
        await commands.send(ctx, serial, "provision_wifi", {"ssid": ssid, "password": wifi_password})
    now = utcnow()
    async with ctx.db.transaction() as s:
        # Compare-and-set: of two people adding the same device at once, one wins.
        res = await s.execute(update(Device).where(Device.id == row.id, Device.owner_id.is_(None)).values(
            owner_id=user_id, serial=serial, name=name or row.model, time_zone=tz, dst=data.dst, wifi_ssid=ssid,
            password_enc=ctx.secrets.encrypt(device_pw, context=password_context(row.id)) if device_pw else None,
            bound_at=now))
        if res.rowcount != 1:
            raise BoundElsewhere("This device was just added to another account.")
        if row.kind == "doorbell":
            await s.execute(update(Device).where(Device.paired_hash == row.serial_hash, Device.owner_id.is_(None))
                            .values(owner_id=user_id, name=Device.model, bound_at=now))
    log.info("devices.added", extra={"device": row.id, "user": user_id})
    return await get_device(ctx, user_id, row.id)


# Reading ------------------------------------------------------------------------------


# list_devices, get_device: the read paths live with the views (``faoyam.devices.views``).


# Changing -----------------------------------------------------------------------------


async def update_device(ctx: Context, user_id: str, device_id: str, patch: DevicePatchIn) -> DeviceOut:
    """Rename (B7), set time zone and daylight saving (B3). Only the fields sent change."""
    await authz.require(ctx, user_id, device_id, "manage")
    fields = patch.model_fields_set
    if not fields:
        raise Invalid("body", "Send at least one of name, time_zone, dst.", code="nothing-to-change")
    values: dict = {}
    if "name" in fields:
        values["name"] = v.normalize_name(patch.name or "")
    if "time_zone" in fields:
        values["time_zone"] = v.normalize_time_zone(patch.time_zone) if patch.time_zone is not None else None
    if "dst" in fields:
        if patch.dst is None:
            raise Invalid("dst", "Daylight saving is on (true) or off (false).", code="invalid")
        values["dst"] = patch.dst
    async with ctx.db.transaction() as s:
        row = await s.get(Device, device_id)
        for k, val in values.items():
            setattr(row, k, val)
        serial, tz, dst = row.serial, row.time_zone, row.dst
    if {"time_zone", "dst"} & fields:
        await _push_clock(ctx, serial, tz, dst)
    return await get_device(ctx, user_id, device_id)


async def _push_clock(ctx: Context, serial: str | None, tz: str | None, dst: bool) -> None:
    """Tell a connected device its new time zone. The stored setting is the truth either way;
    an offline device is told by the gateway's configuration sync when it comes back."""
    if not await commands.is_online(ctx, serial):
        return
    try:
        await commands.send(ctx, serial, "set_config", {"time_zone": tz, "dst": dst})
    except Exception:  # noqa: BLE001 - see docstring
        log.warning("devices.clock_push_failed", exc_info=True)


async def _channel(s, device_id: str, index: int) -> Channel:
    ch = (await s.execute(select(Channel).where(Channel.device_id == device_id, Channel.index == index))).scalar_one_or_none()
    if ch is None:
        raise NotFound("There is no such channel on this device.", code="channel-not-found")
    return ch


async def rename_channel(ctx: Context, user_id: str, device_id: str, index: int, name: str) -> DeviceOut:
    """Name a channel (B7)."""
    await authz.require(ctx, user_id, device_id, "manage")
    name = v.normalize_name(name)
    async with ctx.db.transaction() as s:
        (await _channel(s, device_id, index)).name = name
    return await get_device(ctx, user_id, device_id)


# Covers (B7) ----------------------------------------------------------------------------


async def _cover_holder(s, device_id: str, channel: int | None) -> Device | Channel:
    """The row that holds the cover: the device, or one of its channels."""
    return await (_channel(s, device_id, channel) if channel is not None else s.get(Device, device_id))


async def set_cover(ctx: Context, user_id: str, device_id: str, data: bytes, channel: int | None = None) -> None:
    """Replace the cover picture of a device or one of its channels; the old file is deleted."""
    await authz.require(ctx, user_id, device_id, "manage")
    if channel is not None:
        async with ctx.db.session() as s:
            await _channel(s, device_id, channel)
    s_ = ctx.settings
    jpeg = await offload(reencode_photo, data, max_bytes=s_.max_photo_bytes, max_side=COVER_MAX_SIDE)
    async with blob_transaction(ctx.db, ctx.blobs) as tx:  # old cover tombstoned; new one removed on failure
        key = await tx.put("device_cover", jpeg)
        target = await _cover_holder(tx.session, device_id, channel)
        tx.drop(target.cover_key)
        target.cover_key = key



async def get_cover(ctx: Context, user_id: str, device_id: str, channel: int | None = None) -> bytes:
    await authz.require(ctx, user_id, device_id, "view", channel=channel)
    async with ctx.db.session() as s:
        key = (await _cover_holder(s, device_id, channel)).cover_key
    if not key:
        raise NotFound("No cover picture is set.", code="no-cover")
    return await ctx.blobs.read(key)


async def delete_cover(ctx: Context, user_id: str, device_id: str, channel: int | None = None) -> None:
    await authz.require(ctx, user_id, device_id, "manage")
    async with blob_transaction(ctx.db, ctx.blobs) as tx:
        target = await _cover_holder(tx.session, device_id, channel)
        tx.drop(target.cover_key)
        target.cover_key = None


# Deleting (B10) -------------------------------------------------------------------------


async def delete_device(ctx: Context, user_id: str, device_id: str) -> dict:
    """Remove the device and its paired accessories from the account.

    The generic erasure resets each unit to its factory state (the binding's columns are
    personal and anonymised), which also revokes its broker credentials, and removes
    everything hanging off it: channel names and covers, alarms, addresses, shares,
    share links. Then the gateway drops the devices' connections.
    """
    acc = await authz.require(ctx, user_id, device_id, "manage")
    async with ctx.db.session() as s:
        row = await s.get(Device, device_id)
        units = [(row.id, row.serial)]
        if row.kind == "doorbell":
            units += (await s.execute(select(Device.id, Device.serial).where(
                Device.paired_hash == row.serial_hash, Device.owner_id == user_id))).all()
    ids = [i for i, _ in units]
    t = Device.__table__
    report = await remove_rows(ctx.db, ctx.blobs, "devices", t.c.id.in_(ids) & (t.c.owner_id == acc.owner_id),
                               reason="device_removed")
    await commands.released(ctx, ids, [serial for _, serial in units if serial])
    log.info("devices.deleted", extra={"device": device_id, "units": len(ids), "rows": report.rows})
    return {"removed": ids, "rows": report.rows, "files": report.blobs}


# Alarms (B11) ---------------------------------------------------------------------------


async def alarm_snapshot(ctx: Context, user_id: str, device_id: str, alarm_id: str) -> bytes:
    acc = await authz.require(ctx, user_id, device_id, "alarms")
    async with ctx.db.session() as s:
        row = (await s.execute(select(Alarm).where(Alarm.id == alarm_id, Alarm.device_id == device_id))).scalar_one_or_none()
    if row is None or not acc.sees_channel(row.channel):
        raise NotFound("There is no such alarm.", code="alarm-not-found")
    if not row.snapshot_key:
        raise NotFound("This alarm has no picture.", code="no-snapshot")
    return await ctx.blobs.read(row.snapshot_key)


# Keys -----------------------------------------------------------------------------------


async def rotate_device_secrets(ctx: Context) -> dict:
    """Re-encrypt every stored device password with the newest key (``device_keys``).

    Run after putting a new key first in ``FAOYAM_DEVICE_KEYS``; once it reports no
    unreadable secrets, the old key can be removed from the list.
    """
    rotated = unreadable = 0
    async with ctx.db.session() as s:
        rows = (await s.execute(select(Device.id, Device.password_enc).where(Device.password_enc.is_not(None)))).all()
    for device_id, sealed in rows:
        if not ctx.secrets.needs_rotation(sealed):
            continue
        try:
            fresh = ctx.secrets.rotate(sealed, context=password_context(device_id))
        except Exception:  # noqa: BLE001 - a key no longer configured, or a damaged value
            unreadable += 1
            log.warning("devices.secret_unreadable", extra={"device": device_id})
            continue
        async with ctx.db.transaction() as s:
            # Only if unchanged meanwhile: a password set concurrently is already current.
            res = await s.execute(update(Device).where(Device.id == device_id, Device.password_enc == sealed)
                                  .values(password_enc=fresh))
            rotated += res.rowcount
    return {"rotated": rotated, "unreadable": unreadable}
