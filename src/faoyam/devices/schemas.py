"""Request and response bodies of the devices API.

Requests refuse unknown fields (a typo must not be silently ignored). Secrets (device
and Wi-Fi passwords) are ``SecretStr``: they never show in a repr, a log or an error.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

GrantIn = Literal["live", "playback", "alarms", "control"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AddDeviceIn(_In):
    """Add a device by the serial and safety code on its label (B3)."""

    serial: str = Field(..., max_length=64, examples=["9B02A1CPAZ12345"])
    safety_code: str = Field(..., max_length=64, examples=["L2C4E6"])
    model: str | None = Field(None, max_length=64, description="the model the app recognised; checked against the label")
    name: str | None = Field(None, max_length=200)
    wifi_ssid: str | None = Field(None, max_length=64, description="the network name (kept)")
    wifi_password: SecretStr | None = Field(None, max_length=128, description="sent to the device once, never stored")
    device_password: SecretStr | None = Field(None, max_length=128, description="the device's password (kept encrypted)")
    time_zone: str | None = Field(None, max_length=64, examples=["Asia/Bangkok"])
    dst: bool = False


class DevicePatchIn(_In):
    name: str | None = Field(None, max_length=200)
    time_zone: str | None = Field(None, max_length=64)
    dst: bool | None = None


class ChannelPatchIn(_In):
    name: str = Field(..., max_length=200)


class PasswordIn(_In):
    password: SecretStr = Field(..., max_length=128)


class WifiIn(_In):
    ssid: str = Field(..., max_length=64)
    password: SecretStr | None = Field(None, max_length=128)


class ChannelIn(_In):
    channel: int = Field(0, ge=0, le=255)


class PtzMoveIn(_In):
    channel: int = Field(0, ge=0, le=255)
    pan: float = Field(0, ge=-1, le=1)
    tilt: float = Field(0, ge=-1, le=1)
    zoom: float = Field(0, ge=-1, le=1)
    duration_ms: int = Field(500, ge=50, le=10_000)
    # Imou's controlMovePTZ operations by name; when given, pan/tilt/zoom are ignored.
    operation: Literal["up", "down", "left", "right", "up_left", "down_left", "up_right", "down_right",
                       "zoom_in", "zoom_out", "stop"] | None = None


class PtzLocateIn(_In):
    channel: int = Field(0, ge=0, le=255)
    x: float = Field(..., ge=-1, le=1)
    y: float = Field(..., ge=-1, le=1)
    zoom: float = Field(0, ge=0, le=1)


class ConfigIn(_In):
    config: dict[str, Any]


class ShareIn(_In):
    """Share with the account registered under this email or phone (B9)."""

    contact: str = Field(..., max_length=254, examples=["friend@example.com", "+66812345678"])
    permissions: list[GrantIn] = Field(..., min_length=1, max_length=4)
    channels: list[int] | None = Field(None, max_length=256, description="null: the whole device")


class SharePatchIn(_In):
    permissions: list[GrantIn] | None = Field(None, min_length=1, max_length=4)
    channels: list[int] | None = Field(None, max_length=256)


class ShareLinkIn(_In):
    label: str | None = Field(None, max_length=200, examples=["for grandma"])
    channels: list[int] | None = Field(None, max_length=256)
    hours: int = Field(24, ge=1, le=168, description="how long the link works (at most 7 days)")


# Responses ------------------------------------------------------------------------


class ChannelOut(BaseModel):
    index: int
    name: str | None
    abilities: list[str]
    has_cover: bool


class DeviceOut(BaseModel):
    id: str
    kind: str
    model: str
    name: str | None
    role: Literal["owner", "shared"]
    shared: bool
    shared_by: str | None = None  # the owner's nickname, for a device shared with you
    permissions: list[str]
    online: bool
    last_seen_at: dt.datetime | None
    has_cover: bool
    abilities: list[str]
    channels: list[ChannelOut]
    parent_id: str | None = None  # a chime's doorbell
    accessory_ids: list[str] = []  # a doorbell's chimes
    # The owner's view only (B3, B6, B8):
    serial: str | None = None
    time_zone: str | None = None
    dst: bool | None = None
    wifi_ssid: str | None = None
    has_password: bool | None = None
    mac: str | None = None
    ip: str | None = None
    firmware: str | None = None
    country: str | None = None
    location: str | None = None
    bound_at: dt.datetime | None = None
    activated_at: dt.datetime | None = None
    config: dict | None = None


class Invitee(BaseModel):
    user_id: str
    nickname: str
    contact: str | None


class ShareOut(BaseModel):
    id: str
    device_id: str
    invitee: Invitee
    permissions: list[str]
    channels: list[int] | None
    status: str
    created_at: dt.datetime
    accepted_at: dt.datetime | None


class IncomingShareOut(BaseModel):
    id: str
    device_id: str
    device_name: str | None
    device_kind: str
    shared_by: str
    permissions: list[str]
    channels: list[int] | None
    status: str
    created_at: dt.datetime


class ShareLinkOut(BaseModel):
    id: str
    label: str | None
    channels: list[int] | None
    created_at: dt.datetime
    expires_at: dt.datetime


class ShareLinkCreated(ShareLinkOut):
    token: str = Field(..., description="shown once; only its hash is kept")
    api_url: str


class PublicChannel(BaseModel):
    index: int
    name: str | None
    live_url: str | None = Field(None, description="filled in by the media engine; null until it serves this channel")


class PublicLinkOut(BaseModel):
    """What a viewer holding a share link may see: live view of the listed channels only."""

    device_name: str | None
    kind: str
    online: bool
    permissions: list[str]
    channels: list[PublicChannel]
    expires_at: dt.datetime
