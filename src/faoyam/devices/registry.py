"""The registry side of ``devices/ports.py``: what the gateway calls when devices speak.

Serials are machine identifiers here and must already be canonical (upper-case letters,
digits, '-'); people's typing is normalised in the service before it gets here.
Devices are looked up by a keyed hash of their serial, because the factory record keeps
no serial in clear (see ``models.Device``). The serial in clear is part of the binding:
it comes from the person who adds the device, or — for an accessory bound together with
its doorbell — from the device itself the next time it speaks.

Secrets are never stored: safety codes, factory secrets and broker passwords are kept
as keyed hashes (HMAC-SHA256 with the deployment key). The broker password is random
and long, so a fast keyed hash is as strong as a slow one and keeps sign-ins cheap.
"""

from __future__ import annotations

import datetime as dt
import hmac
import io
import logging
from contextlib import asynccontextmanager

from PIL import Image
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from faoyam.core.context import Context
from faoyam.core.cpu import offload
from faoyam.core.database import utcnow
from faoyam.core.errors import Invalid
from faoyam.core.security import keyed_hash, new_token
from faoyam.devices import validation as v
from faoyam.devices.geo import place_of
from faoyam.devices.models import Alarm, Channel, Device, DeviceAddress
from faoyam.devices.ports import ActivationReport, AlarmReport, DeviceAuth, DeviceCredentials, FactoryDevice
from faoyam.devices.validation import BadReport

log = logging.getLogger(__name__)

KINDS = ("camera", "nvr", "doorbell", "chime")
FACTORY_PREFIX = "factory:"
MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024


def serial_hash(ctx: Context, serial: str) -> str:
    return keyed_hash(ctx.key, f"device-serial:{serial}")


def safety_code_hash(ctx: Context, serial: str, code: str) -> str:
    return keyed_hash(ctx.key, f"device-safety:{serial}:{code}")


def _secret_hash(ctx: Context, scope: str, serial: str, secret: str) -> str:
    return keyed_hash(ctx.key, f"device-{scope}:{serial}:{secret}")


async def find_by_serial(session, ctx: Context, serial: str) -> Device | None:
    if not v.is_serial(serial):
        return None
    q = select(Device).where(Device.serial_hash == serial_hash(ctx, serial)).execution_options(populate_existing=True)
    return (await session.execute(q)).scalar_one_or_none()


# A unit whose binding was erased (its owner deleted it or erased the account) and that
# nobody has bound since: the erasure took its credentials back. Until someone adds it
# again, what it reports is refused, so it produces no personal data.
_RELEASED = Device.owner_id.is_(None) & (Device.credential_generation > 0) & Device.credential_hash.is_(None)


async def _claim(s, where) -> bool:
    """Take the write lock on the device row matched by ``where`` *and* still not released,
    before reading it: an erasure that commits first makes this match nothing, one that
    comes later waits for this transaction. (A no-op UPDATE, because SQLite starts its
    write transaction only at the first write, and FOR UPDATE does nothing there.)"""
    res = await s.execute(update(Device).where(where, ~_RELEASED)
                          .values(credential_generation=Device.credential_generation)
                          .execution_options(synchronize_session=False))
    return res.rowcount > 0


async def _claimed_row(s, ctx: Context, serial: str) -> tuple[Device | None, bool]:
    """``(row, released)``: the unit's row, claimed (``_claim``), or None with whether it
    exists but is released."""
    if not v.is_serial(serial):
        return None, False
    if await _claim(s, Device.serial_hash == serial_hash(ctx, serial)):
        return await find_by_serial(s, ctx, serial), False
    return None, await find_by_serial(s, ctx, serial) is not None


def _learn_serial(row: Device, serial: str) -> None:
    """A bound device that speaks tells us its serial (accessories bound with their doorbell)."""
    if row.owner_id is not None and row.serial is None:
        row.serial = serial


# Manufacturing ------------------------------------------------------------------------


