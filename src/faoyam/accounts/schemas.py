"""Request and response bodies of the accounts API."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field


class Terminal(BaseModel):
    """The terminal signing in (B2). GPS is kept only if the user allowed it in the app."""

    os: str | None = Field(None, max_length=64, examples=["Android 15"])
    model: str | None = Field(None, max_length=128, examples=["Pixel 9"])
    install_id: str | None = Field(None, max_length=128, description="a unique app/install identifier")
    gps_permission: bool = False
    gps_lat: float | None = Field(None, ge=-90, le=90)
    gps_lon: float | None = Field(None, ge=-180, le=180)


class RegisterIn(BaseModel):
    email: str | None = Field(None, max_length=254)
    phone: str | None = Field(None, max_length=32)
    country: str = Field(..., max_length=8, examples=["TH"])
    nickname: str = Field(..., max_length=200)
    password: str = Field(..., max_length=1024)
    language: str = "en"
    age_confirmed: bool = Field(False, description="I am 16 or older (CH1)")


class PendingOut(BaseModel):
    pending_id: str
    sent_to: str
    expires_at: dt.datetime


class ConfirmIn(BaseModel):
    pending_id: str = Field(..., max_length=64)
    code: str = Field(..., max_length=12)
    terminal: Terminal = Terminal()


class SignInIn(BaseModel):
    login: str = Field(..., max_length=254, description="email or phone number")
    password: str = Field(..., max_length=1024)
    country: str | None = Field(None, max_length=2, description="to read a phone number without +")
    code: str | None = Field(None, max_length=12, description="the code sent to the account when a sign-in "
                             "answered step-up-required (many wrong passwords were tried for it)")
    terminal: Terminal = Terminal()


class SessionOut(BaseModel):
    token: str
    csrf_token: str
    user_id: str
    expires_at: dt.datetime


class ProfileOut(BaseModel):
    id: str
    email: str | None
    phone: str | None
    country: str
    nickname: str
    language: str
    has_photo: bool
    has_password: bool
    external_accounts: list[dict]
    created_at: dt.datetime


class ProfileIn(BaseModel):
    nickname: str | None = Field(None, max_length=200)
    language: str | None = Field(None, max_length=8)
    country: str | None = Field(None, max_length=8)


class ContactChangeIn(BaseModel):
    kind: str = Field(..., pattern="^(email|phone)$")
    value: str = Field(..., max_length=254)


class CodeIn(BaseModel):
    code: str = Field(..., max_length=12)


class PasswordChangeIn(BaseModel):
    current_password: str | None = Field(None, max_length=1024)
    new_password: str = Field(..., max_length=1024)


class ResetStartIn(BaseModel):
    login: str = Field(..., max_length=254)
    country: str | None = Field(None, max_length=2)


class ResetFinishIn(BaseModel):
    login: str = Field(..., max_length=254)
    country: str | None = Field(None, max_length=2)
    code: str = Field(..., max_length=12)
    new_password: str = Field(..., max_length=1024)


class ReauthIn(BaseModel):
    password: str | None = Field(None, max_length=1024)
    code: str | None = Field(None, max_length=12)


class TerminalOut(BaseModel):
    id: str
    current: bool
    method: str
    os: str | None
    model: str | None
    install_id: str | None
    gps: dict | None
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime


class SignInEventOut(BaseModel):
    at: dt.datetime
    ip: str | None
    outcome: str
    method: str
