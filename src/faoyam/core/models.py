"""Tables owned by core: outgoing messages and rate-limit counters."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime, new_id, utcnow
from faoyam.core.declarations import Expiry, Link, TablePrivacy, blob_kind, not_personal, personal

blob_kind("mail_outbox", "communication", "B1a", "B1b", "F2", retention="7d", content_type="message/rfc822",
          description="an email or SMS written to the local outbox instead of being sent")


class OutboundMessage(Base):
    """A message to a person: kept in the outbox (embedded default) or sent, then kept 7 days.

    The body lives in the blob store as an RFC 822 file an operator can read; the row ties
    it to its recipient so that erasure and retention reach it.
    """

    __tablename__ = "outbound_messages"
    __privacy__ = TablePrivacy(
        subject=(Link("recipient", key="email"), Link("recipient", key="phone"), Link("user_id")),
        expiry=Expiry("created_at", dt.timedelta(days=7)),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=not_personal("random id"))
    channel: Mapped[str] = mapped_column(String(8), info=not_personal("email | sms"))
    recipient: Mapped[str] = mapped_column(String(254), index=True, info=personal("contact", "B1a", "B1b", "F2", retention="7d"))
    user_id: Mapped[str | None] = mapped_column(String(32), index=True, info=personal("identifier", "B1a", retention="7d"))
    template: Mapped[str] = mapped_column(String(40), info=not_personal("which kind of message"))
    body_key: Mapped[str | None] = mapped_column(String(200), info=personal("communication", "B1a", "F2", retention="7d", blob="mail_outbox"))
    backend: Mapped[str] = mapped_column(String(10), info=not_personal("outbox | smtp | http"))
    status: Mapped[str] = mapped_column(String(10), default="queued", info=not_personal("queued | sent | failed"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, info=not_personal("bookkeeping"))


# No rate limit counts further back than this (``core.ratelimit.MAX_WINDOW``), so a row
# older than that counts for nothing and goes: rows expire with their window.
RATE_EVENT_TTL = dt.timedelta(hours=1)


class RateEvent(Base):
    """One attempt counted against a limit (SEC1). Keyed by a keyed hash, never the address."""

    __tablename__ = "rate_events"
    __privacy__ = TablePrivacy(
        unlinkable="keyed hash of an address or account; cannot be reversed, purged after its hour-long window",
        expiry=Expiry("at", RATE_EVENT_TTL),
    )
    __table_args__ = (Index("ix_rate_events_bucket_key_at", "bucket", "key_hash", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=not_personal("random id"))
    bucket: Mapped[str] = mapped_column(String(40), info=not_personal("which limit"))
    key_hash: Mapped[str] = mapped_column(String(64), info=personal("network", "SEC1", retention="security"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=not_personal("bookkeeping"))
