"""What a person and a device owner set about alarms (B11, R7).

Per person: notifications on/off per device and alarm type (``set_preference``), email
and quiet hours, Web Push subscriptions, the Imou-style message callback. Switching
notifications off is a withdrawal of consent (R7): it is recorded with its time in
``alarm_consent_records`` (the consent ledger's form: who, purpose, scope, granted, when)
and takes effect at once — the next alarm sends nothing, and notifications of earlier
alarms still waiting in the outbox for that scope are dropped.

Per device (its owner): the arming schedule of each channel and the detection switch.
"""

from __future__ import annotations

import re
import zoneinfo

from sqlalchemy import delete, select, update

from faoyam.alarms.models import (
    AlarmDelivery,
    AlarmEvent,
    AlarmMessage,
    AlarmPreference,
    AlarmUserSettings,
    AlarmWebhook,
    ArmingSchedule,
    ConsentRecord,
    DetectionSetting,
    PushSubscription,
)
from faoyam.core.context import Context
from faoyam.core.database import utcnow
from faoyam.core.errors import Invalid
from faoyam.core.security import new_token
from faoyam.devices import authz

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
_KIND = re.compile(r"^(\*|[A-Za-z][A-Za-z0-9_]{0,39})$")
CALLBACK_FLAGS = ("alarm", "deviceStatus")


def _zone(name: str, field: str = "time_zone") -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise Invalid(field, "Give an IANA time zone such as Asia/Bangkok.", code="invalid") from exc
    return name


# Preferences and consent (R7) ------------------------------------------------------------


async def set_preference(ctx: Context, user_id: str, *, device_id: str = "*", kind: str = "*", enabled: bool) -> dict:
    if not _KIND.fullmatch(kind or ""):
        raise Invalid("kind", "The alarm type is a short word, or * for all.", code="invalid")
    if device_id != "*":
        await authz.require(ctx, user_id, device_id, "alarms")
    now = utcnow()
    async with ctx.db.transaction() as s:
        row = (await s.execute(select(AlarmPreference).where(
            AlarmPreference.user_id == user_id, AlarmPreference.device_id == device_id,
            AlarmPreference.kind == kind))).scalar_one_or_none()
        if row is None:
            s.add(AlarmPreference(user_id=user_id, device_id=device_id, kind=kind, enabled=enabled, updated_at=now))
        else:
            row.enabled, row.updated_at = enabled, now
        s.add(ConsentRecord(user_id=user_id, purpose="alarm_notifications",
                            scope={"device_id": device_id, "kind": kind}, granted=enabled, at=now))
        if not enabled:  # effective at once: what is still waiting in the outbox goes too
            pending = (select(AlarmDelivery.id).join(AlarmMessage, AlarmMessage.id == AlarmDelivery.message_id)
                       .join(AlarmEvent, AlarmEvent.id == AlarmMessage.alarm_id)
                       .where(AlarmMessage.user_id == user_id, AlarmDelivery.status == "pending"))
            if device_id != "*":
                pending = pending.where(AlarmEvent.device_id == device_id)
            if kind != "*":
                pending = pending.where(AlarmEvent.kind == kind)
            ids = list((await s.execute(pending)).scalars())
            if ids:
                await s.execute(update(AlarmDelivery).where(AlarmDelivery.id.in_(ids)).values(
                    status="dropped", last_error="consent withdrawn"))
    return {"device_id": device_id, "kind": kind, "enabled": enabled, "at": now.isoformat()}


async def list_preferences(ctx: Context, user_id: str) -> list[dict]:
    async with ctx.db.session() as s:
        rows = (await s.execute(select(AlarmPreference).where(AlarmPreference.user_id == user_id)
                                .order_by(AlarmPreference.device_id, AlarmPreference.kind))).scalars().all()
    return [{"device_id": r.device_id, "kind": r.kind, "enabled": r.enabled, "updated_at": r.updated_at.isoformat()}
            for r in rows]


async def consent_history(ctx: Context, user_id: str) -> list[dict]:
    async with ctx.db.session() as s:
        rows = (await s.execute(select(ConsentRecord).where(ConsentRecord.user_id == user_id)
                                .order_by(ConsentRecord.at))).scalars().all()
    return [{"purpose": r.purpose, "scope": r.scope, "granted": r.granted, "at": r.at.isoformat()} for r in rows]


