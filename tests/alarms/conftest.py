"""Fixtures of the alarms tests: a bound, activated camera/NVR with an owner, people to
share with, and raising alarms through the one entry point."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest_asyncio

from faoyam.alarms import lifecycle
from faoyam.alarms import service as alarms
from faoyam.core.database import utcnow
from faoyam.devices import service as devices
from tests.conftest import register
from tests.devices.conftest import FakeGateway, Person, activation, grant, jpeg, owned, person  # noqa: F401


@dataclass
class Setup:
    owner: Person
    device_id: str
    serial: str


@pytest_asyncio.fixture
async def cam(ctx, client) -> Setup:
    """The app runs (routes), but its background dispatcher is stopped: the tests deliver
    with ``dispatch_once``, so every outcome is observed in order."""
    await lifecycle.stop(ctx)
    session = await register(client, ctx, email="owner@example.com", nickname="Owner")
    owner = Person(session["user_id"], session["token"])
    device_id, fd = await owned(ctx, client, owner, kind="nvr", channels=2)
    await devices.activate(ctx, fd.serial, activation(fd), "8.8.8.8")
    return Setup(owner, device_id, fd.serial)


async def raise_one(ctx, cam: Setup, *, channel: int = 0, kind: str = "human", snapshot: bytes | None = None,
                    at: dt.datetime | None = None, source: str = "device") -> str | None:
    return await alarms.raise_alarm(ctx, device_id=cam.device_id, channel=channel, kind=kind, at=at or utcnow(),
                                    snapshot=snapshot, source=source)
