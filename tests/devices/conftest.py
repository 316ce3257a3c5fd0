"""Fixtures of the devices tests: factory-made devices, people, and a stand-in gateway.

The real gateway (MQTT) is another package's work; these tests talk to the registry's
side of the contract in ``devices/ports.py`` and give routes a ``FakeGateway`` that
keeps the same promises: ``DeviceOffline`` when not connected, answers otherwise.
"""

from __future__ import annotations

import io
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from PIL import Image

from faoyam.accounts import service as accounts
from faoyam.accounts.schemas import Terminal
from faoyam.devices import service
from faoyam.devices.ports import ActivationReport, DeviceOffline, FactoryDevice

_serials = itertools.count(1)


@dataclass
class FakeGateway:
    """Implements the ``Gateway`` protocol: records commands, answers from ``replies``."""

    connected: set[str] = field(default_factory=set)
    calls: list[tuple[str, str, dict]] = field(default_factory=list)
    disconnected: list[str] = field(default_factory=list)
    replies: dict[str, Any] = field(default_factory=dict)

    async def command(self, serial: str, name: str, params: dict, timeout: float = 10.0) -> dict:
        if serial not in self.connected:
            raise DeviceOffline()
        self.calls.append((serial, name, dict(params)))
        reply = self.replies.get(name, {"ok": True})
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def disconnect(self, serial: str) -> None:
        self.disconnected.append(serial)
        self.connected.discard(serial)

    def is_connected(self, serial: str) -> bool:
        return serial in self.connected

    async def is_online(self, serial: str) -> bool:
        return serial in self.connected

    async def stop(self) -> None:
        """The app's device lifecycle stops whatever gateway it finds at shutdown."""

    def names(self) -> list[str]:
        return [name for _, name, _ in self.calls]


@pytest_asyncio.fixture
async def gw(ctx, request) -> FakeGateway:
    """A gateway at ctx.gateway. If the test also runs the app, install it after start-up,
    so that no gateway the app's lifecycle might start replaces it."""
    if "app" in request.fixturenames or "client" in request.fixturenames:
        request.getfixturevalue("app")
    fake = FakeGateway()
    ctx.gateway = fake
    yield fake
    ctx.gateway = None


def new_serial(prefix: str = "FY") -> str:
    return f"{prefix}{next(_serials):08d}T"


async def make_device(ctx, *, kind: str = "camera", channels: int | None = None, serial: str | None = None,
                      code: str = "LC7Q2K", secret: str = "factory-secret-1", model: str | None = None,
                      abilities: tuple[str, ...] = (), paired_with: str | None = None) -> FactoryDevice:
    """A unit made at the factory (unbound)."""
    if channels is None:
        channels = {"camera": 1, "nvr": 4, "doorbell": 1, "chime": 0}[kind]
    fd = FactoryDevice(serial=serial or new_serial(), kind=kind, model=model or f"FY-{kind.upper()}-1", channels=channels,
                       safety_code=code, factory_secret=secret, abilities=abilities, paired_with=paired_with)
    await service.factory_register(ctx, fd)
    return fd


def activation(fd: FactoryDevice, **kw) -> ActivationReport:
    base = dict(mac="02:11:22:33:44:55", model=fd.model, firmware="2.840.0000000.1.R",
                channels=[{"index": i, "name": f"Channel {i + 1}", "abilities": ["MD"]} for i in range(fd.channels)],
                config={"motion": {"enabled": True}})
    base.update(kw)
    return ActivationReport(**base)


@dataclass
class Person:
    user_id: str
    token: str

    @property
    def h(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}


_people = itertools.count(1)


async def person(ctx, nickname: str | None = None, country: str = "TH") -> Person:
    """A signed-in account made the quick way (no password to hash), for tests about devices."""
    n = next(_people)
    new = await accounts.create_external_account(
        ctx, provider="test", external_subject=f"subject-{n}", nickname=nickname or f"Person {n}", photo=None,
        country=country, language="en", age_confirmed=True, terminal=Terminal(), ip="127.0.0.1")
    return Person(new.user_id, new.token)


async def owned(ctx, client, owner: Person, **kw) -> tuple[str, FactoryDevice]:
    """A device added to ``owner``'s account through the API; returns (device id, factory facts)."""
    fd = await make_device(ctx, **kw)
    r = await client.post("/api/v1/devices", json={"serial": fd.serial, "safety_code": fd.safety_code}, headers=owner.h)
    assert r.status_code == 201, r.text
    return r.json()["id"], fd


def png(w: int = 64, h: int = 48, color=(10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), color).save(out, "PNG")
    return out.getvalue()


def jpeg(w: int = 64, h: int = 48, color=(200, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (w, h), color).save(out, "JPEG")
    return out.getvalue()


async def grant(ctx, device_id: str, invitee: Person, permissions: list[str], channels: list[int] | None = None,
                accepted: bool = True) -> str:
    """A share as if invited and accepted (the invitation flow itself is tested in test_sharing)."""
    from faoyam.core.database import utcnow
    from faoyam.devices.models import Share

    async with ctx.db.transaction() as s:
        row = Share(device_id=device_id, invitee_id=invitee.user_id, invited_via="email", permissions=permissions,
                    channels=channels, status="accepted" if accepted else "pending",
                    accepted_at=utcnow() if accepted else None)
        s.add(row)
    return row.id