async def get_user_settings(ctx: Context, user_id: str) -> dict:
    async with ctx.db.session() as s:
        row = await s.get(AlarmUserSettings, user_id)
    if row is None:
        return {"email": False, "quiet_start": None, "quiet_end": None, "time_zone": "UTC"}
    fmt = (lambda m: None if m is None else f"{m // 60:02d}:{m % 60:02d}")
    return {"email": row.email, "quiet_start": fmt(row.quiet_start), "quiet_end": fmt(row.quiet_end),
            "time_zone": row.time_zone}


async def set_user_settings(ctx: Context, user_id: str, *, email: bool | None = None, quiet_start: str | None = None,
                            quiet_end: str | None = None, time_zone: str | None = None, clear_quiet: bool = False) -> dict:
    def minutes(v: str | None, field: str) -> int | None:
        if v is None:
            return None
        if not _HHMM.fullmatch(v):
            raise Invalid(field, "Give the time as HH:MM.", code="invalid")
        h, m = v.split(":")
        return int(h) * 60 + int(m)

    qs, qe = minutes(quiet_start, "quiet_start"), minutes(quiet_end, "quiet_end")
    if (qs is None) != (qe is None) and not clear_quiet:
        raise Invalid("quiet_end", "Give both the start and the end of the quiet hours.", code="invalid")
    now = utcnow()
    async with ctx.db.transaction() as s:
        row = await s.get(AlarmUserSettings, user_id)
        if row is None:
            row = AlarmUserSettings(user_id=user_id, email=False, time_zone="UTC")
            s.add(row)
        if email is not None and email != row.email:
            row.email = email
            s.add(ConsentRecord(user_id=user_id, purpose="alarm_email", scope={"device_id": "*", "kind": "*"},
                                granted=email, at=now))
            if not email:
                ids = list((await s.execute(select(AlarmDelivery.id).join(
                    AlarmMessage, AlarmMessage.id == AlarmDelivery.message_id).where(
                    AlarmMessage.user_id == user_id, AlarmDelivery.channel == "email",
                    AlarmDelivery.status == "pending"))).scalars())
                if ids:
                    await s.execute(update(AlarmDelivery).where(AlarmDelivery.id.in_(ids)).values(
                        status="dropped", last_error="consent withdrawn"))
        if clear_quiet:
            row.quiet_start = row.quiet_end = None
        elif qs is not None:
            row.quiet_start, row.quiet_end = qs, qe
        if time_zone is not None:
            row.time_zone = _zone(time_zone)
    return await get_user_settings(ctx, user_id)


# Web Push subscriptions --------------------------------------------------------------------


async def add_push_subscription(ctx: Context, user_id: str, endpoint: str, p256dh: str, auth: str) -> str:
    # Push services are https; a local one (tests, a development box) only on a local deployment.
    local = endpoint.startswith("http://127.0.0.1") and ctx.settings.base_url.startswith("http://127.0.0.1")
    if not endpoint.startswith("https://") and not local:
        raise Invalid("endpoint", "A push endpoint is an https URL.", code="invalid")
    async with ctx.db.transaction() as s:
        row = (await s.execute(select(PushSubscription).where(PushSubscription.endpoint == endpoint))).scalar_one_or_none()
        if row is None:
            row = PushSubscription(user_id=user_id, endpoint=endpoint, p256dh=p256dh, auth=auth)
            s.add(row)
        else:  # the same browser, maybe signed in as someone else now
            row.user_id, row.p256dh, row.auth = user_id, p256dh, auth
    return row.id


async def remove_push_subscription(ctx: Context, user_id: str, endpoint: str) -> int:
    async with ctx.db.transaction() as s:
        return (await s.execute(delete(PushSubscription).where(
            PushSubscription.user_id == user_id, PushSubscription.endpoint == endpoint))).rowcount


# The message callback (Imou ``setMessageCallback`` / ``getMessageCallback``) -----------------


