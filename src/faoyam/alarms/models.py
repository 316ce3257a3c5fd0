"""Alarm tables (B11, RET5, R7), each column declared for the privacy engine.

* ``alarm_events`` — what a device (or the server's motion detection) raised, with its
  snapshot: the device owner's data, kept seven days (the register's rule "7d").
* ``alarm_messages`` — the message center: one row per person an event was for (the
  owner, and invitees whose share grants ``alarms``), with its read state.
* ``alarm_deliveries`` — the transactional outbox: one row per message and channel
  (push, email, webhook), written in the event's transaction and worked off by the
  dispatcher (``alarms.outbox``), retried until sent or given up.
* preferences, quiet hours, consent records, push subscriptions, webhooks — per person;
* arming schedules and the detection switch — per device / channel, part of the binding.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime, new_id, utcnow
from faoyam.core.declarations import Expiry, Link, TablePrivacy, blob_kind, not_personal, personal

blob_kind("alarm_snapshot", "media", "B11", retention="7d", content_type="image/jpeg",
          description="picture a device (or the server's motion detection) took when an alarm was raised (kept 7 days)")

_ID = not_personal("random id")
_BOOK = not_personal("bookkeeping")
_DEVICE_REF = not_personal("random id of the device row this belongs to")
_RET5 = Expiry.by_rule  # the register's retention rule, not a constant here


def _event(*activities: str, **kw) -> dict:
    return personal(kw.pop("category", "event"), *(activities or ("B11",)), retention="7d", **kw)


class AlarmEvent(Base):
    """An alarm raised on a device's channel (B11), with its snapshot. Kept seven days (RET5)."""

    __tablename__ = "alarm_events"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"), expiry=_RET5("received_at", "7d"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True, info=_DEVICE_REF)
    channel: Mapped[int] = mapped_column(Integer, info=_event())
    kind: Mapped[str] = mapped_column(String(40), info=_event())
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True, info=_event())
    snapshot_key: Mapped[str | None] = mapped_column(String(200), info=_event(category="media", blob="alarm_snapshot"))
    source: Mapped[str] = mapped_column(String(12), default="device", info=not_personal(
        "device | detection: who raised it"))
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, info=_BOOK)


