"""Device tables, each column declared for the privacy engine.

One row of ``devices`` is two things at once, and the declarations keep them apart:

* the **factory record** — what the manufacturer knows about a unit whoever owns it:
  kind, model, abilities, the hashes of its label's safety code and of its factory
  secret, and a keyed hash of its serial to find it by. These columns are
  ``not_personal``: an unbound device is nobody's data.
* the **binding** — everything that exists because a person added the device to an
  account (B3, B6, B7, B8): the owner, the serial in clear, names, cover, Wi-Fi network
  name, the encrypted device password, time zone, MAC, firmware, country, online
  state, configuration and the device's broker credential. These columns are
  ``personal`` and nullable.

The table erases by *anonymising* (``on_erase="anonymise"``): the generic erasure sets
every personal column to NULL/False, which is exactly a reset to factory state — the
unit can be added again, by anyone holding its label, and nothing of the former owner
is left. Child tables link through ``devices`` and go with the binding. See
``docs/decisions/devices-data-model.md``.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime, new_id, utcnow
from faoyam.core.declarations import Expiry, Link, TablePrivacy, blob_kind, not_personal, personal

blob_kind("device_cover", "media", "B7", retention="device_binding", content_type="image/jpeg",
          description="cover picture of a device or channel chosen by its owner (re-encoded, metadata stripped)")
blob_kind("live_snapshot", "media", "B4", retention="device_binding", content_type="image/jpeg",
          description="the latest keyframe of a channel's live stream, written by the media worker at most every "
                      "few minutes while the stream runs; shown on the device's card on Home")


_ID = not_personal("random id")
_BOOK = not_personal("bookkeeping")
_DEVICE_REF = not_personal("random id of the device row this belongs to")
_BIND = "device_binding"


def _bound(category: str, *activities: str, **kw) -> dict:
    """A column of the binding: erased when the device is deleted (B10) or the owner leaves."""
    return personal(category, *activities, retention=kw.pop("retention", _BIND), **kw)


class Device(Base):
    """A device unit: its factory record, and (while bound) its binding to one account."""

    __tablename__ = "devices"
    __privacy__ = TablePrivacy(subject=Link("owner_id"), on_erase="anonymise")

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)

    # Factory record -------------------------------------------------------------
    serial_hash: Mapped[str] = mapped_column(String(64), unique=True, info=not_personal(
        "keyed hash of the serial: finds the factory record without keeping the serial once unbound"))
    kind: Mapped[str] = mapped_column(String(12), info=not_personal("camera | nvr | doorbell | chime"))
    model: Mapped[str] = mapped_column(String(64), info=not_personal("product model from the factory"))
    abilities: Mapped[list] = mapped_column(JSON, default=list, info=not_personal("product capabilities"))
    paired_hash: Mapped[str | None] = mapped_column(String(64), index=True, info=not_personal(
        "keyed hash of the doorbell serial a chime is paired with at the factory"))
    safety_code_hash: Mapped[str] = mapped_column(String(64), info=not_personal(
        "keyed hash of the safety code printed on the label"))
    factory_secret_hash: Mapped[str] = mapped_column(String(64), info=not_personal(
        "keyed hash of the secret burned in at the factory"))
    credential_generation: Mapped[int] = mapped_column(Integer, default=0, info=not_personal(
        "how many broker credentials were issued; tells 'revoked' from 'never issued'"))
    manufactured_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=not_personal(
        "when the factory record was created"))

    # Binding (B3, B6, B7, B8): NULL/False while unbound --------------------------------
    owner_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True,
                                                 info=_bound("identifier", "B3", "B10"))
    serial: Mapped[str | None] = mapped_column(String(40), info=_bound("device", "B3", "B6", "B7", "B8", "B9", "B10"))
    name: Mapped[str | None] = mapped_column(String(64), info=_bound("device", "B3", "B7"))
    cover_key: Mapped[str | None] = mapped_column(String(200), info=_bound("media", "B7", blob="device_cover"))
    time_zone: Mapped[str | None] = mapped_column(String(64), info=_bound("device", "B3"))
    dst: Mapped[bool] = mapped_column(Boolean, default=False, info=_bound("device", "B3"))
    wifi_ssid: Mapped[str | None] = mapped_column(String(64), info=_bound(
        "device", "B3", note="the network name only; a Wi-Fi password goes to the device and is never stored"))
    password_enc: Mapped[str | None] = mapped_column(Text, info=_bound(
        "credential", "B3", "B8", export="presence", note="AES-256-GCM with a managed, rotating key"))
    bound_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_bound("device", "B3"))
    mac: Mapped[str | None] = mapped_column(String(17), info=_bound("device", "B6"))
    firmware: Mapped[str | None] = mapped_column(String(64), info=_bound("device", "B6"))
    country: Mapped[str | None] = mapped_column(String(2), info=_bound("location", "B6", note="derived offline from the IP"))
    location: Mapped[str | None] = mapped_column(String(80), info=_bound("location", "B6", note="derived offline from the IP"))
    activated_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_bound("device", "B6"))
    online: Mapped[bool] = mapped_column(Boolean, default=False, info=_bound("device", "B6"))
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_bound("device", "B6"))
    config: Mapped[dict | None] = mapped_column(JSON, info=_bound("device", "B6"))
    status: Mapped[dict | None] = mapped_column(JSON, info=_bound("device", "B6", note="the last heartbeat's status"))
    # The broker password the device signs in with after activation: a keyed hash only.
    # Being part of the binding, the erasure that resets the row also revokes it (B10).
    credential_hash: Mapped[str | None] = mapped_column(String(64), info=_bound("credential", "B6", export="omit"))


class Channel(Base):
    """A video channel of a device (one for a camera, N for an NVR)."""

    __tablename__ = "device_channels"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"), on_erase="anonymise")
    __table_args__ = (UniqueConstraint("device_id", "index"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True, info=_DEVICE_REF)
    index: Mapped[int] = mapped_column(Integer, info=not_personal("channel number on the device"))
    abilities: Mapped[list] = mapped_column(JSON, default=list, info=not_personal("channel capabilities"))
    name: Mapped[str | None] = mapped_column(String(64), info=_bound("device", "B6", "B7"))
    cover_key: Mapped[str | None] = mapped_column(String(200), info=_bound("media", "B7", blob="device_cover"))
    # The card picture on Home (B4): replaced while the stream runs, gone with the binding.
    snapshot_key: Mapped[str | None] = mapped_column(String(200), info=_bound("media", "B4", blob="live_snapshot"))
    snapshot_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_bound(
        "media", "B4", note="when the last live snapshot was taken"))


class DeviceAddress(Base):
    """The device's public IP address, as the broker saw it. Kept seven days (RET5)."""

    __tablename__ = "device_addresses"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"), expiry=Expiry("seen_at", dt.timedelta(days=7)))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), unique=True, info=_DEVICE_REF)
    ip: Mapped[str] = mapped_column(String(45), info=personal("network", "B4", "B6", retention="7d"))
    seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)