async def factory_register(ctx: Context, fd: FactoryDevice) -> None:
    """Create (or refresh) a unit's factory record. Idempotent per serial; never touches a binding."""
    if not v.is_serial(fd.serial):
        raise ValueError("a serial is 4 to 40 upper-case letters, digits or '-'")
    if fd.kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if not 0 <= fd.channels <= 256:
        raise ValueError("channels must be 0..256")
    if fd.paired_with is not None and (fd.kind != "chime" or not v.is_serial(fd.paired_with)):
        raise ValueError("only a chime is paired, with a doorbell's serial")
    try:
        code = v.normalize_safety_code(fd.safety_code)
    except Invalid as exc:
        raise ValueError(exc.detail) from None
    if len(fd.factory_secret) < 8:
        raise ValueError("the factory secret needs at least 8 characters")
    try:
        model = v.report_text(fd.model, "model")
        abilities = v.report_abilities(list(fd.abilities))
    except BadReport as exc:
        raise ValueError(exc.detail) from None
    facts = dict(
        kind=fd.kind, model=model, abilities=abilities,
        paired_hash=serial_hash(ctx, fd.paired_with) if fd.paired_with else None,
        safety_code_hash=safety_code_hash(ctx, fd.serial, code),
        factory_secret_hash=_secret_hash(ctx, "factory", fd.serial, fd.factory_secret),
    )
    for attempt in range(2):
        try:
            async with ctx.db.transaction() as s:
                row = await find_by_serial(s, ctx, fd.serial)
                if row is None:
                    row = Device(serial_hash=serial_hash(ctx, fd.serial), **facts)
                    s.add(row)
                    await s.flush()
                else:
                    for k, val in facts.items():
                        setattr(row, k, val)
                have = set((await s.execute(select(Channel.index).where(Channel.device_id == row.id))).scalars())
                for i in range(fd.channels):
                    if i not in have:
                        s.add(Channel(device_id=row.id, index=i, abilities=[]))
            return
        except IntegrityError:
            if attempt:  # a concurrent registration of the same serial won; the retry updates it
                raise


# Broker sign-in ---------------------------------------------------------------------------


async def authenticate_device(ctx: Context, username: str, password: str) -> DeviceAuth | None:
    """Factory credentials ("factory:<serial>") or per-device ones ("<serial>"); None if wrong or revoked."""
    factory = username.startswith(FACTORY_PREFIX)
    serial = username[len(FACTORY_PREFIX) :] if factory else username
    async with ctx.db.session() as s:
        row = await find_by_serial(s, ctx, serial)
    if row is None or not password:
        return None
    if factory:
        ok = hmac.compare_digest(row.factory_secret_hash, _secret_hash(ctx, "factory", serial, password))
        return DeviceAuth(serial, "factory") if ok else None
    if row.credential_hash is None:  # never issued, or revoked when the device was deleted
        return None
    ok = hmac.compare_digest(row.credential_hash, _secret_hash(ctx, "broker", serial, password))
    return DeviceAuth(serial, "device") if ok else None


async def credentials_revoked(ctx: Context, serial: str) -> bool:
    """True once a device's broker credentials were taken back (B10), or for an unknown serial."""
    async with ctx.db.session() as s:
        row = await find_by_serial(s, ctx, serial)
    if row is None:
        return True
    return row.credential_generation > 0 and row.credential_hash is None


# Activation and status (B6) -------------------------------------------------------------


