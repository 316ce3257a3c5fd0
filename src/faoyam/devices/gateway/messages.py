"""Uplink payload schemas: what the gateway accepts from a device, field by field.

A payload that does not parse into its kind's model is dropped (and counted against the
device's rate limit). Unknown extra fields are ignored so newer firmware can add some.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from faoyam.devices.gateway import protocol as p


class Bad(ValueError):
    """A message the gateway drops; ``reason`` is a short, data-free code for logs."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _bounded(d: dict[str, Any], limit: int = 8 * 1024, depth: int = 4) -> dict[str, Any]:
    def walk(x: Any, level: int) -> None:
        if level > depth:
            raise ValueError("too deep")
        if isinstance(x, dict):
            for v in x.values():
                walk(v, level + 1)
        elif isinstance(x, list):
            for v in x:
                walk(v, level + 1)

    walk(d, 0)
    if len(json.dumps(d)) > limit:
        raise ValueError("too large")
    return d


class Envelope(BaseModel):
    model_config = ConfigDict(extra="ignore")
    v: Literal[1]
    id: str = Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    ts: int = Field(ge=0)


class Channel(BaseModel):
    model_config = ConfigDict(extra="ignore")
    index: int = Field(ge=0, le=255)
    name: str = Field(default="", max_length=64)
    abilities: list[str] = Field(default_factory=list, max_length=64)


class Activate(Envelope):
    mac: str = Field(pattern=r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
    model: str = Field(min_length=1, max_length=64)
    firmware: str = Field(min_length=1, max_length=64)
    channels: list[Channel] = Field(min_length=1, max_length=256)
    config: dict[str, Any] = Field(default_factory=dict)
    ip: str | None = Field(default=None, max_length=45)

    _cfg = field_validator("config")(lambda cls, v: _bounded(v))


class State(BaseModel):
    """Online announcement (retained) or the last will (offline). The will is fixed at
    connect time, so it carries no message id or time; ``conn`` ties it to one connection."""

    model_config = ConfigDict(extra="ignore")
    v: Literal[1]
    online: bool
    conn: str = Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    id: str | None = Field(default=None, max_length=64)
    ts: int | None = None
    firmware: str | None = Field(default=None, max_length=64)


class Heartbeat(Envelope):
    status: dict[str, Any] = Field(default_factory=dict)
    _st = field_validator("status")(lambda cls, v: _bounded(v))


class Config(Envelope):
    config: dict[str, Any]
    _cfg = field_validator("config")(lambda cls, v: _bounded(v))


class Alarm(Envelope):
    channel: int = Field(ge=0, le=255)
    type: str = Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]+$")
    at: int = Field(ge=0)
    snapshot: str | None = None  # base64 JPEG, at most MAX_SNAPSHOT bytes decoded

    def picture(self) -> bytes | None:
        if self.snapshot is None:
            return None
        try:
            data = p.unb64(self.snapshot)
        except ValueError as exc:
            raise Bad("bad-snapshot") from exc
        if not p.is_jpeg(data):
            raise Bad("bad-snapshot")
        return data


class ReplyError(BaseModel):
    model_config = ConfigDict(extra="ignore")
    code: str = Field(max_length=64)
    message: str = Field(default="", max_length=256)


class Reply(Envelope):
    re: str = Field(min_length=4, max_length=64)
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error: ReplyError | None = None


MODELS: dict[str, type[BaseModel]] = {
    p.ACTIVATE: Activate,
    p.STATE: State,
    p.HEARTBEAT: Heartbeat,
    p.STATUS: Heartbeat,
    p.CONFIG: Config,
    p.ALARM: Alarm,
    p.REPLY: Reply,
}


def parse(kind: str, payload: bytes) -> BaseModel:
    model = MODELS.get(kind)
    if model is None:
        raise Bad("unknown-kind")
    if len(payload) > p.max_size(kind):
        raise Bad("oversized")
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Bad("malformed") from exc
    if not isinstance(data, dict):
        raise Bad("malformed")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Bad("invalid") from exc
