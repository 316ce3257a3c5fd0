"""Raising an alarm: the one entry point for every source (B11).

``raise_alarm`` is what the MQTT gateway (a device's report) and the server-side motion
detection call. In order:

1. refuse bad input: an unknown kind shape, a time far in the future (a few minutes of
   clock skew are clamped to now) or older than the retention period, a channel the
   device does not have, a device that floods (a token bucket per device, others are
   unaffected); a snapshot that is not a JPEG or too large is dropped, the alarm kept;
2. drop what nobody asked for: an unbound device, a channel that is not armed now, a
   detection event (motion, person) while the device's detection switch is off;
3. store the snapshot *first*, then in one transaction the event, one message per
   recipient (owner, invitees whose share grants ``alarms``, minus those who switched
   the device or type off) and the outbox rows of their channels (push, email, webhook;
   none in quiet hours). A crash after the commit loses nothing: the dispatcher finds
   the outbox rows. A crash before it leaves nothing but an unreferenced blob, which the
   reconciler removes;
4. after the commit: publish ``{alarm_id, device_id, channel, kind, at}`` on the bus
   (``alarms.bus``) and wake this node's dispatcher and live streams.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
import zoneinfo

from PIL import Image
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from faoyam.alarms import bus, live
from faoyam.alarms.models import (
    AlarmDelivery,
    AlarmEvent,
    AlarmMessage,
    AlarmPreference,
    AlarmUserSettings,
    AlarmWebhook,
    ArmingSchedule,
    DetectionSetting,
    PushSubscription,
)
from faoyam.alarms.runtime import runtime
from faoyam.core.context import Context
from faoyam.core.cpu import offload
from faoyam.core.database import new_id, utcnow
from faoyam.core.declarations import RETENTION_PERIODS
from faoyam.core.errors import Invalid, Problem
from faoyam.devices import service as devices
from faoyam.devices.ports import AlarmReport
from faoyam.devices.validation import BadReport
from faoyam.privacy.blobrefs import blob_transaction

log = logging.getLogger(__name__)

MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024
CLOCK_SKEW = dt.timedelta(minutes=5)  # later than this is refused; earlier is clamped to now
KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")
# Raised by motion/person detection (the device's or the server's): the detection switch.
DETECTION_KINDS = frozenset({"videoMotion", "human", "motion", "person"})
# What the Imou callback calls "deviceStatus" rather than "alarm".
STATUS_KINDS = frozenset({"online", "offline"})
SOURCES = ("device", "detection")


class Flooded(Problem):
    status, code, title = 429, "alarm-flood", "This device raises alarms too fast"


def is_jpeg(data: bytes) -> bool:
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


def _armed(windows: list, time_zone: str, at: dt.datetime) -> bool:
    """Whether ``at`` falls in one of the weekly windows (an empty list: never armed)."""
    try:
        local = at.astimezone(zoneinfo.ZoneInfo(time_zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        local = at
    minute = local.hour * 60 + local.minute
    for w in windows:
        start, end = _minute(w.get("start", "00:00")), _minute(w.get("end", "24:00"))
        days = w.get("days", list(range(7)))
        day = local.weekday()
        if start <= end and day in days and start <= minute < end:
            return True
        if start > end and ((day in days and minute >= start) or ((day - 1) % 7 in days and minute < end)):
            return True  # a window over midnight
    return False


def _minute(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def in_quiet_hours(start: int | None, end: int | None, time_zone: str, at: dt.datetime) -> bool:
    if start is None or end is None or start == end:
        return False
    try:
        local = at.astimezone(zoneinfo.ZoneInfo(time_zone))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        local = at
    minute = local.hour * 60 + local.minute
    return start <= minute < end if start < end else (minute >= start or minute < end)


def wanted(prefs: list, device_id: str, kind: str) -> bool:
    """The most specific preference wins: (device, kind), (device, *), (*, kind), (*, *);
    without one, notifications are on."""
    best, rank = True, -1
    for p in prefs:
        if p.device_id not in (device_id, "*") or p.kind not in (kind, "*"):
            continue
        r = (p.device_id != "*") * 2 + (p.kind != "*")
        if r > rank:
            best, rank = p.enabled, r
    return best


async def raise_alarm(ctx: Context, *, device_id: str, channel: int, kind: str, at: dt.datetime,
                      snapshot: bytes | None, source: str = "device") -> str | None:
    """Store an alarm of ``device_id``'s ``channel`` and notify its recipients; returns the
    alarm id, or None when it is not kept (unbound device, disarmed channel, detection
    off). Bad input raises ``Invalid`` (or ``Flooded``) and stores nothing."""
    rt = runtime(ctx)
    now = utcnow()
    if source not in SOURCES:
        raise Invalid("source", "The source is device or detection.", code="invalid")
    if not isinstance(kind, str) or not KIND_RE.fullmatch(kind):
        raise Invalid("kind", "The alarm type is a short word (letters, digits, _).", code="invalid")
    if not isinstance(at, dt.datetime) or at.tzinfo is None:
        raise Invalid("at", "The alarm time must be timezone-aware.", code="invalid")
    at = at.astimezone(dt.UTC)
    if at > now + CLOCK_SKEW:
        raise Invalid("at", "The alarm time is in the future.", code="alarm-in-future")
    if at < now - RETENTION_PERIODS["7d"]:
        raise Invalid("at", "The alarm is older than the messages are kept.", code="alarm-too-old")
    at = min(at, now)
    if not rt.flood.admit(device_id):
        rt.stats["flooded"] += 1
        raise Flooded("Too many alarms from this device; slow down.")
    for attempt in (1, 2):
        try:
            stored = await _store(ctx, rt, device_id=device_id, channel=channel, kind=kind, at=at,
                                  snapshot=snapshot, source=source, now=now)
            break
        except IntegrityError:
            # A recipient's account was erased meanwhile: read the audience again, once.
            if attempt == 2:
                raise
    if stored is None:
        return None
    alarm_id, messages, deliveries = stored
    rt.stats["raised"] += 1
    event = {"alarm_id": alarm_id, "device_id": device_id, "channel": channel, "kind": kind, "at": at.isoformat()}
    if deliveries:
        rt.wake()
    await bus.publish(ctx, event, local=lambda e: live.fan_out(ctx, e, [m["user_id"] for m in messages]))
    return alarm_id


class _Released(Exception):
    """The device's binding ended while the alarm was being stored: keep nothing."""