class Share(Base):
    """A device shared by its owner with another account (B9): whole or some channels."""

    __tablename__ = "device_shares"
    # Both people's data: the owner's (whom they share with) and the invitee's.
    __privacy__ = TablePrivacy(subject=(Link("device_id", via="devices"), Link("invitee_id")))
    __table_args__ = (UniqueConstraint("device_id", "invitee_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True, info=_DEVICE_REF)
    invitee_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, info=_bound("identifier", "B9"))
    invited_via: Mapped[str] = mapped_column(String(8), info=not_personal("email | phone: which contact the owner used"))
    permissions: Mapped[list] = mapped_column(JSON, default=list, info=_bound("sharing", "B9"))
    channels: Mapped[list | None] = mapped_column(JSON, info=_bound("sharing", "B9", note="NULL: the whole device"))
    status: Mapped[str] = mapped_column(String(10), default="pending", info=not_personal("pending | accepted"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_BOOK)


class ShareLink(Base):
    """A time-limited live-view link for someone without an account (B9). Token kept hashed."""

    __tablename__ = "device_share_links"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"), expiry=Expiry("expires_at", dt.timedelta(0)))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True, info=_DEVICE_REF)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, info=_bound("credential", "B9", export="omit"))
    label: Mapped[str | None] = mapped_column(String(64), info=_bound("sharing", "B9"))
    channels: Mapped[list | None] = mapped_column(JSON, info=_bound("sharing", "B9", note="NULL: the whole device"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True, info=_BOOK)
