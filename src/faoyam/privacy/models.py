"""Tables of the privacy engine itself."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime, new_id, utcnow
from faoyam.core.declarations import Expiry, Link, TablePrivacy, not_personal, personal


class BlobTombstone(Base):
    """A blob whose owning rows are gone and which must be deleted from the store.

    Written in the same transaction that removes the rows (or drops the reference), so a
    crash between the database commit and the blob deletion leaves a record the sweeper
    finishes. A deletion that fails is retried later with a growing delay
    (``attempts``, ``next_try_at``), never blocking the other tombstones.
    """

    __tablename__ = "blob_tombstones"

    key: Mapped[str] = mapped_column(String(200), primary_key=True, info=not_personal("random blob key, no content"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=not_personal("bookkeeping"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0",
                                          info=not_personal("failed deletion attempts so far"))
    next_try_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=not_personal("bookkeeping: retry not before"))


class ErasureRecord(Base):
    """Proof that an erasure or purge ran: what and how much, never whose."""

    __tablename__ = "erasure_records"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=not_personal("random id"))
    reason: Mapped[str] = mapped_column(String(40), info=not_personal("erasure | retention | device_removed | child_report"))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=not_personal("bookkeeping"))
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=not_personal("bookkeeping"))
    counts: Mapped[dict] = mapped_column(JSON, default=dict, info=not_personal("row counts per table"))
    blobs: Mapped[int] = mapped_column(Integer, default=0, info=not_personal("count of blobs removed"))


class ChildReport(Base):
    """CH2: someone believes the service holds data of a child under 16.

    The reporter's address is kept to answer them; the reported account identifier to
    find the data. Both go when the report is resolved (anonymised, the record of the
    report's handling stays) and in any case after a year.

    The row is about two people, so each link is scoped: the reporter sees (and erases)
    their address and what they wrote; the reported person their identifier. Erasing
    one leaves the other's columns, and the report, in place.
    """

    __tablename__ = "child_reports"
    __privacy__ = TablePrivacy(
        subject=(Link("reporter_email", key="email", columns=("reporter_email", "details")),
                 Link("reported", key="email", columns=("reported",)),
                 Link("reported", key="phone", columns=("reported",))),
        on_erase="anonymise",
        expiry=Expiry("created_at", dt.timedelta(days=365)),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=not_personal("random id"))
    reporter_email: Mapped[str | None] = mapped_column(String(254), info=personal("contact", "F2", retention="legal"))
    reported: Mapped[str | None] = mapped_column(String(254), info=personal("contact", "F2", retention="legal",
                                                                             note="email or phone of the reported account"))
    details: Mapped[str | None] = mapped_column(String(2000), info=personal("communication", "F2", retention="legal"))
    status: Mapped[str] = mapped_column(String(12), default="open", info=not_personal("open | erased | rejected"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=not_personal("bookkeeping"))
    resolved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=not_personal("bookkeeping"))