async def activate(ctx: Context, serial: str, report: ActivationReport, ip: str | None) -> DeviceCredentials:
    """Store what the device reports, derive its country from the IP, issue broker credentials.

    The broker's view of the address wins over what the device says about itself. The
    new password is returned once and only its keyed hash is kept; issuing it replaces
    any earlier one.
    """
    mac = v.report_mac(report.mac)
    firmware = v.report_text(report.firmware, "firmware")
    v.report_text(report.model, "model")
    channels = v.report_channels(report.channels)
    config = v.report_json(report.config or {}, "config")
    address = v.report_ip(ip) or v.report_ip(report.ip)
    place = place_of(address)
    password = new_token(24)
    now = utcnow()
    async with ctx.db.transaction() as s:
        row, is_released = await _claimed_row(s, ctx, serial)
        if is_released:
            raise BadReport("This device was removed from its account; add it to an account first.",
                            code="device-released")
        if row is None:
            raise BadReport("This device is not known to the registry.", code="unknown-device")
        _learn_serial(row, serial)
        row.mac, row.firmware, row.config = mac, firmware, config
        row.country = place.country if place else None
        row.location = place.location if place else None
        row.activated_at = now
        row.online, row.last_seen_at = True, now
        row.credential_hash = _secret_hash(ctx, "broker", serial, password)
        row.credential_generation += 1
        existing = {c.index: c for c in (await s.execute(select(Channel).where(Channel.device_id == row.id))).scalars()}
        for ch in channels:
            have = existing.get(ch["index"])
            if have is None:
                s.add(Channel(device_id=row.id, index=ch["index"], name=ch["name"], abilities=ch["abilities"]))
            else:
                have.abilities = ch["abilities"]
                if have.name is None:  # a name the owner chose wins over the device's default
                    have.name = ch["name"]
        await _set_address(s, row.id, address, now)
    log.info("devices.activated", extra={"device": row.id, "generation": row.credential_generation})
    return DeviceCredentials(username=serial, password=password)


async def _set_address(s, device_id: str, ip: str | None, at: dt.datetime) -> None:
    current = (await s.execute(select(DeviceAddress).where(DeviceAddress.device_id == device_id))).scalar_one_or_none()
    if ip is None:
        return
    if current is None:
        s.add(DeviceAddress(device_id=device_id, ip=ip, seen_at=at))
    else:
        current.ip, current.seen_at = ip, at


async def _report_row(s, ctx: Context, serial: str, op: str) -> Device | None:
    """The row a device report is about, claimed for this transaction (``_claim``); None
    (and a log line) for a serial the registry does not know or a released unit.

    The claim is what closes the race with an erasure: a report that comes after the
    erasure committed finds the unit released and writes nothing."""
    row, is_released = await _claimed_row(s, ctx, serial)
    if row is None:
        if is_released:
            log.info("devices.released_report_refused", extra={"op": op})
        else:
            log.warning("devices.unknown_serial", extra={"op": op})
        return None
    _learn_serial(row, serial)
    return row


@asynccontextmanager
async def _reported(ctx: Context, serial: str, op: str):
    """``(session, row)`` of ``_report_row`` in a transaction."""
    async with ctx.db.transaction() as s:
        yield s, await _report_row(s, ctx, serial, op)


async def set_online(ctx: Context, serial: str, online: bool, at: dt.datetime) -> None:
    """Online/offline from the broker (connect, last will, heartbeat timeout).

    An "offline" older than the last sign of life is stale (a last will of an earlier
    connection arriving late) and is ignored.
    """
    async with _reported(ctx, serial, "set_online") as (s, row):
        if row is None:
            return
        if not online and row.last_seen_at is not None and at < row.last_seen_at:
            return
        row.online = online
        if row.last_seen_at is None or at > row.last_seen_at:
            row.last_seen_at = at


async def heartbeat(ctx: Context, serial: str, at: dt.datetime, status: dict) -> None:
    """A sign of life with the device's status (signal, storage, ...); may carry a new "ip"."""
    v.report_json(status or {}, "status")  # a bad one is refused here (BadReport)
    await heartbeats(ctx, [(serial, at, status)])


async def heartbeats(ctx: Context, beats: list[tuple[str, dt.datetime, dict]]) -> list[str]:
    """Many heartbeats in one transaction (the gateway coalesces them); returns the serials
    stored (not: unknown ones, released units, bad statuses, which are logged)."""
    checked = []
    for serial, at, status in beats:
        try:
            checked.append((serial, at, v.report_json(status or {}, "status")))
        except BadReport:
            log.warning("devices.bad_status")
    stored = []
    async with ctx.db.transaction() as s:
        # Rows are locked in one order (by serial) so two nodes' batches cannot deadlock.
        for serial, at, status in sorted(checked, key=lambda b: b[0]):
            row = await _report_row(s, ctx, serial, "heartbeat")
            if row is not None:
                await _beat(s, row, at, status)
                stored.append(serial)
    return stored