async def set_message_callback(ctx: Context, user_id: str, *, callback_url: str, callback_flag: str,
                               status: str) -> dict:
    flags = [f for f in (callback_flag or "").split(",") if f]
    if any(f not in CALLBACK_FLAGS for f in flags):
        raise Invalid("callbackFlag", "The flags are alarm and deviceStatus.", code="invalid")
    if status not in ("on", "off"):
        raise Invalid("status", "The status is on or off.", code="invalid")
    if not re.match(r"^https?://[^\s]+$", callback_url or "") or len(callback_url) > 500:
        raise Invalid("callbackUrl", "Give an http(s) URL.", code="invalid")
    async with ctx.db.transaction() as s:
        row = await s.get(AlarmWebhook, user_id)
        if row is None:
            row = AlarmWebhook(user_id=user_id, token=new_token(24))
            s.add(row)
        row.url, row.flags, row.status = callback_url, flags, status
    return await get_message_callback(ctx, user_id)


async def get_message_callback(ctx: Context, user_id: str) -> dict:
    async with ctx.db.session() as s:
        row = await s.get(AlarmWebhook, user_id)
    if row is None:
        return {"callbackUrl": "", "status": "off", "callbackFlag": ""}
    return {"callbackUrl": row.url, "status": row.status, "callbackFlag": ",".join(row.flags or []),
            "token": row.token}


# The device owner's: arming schedules and the detection switch -----------------------------


def _windows(windows: list[dict]) -> list[dict]:
    out = []
    for i, w in enumerate(windows):
        days = w.get("days", list(range(7)))
        if not isinstance(days, list) or not all(isinstance(d, int) and 0 <= d <= 6 for d in days):
            raise Invalid(f"windows[{i}].days", "Days are 0 (Monday) to 6 (Sunday).", code="invalid")
        for k in ("start", "end"):
            if not isinstance(w.get(k), str) or not _HHMM.fullmatch(w[k]):
                raise Invalid(f"windows[{i}].{k}", "Give the time as HH:MM.", code="invalid")
        out.append({"days": sorted(set(days)), "start": w["start"], "end": w["end"]})
    return out


async def set_schedule(ctx: Context, user_id: str, device_id: str, channel: int, windows: list[dict] | None,
                       time_zone: str | None = None) -> dict:
    """Arm the channel in these weekly windows (``None``: always armed, the default)."""
    acc = await authz.require(ctx, user_id, device_id, "manage")
    tz = _zone(time_zone) if time_zone else None
    async with ctx.db.transaction() as s:
        row = (await s.execute(select(ArmingSchedule).where(
            ArmingSchedule.device_id == acc.device_id, ArmingSchedule.channel == channel))).scalar_one_or_none()
        if windows is None:
            if row is not None:
                await s.delete(row)
            return {"channel": channel, "always": True, "windows": [], "time_zone": tz}
        clean = _windows(windows)
        if row is None:
            row = ArmingSchedule(device_id=acc.device_id, channel=channel)
            s.add(row)
        row.windows, row.time_zone = clean, tz or row.time_zone or "UTC"
    return {"channel": channel, "always": False, "windows": clean, "time_zone": row.time_zone}


async def get_schedules(ctx: Context, user_id: str, device_id: str) -> dict:
    acc = await authz.require(ctx, user_id, device_id, "alarms")
    async with ctx.db.session() as s:
        rows = (await s.execute(select(ArmingSchedule).where(ArmingSchedule.device_id == acc.device_id))).scalars().all()
        det = await s.get(DetectionSetting, acc.device_id)
    return {"detection": det.enabled if det is not None else True,
            "schedules": [{"channel": r.channel, "windows": r.windows, "time_zone": r.time_zone} for r in rows]}


async def set_detection(ctx: Context, user_id: str, device_id: str, enabled: bool) -> dict:
    acc = await authz.require(ctx, user_id, device_id, "manage")
    async with ctx.db.transaction() as s:
        row = await s.get(DetectionSetting, acc.device_id)
        if row is None:
            s.add(DetectionSetting(device_id=acc.device_id, enabled=enabled, updated_at=utcnow()))
        else:
            row.enabled, row.updated_at = enabled, utcnow()
    return {"detection": enabled}


async def detection_enabled(ctx: Context, device_id: str) -> bool:
    """For the server-side detector: whether to look at this device at all."""
    async with ctx.db.session() as s:
        row = await s.get(DetectionSetting, device_id)
    return row.enabled if row is not None else True

