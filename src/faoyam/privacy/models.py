"""Tables of the privacy engine itself."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime, new_id, utcnow
from faoyam.privacy.declarations import not_personal


class BlobTombstone(Base):
    """A blob whose owning rows are gone and which must be deleted from the store.

    Written in the same transaction that removes the rows, so a crash between the
    database commit and the blob deletion leaves a record the sweeper finishes.
    """

    __tablename__ = "blob_tombstones"

    key: Mapped[str] = mapped_column(String(200), primary_key=True, info=not_personal("random blob key, no content"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=not_personal("bookkeeping"))


class ErasureRecord(Base):
    """Proof that an erasure or purge ran: what and how much, never whose."""

    __tablename__ = "erasure_records"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=not_personal("random id"))
    reason: Mapped[str] = mapped_column(String(40), info=not_personal("erasure | retention | device_removed | child_report"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=not_personal("bookkeeping"))
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=not_personal("bookkeeping"))
    counts: Mapped[dict] = mapped_column(JSON, default=dict, info=not_personal("row counts per table"))
    blobs: Mapped[int] = mapped_column(Integer, default=0, info=not_personal("count of blobs removed"))
