"""How a layer declares the personal data it stores: the vocabulary of the privacy engine.

This module lives in ``core`` because every layer declares data with it — core's own
tables (the outbox, rate-limit counters) and blob store included — while the engine that
*reads* the declarations (``faoyam.privacy``: register, classification, export, erasure,
retention) sits above core. It imports nothing from faoyam, so any module may use it.

Every column of every table says what it holds::

    class User(Base):
        __tablename__ = "users"
        __privacy__ = TablePrivacy(subject=SubjectRoot(identifiers={"email": "email"}))

        id = mapped_column(String(32), primary_key=True, info=personal("identifier", "B1a"))
        email = mapped_column(String(254), info=personal("contact", "B1a", "B17"))
        created_at = mapped_column(UTCDateTime, info=not_personal("bookkeeping"))

and every table that holds personal data says how a row reaches its data subject
(``Link``), and what erasure does with the row (delete it, or anonymise its personal
columns where a legal duty keeps the rest). Blob kinds (files in the blob store) are
declared with ``BlobKind`` and always referenced from a column declared with ``blob=``,
so the subject operations find them through the rows that own them.

Nothing else is needed for export, erasure and retention to cover a new table: the
classification test fails until every column is declared.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

PRIVACY_KEY = "privacy"

ExportMode = Literal["value", "presence", "omit"]


@dataclass(frozen=True)
class Personal:
    """A column holding personal data."""

    category: str  # a key of faoyam.privacy.register.CATEGORIES
    activities: tuple[str, ...]  # requirement IDs (faoyam.privacy.register.ACTIVITIES)
    retention: str  # a key of faoyam.privacy.register.RETENTION
    blob: str | None = None  # the column holds a key of this blob kind
    export: ExportMode = "value"  # secrets are exported as "present", never as values
    note: str = ""


@dataclass(frozen=True)
class NotPersonal:
    """A column that holds no personal data, and why."""

    reason: str


def personal(
    category: str,
    *activities: str,
    retention: str = "account",
    blob: str | None = None,
    export: ExportMode = "value",
    note: str = "",
) -> dict:
    """``info=`` for a personal-data column."""
    if not activities:
        raise ValueError("a personal column names at least one processing activity")
    return {PRIVACY_KEY: Personal(category, tuple(activities), retention, blob, export, note)}


def not_personal(reason: str) -> dict:
    """``info=`` for a column that holds no personal data."""
    if not reason.strip():
        raise ValueError("say why the column is not personal data")
    return {PRIVACY_KEY: NotPersonal(reason)}


# How rows reach their data subject ------------------------------------------------

SubjectKey = Literal["user_id", "email", "phone"]


@dataclass(frozen=True)
class Link:
    """A path from a row to its data subject.

    ``Link("user_id")``: the column holds the subject's user id.
    ``Link("email", key="email")``: the column holds one of the subject's email addresses.
    ``Link("device_id", via="devices")``: the column references the primary key of
    ``devices``, and the subject is whoever ``devices`` rows link to.

    ``columns`` scopes the link when one row is about several people (a child report
    names a reporter and a reported account): the subject reached through this link is
    shown only these personal columns in an export, and erasing that subject anonymises
    only these columns, leaving the other person's data and the row in place. Without
    ``columns`` the whole row belongs to the subject and ``on_erase`` applies to it.
    """

    column: str
    key: SubjectKey = "user_id"
    via: str | None = None  # table name
    columns: tuple[str, ...] | None = None  # the personal columns that are this subject's


@dataclass(frozen=True)
class SubjectRoot:
    """Marks the table whose rows *are* the subjects (the accounts table).

    ``identifiers`` maps subject keys (email, phone) to columns, so that data held under
    an email address before an account existed (a pending registration, a newsletter
    subscription) is found too.
    """

    id_column: str = "id"
    identifiers: dict[str, str] = field(default_factory=dict)


# The time-bound retention rules of the processing register (``privacy.register.RETENTION``
# names and explains them; this is their length, so a table's expiry is the register's
# rule and not a constant of its own: ``Expiry.by_rule("received_at", "7d")``).
RETENTION_PERIODS: dict[str, dt.timedelta] = {
    "7d": dt.timedelta(days=7),
    "security": dt.timedelta(hours=1),
}


@dataclass(frozen=True)
class Expiry:
    """Rows expire ``after`` the time in ``column`` (RET5's seven days, code expiry...)."""

    column: str
    after: dt.timedelta

    @classmethod
    def by_rule(cls, column: str, rule: str) -> Expiry:
        """Rows expire after the register's retention rule ``rule`` (RET5: "7d")."""
        return cls(column, RETENTION_PERIODS[rule])


@dataclass(frozen=True)
class TablePrivacy:
    subject: Link | tuple[Link, ...] | SubjectRoot | None = None
    on_erase: Literal["delete", "anonymise", "keep"] = "delete"
    expiry: Expiry | None = None
    unlinkable: str = ""  # personal data that cannot be tied to a subject, and why
    # on_erase="keep": a legal duty keeps the rows through a subject's erasure (the audit
    # log); they are exported, never erased by it, and ``keep_reason`` says why.
    keep_reason: str = ""

    @property
    def links(self) -> tuple[Link, ...]:
        if isinstance(self.subject, Link):
            return (self.subject,)
        if isinstance(self.subject, tuple):
            return self.subject
        return ()


@dataclass(frozen=True)
class BlobKind:
    """A kind of file in the blob store. Keys are ``{name}/{random}``."""

    name: str
    category: str
    activities: tuple[str, ...]
    retention: str
    description: str
    personal: bool = True
    content_type: str = "application/octet-stream"


BLOB_KINDS: dict[str, BlobKind] = {}


def blob_kind(
    name: str, category: str, *activities: str, retention: str = "account", description: str,
    personal: bool = True, content_type: str = "application/octet-stream",
) -> BlobKind:
    """Declare (once, at import) a kind of blob."""
    kind = BlobKind(name, category, tuple(activities), retention, description, personal, content_type)
    existing = BLOB_KINDS.get(name)
    if existing is not None and existing != kind:
        raise ValueError(f"blob kind {name!r} declared twice, differently")
    BLOB_KINDS[name] = kind
    return kind


def column_declaration(column) -> Personal | NotPersonal | None:
    return column.info.get(PRIVACY_KEY)


def table_declaration(table) -> TablePrivacy | None:
    return table.info.get(PRIVACY_KEY)