class AlarmMessage(Base):
    """One person's copy of an event in the message center (read, deletable). Seven days."""

    __tablename__ = "alarm_messages"
    # The recipient's (their inbox) and, through the event, the device owner's.
    __privacy__ = TablePrivacy(subject=(Link("user_id"), Link("alarm_id", via="alarm_events")),
                               expiry=_RET5("created_at", "7d"))
    # The message center reads a person's newest messages: walked backwards on this index.
    __table_args__ = (UniqueConstraint("alarm_id", "user_id"), Index("ix_alarm_messages_user_at", "user_id", "at"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    alarm_id: Mapped[str] = mapped_column(ForeignKey("alarm_events.id"), index=True, info=not_personal(
        "random id of the event"))
    # No foreign key to users: an alarm stored while its recipient's erasure runs must not
    # make that erasure fail; the erasure's second pass over the device (and expiry) removes it.
    user_id: Mapped[str] = mapped_column(String(32), index=True, info=_event(category="identifier"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, info=_event(note="the event's time, copied for the index"))
    read_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_event())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, info=_BOOK)


class AlarmDelivery(Base):
    """The outbox: one notification of one message on one channel, until sent (or given up)."""

    __tablename__ = "alarm_deliveries"
    __privacy__ = TablePrivacy(subject=Link("message_id", via="alarm_messages"), expiry=_RET5("created_at", "7d"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    message_id: Mapped[str] = mapped_column(ForeignKey("alarm_messages.id"), index=True, info=not_personal(
        "random id of the message"))
    channel: Mapped[str] = mapped_column(String(8), info=not_personal("push | email | webhook"))
    status: Mapped[str] = mapped_column(String(10), default="pending", index=True, info=not_personal(
        "pending | sent | failed | dropped"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, info=_BOOK)
    next_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, info=_BOOK)
    last_error: Mapped[str | None] = mapped_column(String(200), info=not_personal(
        "the error class or status of the last failed attempt (never a recipient)"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_BOOK)


class AlarmPreference(Base):
    """Whether a person wants an alarm type of a device (or of all) notified (R7: consent)."""

    __tablename__ = "alarm_preferences"
    __privacy__ = TablePrivacy(subject=Link("user_id"))
    __table_args__ = (UniqueConstraint("user_id", "device_id", "kind"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, info=personal("identifier", "B11"))
    device_id: Mapped[str] = mapped_column(String(32), default="*", info=personal(
        "device", "B11", note="'*': every device"))
    kind: Mapped[str] = mapped_column(String(40), default="*", info=personal("device", "B11", note="'*': every type"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, info=personal("consent", "B11", retention="consent"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)


class AlarmUserSettings(Base):
    """A person's notification settings: email on or off, and quiet hours (messages are
    kept, nothing is pushed, mailed or called back)."""

    __tablename__ = "alarm_user_settings"
    __privacy__ = TablePrivacy(subject=Link("user_id"))

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, info=personal("identifier", "B11"))
    email: Mapped[bool] = mapped_column(Boolean, default=False, info=personal("consent", "B11", retention="consent"))
    quiet_start: Mapped[int | None] = mapped_column(Integer, info=personal("profile", "B11", note="minutes after midnight"))
    quiet_end: Mapped[int | None] = mapped_column(Integer, info=personal("profile", "B11", note="minutes after midnight"))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", info=personal("profile", "B11"))


class ConsentRecord(Base):
    """When a person switched notifications on or off (R7), in the consent ledger's form:
    who, what (purpose and scope), granted or withdrawn, when."""

    __tablename__ = "alarm_consent_records"
    __privacy__ = TablePrivacy(subject=Link("user_id"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, info=personal(
        "identifier", "B11", retention="consent"))
    purpose: Mapped[str] = mapped_column(String(40), default="alarm_notifications", info=not_personal(
        "what the consent is for"))
    scope: Mapped[dict] = mapped_column(JSON, info=personal("consent", "B11", retention="consent",
                                                              note="{device_id, kind}: '*' for all"))
    granted: Mapped[bool] = mapped_column(Boolean, info=personal("consent", "B11", retention="consent"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=personal(
        "consent", "B11", retention="consent"))


class PushSubscription(Base):
    """A browser's Web Push subscription (the installed web app) for one person."""

    __tablename__ = "alarm_push_subscriptions"
    __privacy__ = TablePrivacy(subject=Link("user_id"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, info=personal("identifier", "B11"))
    endpoint: Mapped[str] = mapped_column(String(1000), unique=True, info=personal(
        "terminal", "B11", note="the push service's URL for this browser"))
    p256dh: Mapped[str] = mapped_column(String(200), info=personal("terminal", "B11", export="presence"))
    auth: Mapped[str] = mapped_column(String(64), info=personal("credential", "B11", export="presence"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)


class AlarmWebhook(Base):
    """A person's message callback in the Imou form (``setMessageCallback``)."""

    __tablename__ = "alarm_webhooks"
    __privacy__ = TablePrivacy(subject=Link("user_id"))

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True, info=personal("identifier", "B11"))
    url: Mapped[str] = mapped_column(String(500), info=personal("network", "B11"))
    flags: Mapped[list] = mapped_column(JSON, default=list, info=personal("device", "B11", note="alarm, deviceStatus"))
    status: Mapped[str] = mapped_column(String(3), default="on", info=personal("device", "B11"))
    token: Mapped[str] = mapped_column(String(64), info=personal("credential", "B11", export="presence",
                                                                  note="sent in each callback so the receiver can check it"))


class ArmingSchedule(Base):
    """When a channel's alarms are armed: weekly windows in the device's time zone."""

    __tablename__ = "alarm_schedules"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"))
    __table_args__ = (UniqueConstraint("device_id", "channel"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True, info=_DEVICE_REF)
    channel: Mapped[int] = mapped_column(Integer, info=not_personal("channel number on the device"))
    windows: Mapped[list] = mapped_column(JSON, default=list, info=personal(
        "device", "B11", retention="device_binding", note="[{days: [0-6], start: 'HH:MM', end: 'HH:MM'}]"))
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", info=personal(
        "device", "B11", retention="device_binding"))


class DetectionSetting(Base):
    """The per-device switch for motion/person detection (the device's and the server's)."""

    __tablename__ = "alarm_detection"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"))

    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), primary_key=True, info=_DEVICE_REF)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, info=personal(
        "device", "B11", retention="device_binding"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)