async def _beat(s, row: Device, at: dt.datetime, status: dict) -> None:
    ip = v.report_ip(status.get("ip")) if isinstance(status.get("ip"), str) else None
    row.online = True
    row.last_seen_at = max(at, row.last_seen_at) if row.last_seen_at else at
    # The address lives in device_addresses (kept 7 days), not in the status blob.
    row.status = {k: val for k, val in status.items() if k != "ip"}
    if ip is not None:
        place = place_of(ip)
        row.country = place.country if place else None
        row.location = place.location if place else None
        await _set_address(s, row.id, ip, at)


async def report_config(ctx: Context, serial: str, config: dict) -> None:
    """The device's full configuration, as it reports it (replaces the stored one)."""
    config = v.report_json(config, "config")
    async with _reported(ctx, serial, "report_config") as (s, row):
        if row is None:
            return
        row.config = config


# Alarms (B11, RET5) ---------------------------------------------------------------------


def _is_jpeg(data: bytes) -> bool:
    """A real JPEG, checked by its structure (not only its first bytes)."""
    if data[:3] != b"\xff\xd8\xff":
        return False
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format != "JPEG":
                return False
            img.verify()
    except Exception:  # noqa: BLE001 - any decoder complaint means "not a picture we keep"
        return False
    return True


async def record_alarm(ctx: Context, serial: str, report: AlarmReport) -> str:
    """Keep an alarm and its JPEG for seven days; returns its id.

    An unbound device has nobody to notify, so its alarms are not kept (returns "").
    A snapshot that is not a JPEG (or too large) is dropped; the alarm is kept.
    """
    kind = v.report_text(report.type, "type", 40)
    if not isinstance(report.at, dt.datetime) or report.at.tzinfo is None:
        raise BadReport("The alarm time must be timezone-aware.", field="at")
    async with ctx.db.session() as s:
        row = await find_by_serial(s, ctx, serial)
        if row is None:
            raise BadReport("This device is not known to the registry.", code="unknown-device")
        if row.owner_id is None:
            return ""
        device_id = row.id
        channels = set((await s.execute(select(Channel.index).where(Channel.device_id == device_id))).scalars())
    if report.channel not in channels:
        raise BadReport("The device has no such channel.", field="channel")
    snapshot_key = None
    if report.snapshot:
        if len(report.snapshot) <= MAX_SNAPSHOT_BYTES and await offload(_is_jpeg, report.snapshot):
            snapshot_key = await ctx.blobs.put("alarm_snapshot", report.snapshot)
        else:
            log.warning("devices.alarm_snapshot_refused", extra={"device": device_id, "bytes": len(report.snapshot)})
    try:
        async with ctx.db.transaction() as s:
            # The binding may have ended while the picture was written; then keep nothing.
            if not await _claim(s, (Device.id == device_id) & Device.owner_id.is_not(None)):
                raise LookupError
            alarm = Alarm(device_id=device_id, channel=report.channel, type=kind, at=report.at.astimezone(dt.UTC),
                          snapshot_key=snapshot_key, received_at=utcnow())
            s.add(alarm)
    except LookupError:
        if snapshot_key:
            await ctx.blobs.delete(snapshot_key)
        return ""
    except BaseException:
        if snapshot_key:
            await ctx.blobs.delete(snapshot_key)
        raise
    return alarm.id


async def record_server_alarm(ctx: Context, device_id: str, report: AlarmReport) -> str:
    """:func:`record_alarm` for an alarm the service itself raised about a device (server-side
    motion detection of a pulled camera): by device id, not by what the device says it is.
    "" when the device is gone or unbound."""
    async with ctx.db.session() as s:
        serial = (await s.execute(select(Device.serial).where(Device.id == device_id))).scalar_one_or_none()
    if not serial:
        return ""
    try:
        return await record_alarm(ctx, serial, report)
    except BadReport:  # erased or re-bound meanwhile, or the channel went away
        return ""
