"""The recording tables: what each channel should record, and the index of what was recorded.

Both tables are the device owner's personal data (B5 playback and recording, B12 cloud
storage): they link to the owner through ``devices`` (``Link("device_id", via="devices")``),
so an export lists every segment with its file, and erasing the account, or deleting the
device (B10), removes the rows and tombstones their blobs in the same transaction.

A **segment** (``recording_segments``) is one blob of kind ``recording_segment``: a complete
fragmented MP4 file — the init segment (``ftyp``+``moov``) followed by ``moof``+``mdat``
fragments of about a second — that any player opens. The row says where it is (backend and
key: the "storage path of record files" of B5), what it covers (``start``, ``end``, and
``duration_ms`` measured in media time, so a gap between two segments is a real gap) and how
to seek in it (``keyframes``: packed (ms from start, byte offset) pairs, see
:func:`faoyam.recordings.service.pack_keyframes`).

``state`` is ``writing`` while the recorder appends to the segment (its bytes are in the
recorder's local spool, the blob does not exist yet), ``complete`` once the blob is stored,
and ``repaired`` when the start-up repair pass finished a segment a crash interrupted (cut
at its last complete fragment).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime, new_id, utcnow
from faoyam.core.declarations import Link, TablePrivacy, blob_kind, not_personal, personal

blob_kind("recording_segment", "media", "B5", "B12", retention="cloud_plan", content_type="video/mp4",
          description="a recorded video segment of a camera channel (fragmented MP4, about a minute)")

_ID = not_personal("random id")
_BOOK = not_personal("bookkeeping")
_DEVICE_REF = not_personal("random id of the device row this belongs to")


def _rec(category: str = "media", *activities: str, **kw) -> dict:
    """A column of a recording: kept for the channel's recording period (RET4)."""
    return personal(category, *(activities or ("B5", "B12")), retention="cloud_plan", **kw)


def _setting(**kw) -> dict:
    return personal("device", "B5", "B12", retention="device_binding", **kw)


class RecordingSettings(Base):
    """How one channel of a device records (one row per channel; no row: the defaults)."""

    __tablename__ = "recording_settings"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"))
    __table_args__ = (UniqueConstraint("device_id", "channel"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), index=True, info=_DEVICE_REF)
    channel: Mapped[int] = mapped_column(Integer, info=not_personal("channel number on the device"))
    mode: Mapped[str] = mapped_column(String(12), default="continuous", info=_setting(
        note="continuous | event | off"))
    # Seven 24-bit masks, Monday first: bit h of day d set = record during hour h. NULL: always.
    schedule: Mapped[list | None] = mapped_column(JSON, info=_setting())
    streams: Mapped[list] = mapped_column(JSON, default=lambda: ["main"], info=_setting(note="main, and sub"))
    destination: Mapped[str] = mapped_column(String(8), default="local", info=_setting(note="local | cloud | both"))
    retention_days: Mapped[int] = mapped_column(Integer, default=7, info=_setting())
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, info=_setting(note="NULL: no quota"))
    pre_roll_s: Mapped[int] = mapped_column(Integer, default=5, info=_setting())
    post_roll_s: Mapped[int] = mapped_column(Integer, default=10, info=_setting())
    # What the media worker's recorder last said about the channel's main stream
    # ("recording", "paused: storage full", ...), so the web role can show it.
    status: Mapped[str | None] = mapped_column(String(60), info=not_personal("recorder state of the channel"))
    status_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_BOOK)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, info=_BOOK)


class Segment(Base):
    """One recorded fMP4 segment of one channel stream (see the module docstring)."""

    __tablename__ = "recording_segments"
    __privacy__ = TablePrivacy(subject=Link("device_id", via="devices"))
    __table_args__ = (
        # The timeline query (playback) and retention (oldest first) of one channel stream.
        Index("ix_recording_segments_channel_start", "device_id", "channel", "stream", "start"),
        Index("ix_recording_segments_state", "state"),
        Index("ix_recording_segments_start", "start"),
        # The timeline's event markers (recordings/timeline.py): only event segments are in it,
        # and it covers what the markers need (no table row read per marker).
        Index("ix_recording_segments_events", "device_id", "channel", "stream", "start", "end", "events",
              sqlite_where=text("events != 0"), postgresql_where=text("events != 0")),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    device_id: Mapped[str] = mapped_column(ForeignKey("devices.id"), info=_DEVICE_REF)
    channel: Mapped[int] = mapped_column(Integer, info=_rec("device"))
    stream: Mapped[str] = mapped_column(String(8), default="main", info=_rec("device", note="main | sub"))
    start: Mapped[dt.datetime] = mapped_column(UTCDateTime, info=_rec("media"))
    end: Mapped[dt.datetime] = mapped_column(UTCDateTime, info=_rec("media"))
    duration_ms: Mapped[int] = mapped_column(Integer, default=0, info=_rec("media"))
    size: Mapped[int] = mapped_column(BigInteger, default=0, info=_rec("media", note="bytes of the blob"))
    init_size: Mapped[int] = mapped_column(Integer, default=0, info=_rec("media", note="bytes of ftyp+moov at its head"))
    fragments: Mapped[int] = mapped_column(Integer, default=0, info=_rec("media"))
    frames: Mapped[int] = mapped_column(Integer, default=0, info=_rec("media", note="video frames"))
    keyframes: Mapped[bytes] = mapped_column(LargeBinary, default=b"", info=_rec(
        "media", note="packed big-endian uint32 pairs: (ms from start, byte offset of the keyframe's moof)"))
    codec: Mapped[str] = mapped_column(String(40), default="", info=_rec("media", note="RFC 6381 codecs string"))
    width: Mapped[int] = mapped_column(Integer, default=0, info=_rec("media"))
    height: Mapped[int] = mapped_column(Integer, default=0, info=_rec("media"))
    events: Mapped[int] = mapped_column(Integer, default=0, info=_rec(
        "event", note="bit flags of the events during the segment (1 motion, 2 alarm, 4 manual)"))
    keep: Mapped[bool] = mapped_column(Boolean, default=False, info=_rec("media", note="the user asked to keep it"))
    backend: Mapped[str] = mapped_column(String(8), default="local", info=_rec("media", note="local | s3"))
    storage_key: Mapped[str] = mapped_column(String(200), unique=True, info=_rec("media", blob="recording_segment"))
    state: Mapped[str] = mapped_column(String(10), default="writing", info=not_personal(
        "writing | complete | repaired"))
    writer: Mapped[str] = mapped_column(String(32), default="", info=not_personal(
        "random id of the recorder (its spool directory) writing it: only that one's repair pass finishes it"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
