"""Staff tables: accounts, sessions and the append-only audit log, declared for the privacy engine.

Staff accounts are not customer accounts (``users``): a staff member signs in at
``/staff`` with a password and a TOTP code, under a cookie of their own. The audit log
records every staff action and every staff read of customer data; rows are never changed
or deleted by code (see ``audit``), and on PostgreSQL a trigger refuses UPDATE and DELETE
outright (migration ``9e2c64772b99``, and ``AUDIT_TRIGGER_DDL`` for tables made from the
models).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import DDL, JSON, ForeignKey, Integer, String, event
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime, new_id, utcnow
from faoyam.core.declarations import Expiry, Link, TablePrivacy, not_personal, personal

_ID = not_personal("random id")
_BOOK = not_personal("bookkeeping")
_STAFF = dict(retention="audit")


class StaffAccount(Base):
    """A member of the operator's staff with one role (``permissions.ROLES``).

    The staff member is a data subject too, reached by their work address."""

    __tablename__ = "staff_accounts"
    __privacy__ = TablePrivacy(subject=Link("email", key="email"), on_erase="keep",
                               keep_reason="the audit log names who acted; staff accounts are disabled, not erased, "
                                           "while their audit entries are kept")

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=personal("identifier", "AUD1", **_STAFF))
    email: Mapped[str] = mapped_column(String(254), unique=True, info=personal("contact", "AUD1", **_STAFF))
    role: Mapped[str] = mapped_column(String(20), info=not_personal("admin | dpo | support"))
    password_hash: Mapped[str | None] = mapped_column(String(200), info=personal("credential", "AUD1", export="presence", **_STAFF))
    # The TOTP secret, sealed with the service's secret box (core.security.SecretBox).
    totp_secret: Mapped[str] = mapped_column(String(300), info=personal("credential", "AUD1", export="omit", **_STAFF))
    totp_last_step: Mapped[int | None] = mapped_column(Integer, info=not_personal("last TOTP time step used (replay guard)"))
    enrol_token_hash: Mapped[str | None] = mapped_column(String(64), unique=True,
                                                         info=personal("credential", "AUD1", export="omit", **_STAFF))
    enrol_expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_BOOK)
    enrolled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_BOOK)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_BOOK)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)


class StaffSession(Base):
    """A signed-in staff browser: short-lived (``staff_session_minutes`` idle, 8 h at most)."""

    __tablename__ = "staff_sessions"
    __privacy__ = TablePrivacy(subject=Link("staff_id", via="staff_accounts"), expiry=Expiry("expires_at", dt.timedelta(0)))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    staff_id: Mapped[str] = mapped_column(ForeignKey("staff_accounts.id"), index=True,
                                          info=personal("identifier", "AUD1", retention="session"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, info=personal("credential", "AUD1", retention="session", export="omit"))
    csrf_token: Mapped[str] = mapped_column(String(64), info=personal("credential", "AUD1", retention="session", export="omit"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, info=_BOOK)


class AuditEntry(Base):
    """One staff action or data-subject operation: who, what, on whom, when, why.

    Append-only. It is about two people: the staff member who acted (``staff_id``) and the
    customer acted on (``subject_id``, a user id that outlives the account on purpose: the
    record of an erasure must survive it). Erasure keeps the rows (legal obligation,
    accountability); they go after ``audit_retention_days`` (``staff.audit.purge``).
    """

    __tablename__ = "audit_log"
    __privacy__ = TablePrivacy(
        subject=(Link("subject_id", columns=("subject_id", "reason", "detail")),
                 Link("staff_id", via="staff_accounts", columns=("staff_id",))),
        on_erase="keep",
        keep_reason="the audit log is evidence of how personal data was handled (legal obligation); "
                    "kept for the operator's audit_retention_days",
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True, info=_BOOK)
    staff_id: Mapped[str | None] = mapped_column(String(32), index=True, info=personal("identifier", "AUD1", **_STAFF))
    action: Mapped[str] = mapped_column(String(40), info=not_personal("customer.search | customer.view | customer.export | ..."))
    subject_id: Mapped[str | None] = mapped_column(String(32), index=True, info=personal("identifier", "AUD1", **_STAFF))
    reason: Mapped[str | None] = mapped_column(String(500), info=personal("communication", "AUD1", **_STAFF))
    detail: Mapped[dict] = mapped_column(JSON, default=dict, info=personal("event", "AUD1", **_STAFF,
                                                                            note="counts and outcomes, never copied customer data"))


# On PostgreSQL the database itself refuses to change the log. Retention (``audit.purge``)
# is the one deletion, and it says so first with ``SET LOCAL faoyam.audit_purge = 'on'``.
AUDIT_TRIGGER_DDL = ["""
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' AND coalesce(current_setting('faoyam.audit_purge', true), '') = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only: ' || TG_OP || ' refused';
END;
$$ LANGUAGE plpgsql""",
    "DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log",
    """CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION audit_log_append_only()"""]

for _statement in AUDIT_TRIGGER_DDL:  # one statement each: asyncpg prepares what it runs
    event.listen(AuditEntry.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))


@event.listens_for(AuditEntry, "before_update")
def _refuse_update(mapper, connection, target):
    raise RuntimeError("audit_log is append-only: an entry cannot be changed")


@event.listens_for(AuditEntry, "before_delete")
def _refuse_delete(mapper, connection, target):
    raise RuntimeError("audit_log is append-only: an entry cannot be deleted")
