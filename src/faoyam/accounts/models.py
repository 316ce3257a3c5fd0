"""Account tables, each column declared for the privacy engine."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faoyam.core.database import Base, UTCDateTime, new_id, utcnow
from faoyam.core.declarations import Expiry, Link, SubjectRoot, TablePrivacy, blob_kind, not_personal, personal

blob_kind("profile_photo", "profile", "B1a", "B1b", description="profile photo the user uploaded (re-encoded, metadata stripped)",
          content_type="image/jpeg")
blob_kind("external_photo", "external_account", "B1a", description="profile photo from an external sign-in provider",
          content_type="image/jpeg")

_ID = not_personal("random id")
_BOOK = not_personal("bookkeeping")


class User(Base):
    """An account: the data subject of everything in the app."""

    __tablename__ = "users"
    __privacy__ = TablePrivacy(subject=SubjectRoot("id", identifiers={"email": "email", "phone": "phone"}))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=personal("identifier", "B1a"))
    email: Mapped[str | None] = mapped_column(String(254), unique=True, info=personal("contact", "B1a", "B1b", "B17"))
    phone: Mapped[str | None] = mapped_column(String(20), unique=True, info=personal("contact", "B1a", "B1b", "B17"))
    country: Mapped[str] = mapped_column(String(2), info=personal("profile", "B1a"))
    nickname: Mapped[str] = mapped_column(String(64), info=personal("profile", "B1a", "B1b"))
    password_hash: Mapped[str | None] = mapped_column(String(200), info=personal("credential", "B1a", export="presence"))
    photo_key: Mapped[str | None] = mapped_column(String(200), info=personal("profile", "B1a", "B1b", blob="profile_photo"))
    language: Mapped[str] = mapped_column(String(8), default="en", info=personal("profile", "B1a"))
    age_confirmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, info=personal("age", "B1a"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=personal("identifier", "B1a"))
    last_active_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=personal("identifier", "B2"))
    password_changed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_BOOK)
    inactivity_notice_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=not_personal("RET3 notice bookkeeping"))


class ExternalIdentity(Base):
    """An external account (OIDC/OAuth2) linked to a user: only what the policy names (B1a)."""

    __tablename__ = "external_identities"
    __privacy__ = TablePrivacy(subject=Link("user_id"))
    __table_args__ = (UniqueConstraint("provider", "external_subject"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, info=personal("identifier", "B1a"))
    provider: Mapped[str] = mapped_column(String(40), info=not_personal("provider name from configuration"))
    external_subject: Mapped[str] = mapped_column(String(255), info=personal("external_account", "B1a"))
    nickname: Mapped[str | None] = mapped_column(String(128), info=personal("external_account", "B1a"))
    photo_key: Mapped[str | None] = mapped_column(String(200), info=personal("external_account", "B1a", blob="external_photo"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)


class PendingRegistration(Base):
    """A registration waiting for its one-time code. Nothing becomes an account before that."""

    __tablename__ = "pending_registrations"
    __privacy__ = TablePrivacy(
        subject=(Link("email", key="email"), Link("phone", key="phone")),
        expiry=Expiry("created_at", dt.timedelta(days=1)),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    email: Mapped[str | None] = mapped_column(String(254), index=True, info=personal("contact", "B1a", retention="verification"))
    phone: Mapped[str | None] = mapped_column(String(20), index=True, info=personal("contact", "B1a", retention="verification"))
    country: Mapped[str] = mapped_column(String(2), info=personal("profile", "B1a", retention="verification"))
    nickname: Mapped[str] = mapped_column(String(64), info=personal("profile", "B1a", retention="verification"))
    password_hash: Mapped[str] = mapped_column(String(200), info=personal("credential", "B1a", retention="verification", export="presence"))
    language: Mapped[str] = mapped_column(String(8), default="en", info=personal("profile", "B1a", retention="verification"))
    age_confirmed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, info=personal("age", "B1a", retention="verification"))
    code_hash: Mapped[str] = mapped_column(String(64), info=personal("credential", "B1a", retention="verification", export="omit"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, info=_BOOK)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, info=_BOOK)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)


class VerificationCode(Base):
    """A one-time code for a signed-in user: a new email or phone (B1b), a password reset, a step-up (R8)."""

    __tablename__ = "verification_codes"
    __privacy__ = TablePrivacy(
        subject=(Link("user_id"), Link("target", key="email"), Link("target", key="phone")),
        expiry=Expiry("created_at", dt.timedelta(days=1)),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id"), index=True, info=personal("identifier", "B1b", retention="verification"))
    purpose: Mapped[str] = mapped_column(String(20), info=not_personal("change_email | change_phone | reset_password | step_up"))
    target: Mapped[str] = mapped_column(String(254), info=personal("contact", "B1b", retention="verification"))
    code_hash: Mapped[str] = mapped_column(String(64), info=personal("credential", "B1b", retention="verification", export="omit"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, info=_BOOK)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, info=_BOOK)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime, info=_BOOK)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)


class Session(Base):
    """A signed-in terminal (B2). The user sees and revokes these."""

    __tablename__ = "sessions"
    __privacy__ = TablePrivacy(subject=Link("user_id"), expiry=Expiry("expires_at", dt.timedelta(0)))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, info=personal("identifier", "B2", retention="session"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, info=personal("credential", "B2", retention="session", export="omit"))
    csrf_token: Mapped[str] = mapped_column(String(64), info=personal("credential", "B2", retention="session", export="omit"))
    method: Mapped[str] = mapped_column(String(40), info=not_personal("password | code | oidc:<provider>"))
    terminal_os: Mapped[str | None] = mapped_column(String(64), info=personal("terminal", "B2", retention="session"))
    terminal_model: Mapped[str | None] = mapped_column(String(128), info=personal("terminal", "B2", retention="session"))
    install_id: Mapped[str | None] = mapped_column(String(128), info=personal("terminal", "B2", retention="session"))
    gps_lat: Mapped[float | None] = mapped_column(Float, info=personal("location", "B2", retention="session"))
    gps_lon: Mapped[float | None] = mapped_column(Float, info=personal("location", "B2", retention="session"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
    authenticated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, info=_BOOK)


class SignInEvent(Base):
    """Sign-in attempts with their address, kept 7 days (RET5), shown to the user."""

    __tablename__ = "sign_in_events"
    __privacy__ = TablePrivacy(subject=Link("user_id"), expiry=Expiry("at", dt.timedelta(days=7)))

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id, info=_ID)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True, info=personal("identifier", "B2", retention="7d"))
    ip: Mapped[str | None] = mapped_column(String(45), info=personal("network", "B2", retention="7d"))
    outcome: Mapped[str] = mapped_column(String(20), info=not_personal("ok | bad_password | step_up"))
    method: Mapped[str] = mapped_column(String(40), info=not_personal("password | oidc:<provider>"))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, info=_BOOK)
    success: Mapped[bool] = mapped_column(Boolean, default=False, info=_BOOK)