async def _store(ctx: Context, rt, *, device_id: str, channel: int, kind: str, at: dt.datetime,
                 snapshot: bytes | None, source: str, now: dt.datetime):
    """Decide who the alarm is for and store it with its messages and outbox rows;
    ``(alarm id, messages, deliveries)``, or None when it is not kept."""
    async with ctx.db.session() as s:
        audience = await devices.alarm_audience(ctx, device_id, s)
        if audience is None:
            return None
        if channel not in audience.channels:
            raise Invalid("channel", "The device has no such channel.", code="unknown-channel")
        users = audience.for_channel(channel)
        sched = (await s.execute(select(ArmingSchedule.windows, ArmingSchedule.time_zone).where(
            ArmingSchedule.device_id == device_id, ArmingSchedule.channel == channel))).first()
        detection = (await s.execute(select(DetectionSetting.enabled).where(
            DetectionSetting.device_id == device_id))).scalar()
        prefs = (await s.execute(select(AlarmPreference).where(
            AlarmPreference.user_id.in_(users), AlarmPreference.device_id.in_((device_id, "*")),
            AlarmPreference.kind.in_((kind, "*"))))).scalars().all()
        settings = {r.user_id: r for r in (await s.execute(select(AlarmUserSettings).where(
            AlarmUserSettings.user_id.in_(users)))).scalars()}
        pushers = set((await s.execute(select(PushSubscription.user_id).where(
            PushSubscription.user_id.in_(users)).distinct())).scalars())
        hooks = {r.user_id: r for r in (await s.execute(select(AlarmWebhook).where(
            AlarmWebhook.user_id.in_(users), AlarmWebhook.status == "on"))).scalars()}
    if sched is not None and not _armed(sched.windows or [], sched.time_zone or audience.time_zone or "UTC", at):
        rt.stats["disarmed"] += 1
        return None
    if detection is False and kind in DETECTION_KINDS:
        rt.stats["detection-off"] += 1
        return None

    picture = None
    if snapshot:
        if len(snapshot) <= MAX_SNAPSHOT_BYTES and await offload(is_jpeg, snapshot):
            picture = snapshot
        else:
            rt.stats["snapshot-refused"] += 1
            log.warning("alarms.snapshot_refused", extra={"device": device_id, "bytes": len(snapshot)})

    alarm_id = new_id()
    messages, deliveries = [], []
    for user_id in users:
        if not wanted([p for p in prefs if p.user_id == user_id], device_id, kind):
            continue
        message_id = new_id()
        messages.append({"id": message_id, "alarm_id": alarm_id, "user_id": user_id, "at": at, "created_at": now})
        st = settings.get(user_id)
        if st is not None and in_quiet_hours(st.quiet_start, st.quiet_end, st.time_zone, at):
            continue
        channels = []
        if user_id in pushers:
            channels.append("push")
        if st is not None and st.email:
            channels.append("email")
        hook = hooks.get(user_id)
        if hook is not None and ("deviceStatus" if kind in STATUS_KINDS else "alarm") in (hook.flags or []):
            channels.append("webhook")
        deliveries += [{"id": new_id(), "message_id": message_id, "channel": c, "status": "pending", "attempts": 0,
                        "next_at": now, "created_at": now} for c in channels]

    # The snapshot is stored before the rows that announce it: a push never goes out
    # for a picture that is not there yet.
    try:
        async with blob_transaction(ctx.db, ctx.blobs) as tx:
            key = await tx.put("alarm_snapshot", picture) if picture else None
            if not await devices.claim_bound(tx.session, device_id):
                raise _Released
            await _insert(tx.session, alarm_id, device_id, channel, kind, at, key, source, now, messages, deliveries)
    except _Released:
        return None
    return alarm_id, messages, deliveries


async def _insert(session, alarm_id, device_id, channel, kind, at, key, source, now, messages, deliveries) -> None:
    await session.execute(insert(AlarmEvent), [{
        "id": alarm_id, "device_id": device_id, "channel": channel, "kind": kind, "at": at,
        "snapshot_key": key, "source": source, "received_at": now}])
    if messages:
        await session.execute(insert(AlarmMessage), messages)
    if deliveries:
        await session.execute(insert(AlarmDelivery), deliveries)


async def record_device_alarm(ctx: Context, serial: str, report: AlarmReport) -> str:
    """A device's alarm report (the gateway): ``raise_alarm`` for the device the serial
    names. "" when it is not kept; a report that does not fit raises ``BadReport``."""
    device_id = await devices.report_device(ctx, serial)
    if not device_id:
        return ""
    try:
        alarm_id = await raise_alarm(ctx, device_id=device_id, channel=report.channel, kind=report.type,
                                     at=report.at, snapshot=report.snapshot, source="device")
    except Invalid as exc:
        raise BadReport(exc.detail or "The alarm is not valid.", code=exc.code,
                        field=exc.extensions["errors"][0]["field"]) from exc
    return alarm_id or ""
