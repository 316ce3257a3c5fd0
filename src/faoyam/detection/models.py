"""The detection table: whether and how the server looks for motion on a channel.

For cameras that cannot detect motion themselves (RTSP-pulled ones), or any channel whose
owner turns it on, the media worker decodes a little of the channel's video and raises
motion alarms (``media/motion_worker.py``, docs/motion-detection.md). One row per channel;
no row means detection is off.

The settings are the device owner's personal data (they describe the owner's camera and
what the owner watches, B11): linked through ``devices``, exported with the account and
erased with it or with the device (B10), kept for as long as the device is bound.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime, new_id, utcnow
from faoyam.core.declarations import Link, TablePrivacy, not_personal, personal


def _setting(**kw) -> dict:
    return personal("device", "B11", retention="device_binding", **kw)


class DetectionSettings(Base):
    """Motion detection of one channel of a device (see the module docstring)."""

    __tablename__ = "detection_settings"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"))
    __table_args__ = (UniqueConstraint("device_id", "channel"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=not_personal("random id"))
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True, info=not_personal(
        "random id of the device row this belongs to"))
    channel: Mapped[int] = mapped_column(Integer, info=not_personal("channel number on the device"))
    enabled: Mapped[bool] = mapped_column(Boolean, default=False, info=_setting())
    sensitivity: Mapped[int] = mapped_column(Integer, default=50, info=_setting(note="1-100"))
    # Nine 16-bit masks, top row first: bit c of row r set = the cell is watched. NULL: all.
    zones: Mapped[list | None] = mapped_column(JSON, info=_setting(note="9 row masks of 16 cells; null: everything"))
    stream: Mapped[str] = mapped_column(String(8), default="main", info=_setting(
        note="main (its keyframes are decoded) | sub (a few frames a second of it)"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow,
                                                    info=not_personal("bookkeeping"))
