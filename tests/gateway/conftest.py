"""Fixtures for the device gateway: the service with its broker (embedded amqtt, or a
Mosquitto we start with a generated configuration), the real registry, and helpers to
make simulated devices."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
import pytest_asyncio

from faoyam.agent.device import DeviceAgent, Identity
from faoyam.agent.simulator import make_fleet, make_identity
from faoyam.core.context import Context
from faoyam.devices import lifecycle
from faoyam.devices.gateway import factory_register
from faoyam.devices.gateway.core import GatewayOptions
from faoyam.devices.gateway.guard import GuardOptions
from faoyam.devices.gateway.mosquitto import MosquittoProcess, dynsec_plugin, mosquitto_binary
from tests.conftest import DB_KIND, _empty_pg

NO_MOSQUITTO = mosquitto_binary() is None or dynsec_plugin() is None
needs_mosquitto = pytest.mark.skipif(NO_MOSQUITTO, reason="needs the mosquitto binary with its dynamic-security plugin")


def options(**kw) -> GatewayOptions:
    guard = kw.pop("guard", None) or GuardOptions()
    return GatewayOptions(heartbeat_s=kw.pop("heartbeat_s", 0.5), guard=guard, **kw)


@pytest.fixture
def mosquitto(tmp_path):
    if NO_MOSQUITTO:
        pytest.skip("needs the mosquitto binary with its dynamic-security plugin")
    with MosquittoProcess(tmp_path / "mosquitto") as m:
        yield m


async def _service(settings, *, mode: str, mosq: MosquittoProcess | None = None, opts: GatewayOptions | None = None):
    upd = {"mqtt_mode": mode, "mqtt_port": 0 if mode == "embedded" else mosq.port}
    if mosq is not None:
        upd.update(mqtt_username=mosq.service_user, mqtt_password=mosq.service_password)
    s = settings.model_copy(update=upd)
    ctx = Context.build(s)
    if DB_KIND == "postgres":
        await _empty_pg(ctx)
    else:
        await ctx.db.create_all()
    await lifecycle.start(ctx, options=opts or options())
    return ctx


@pytest_asyncio.fixture
async def service_factory(settings, tmp_path):
    """service_factory(mode, opts=None) -> ctx with the gateway running; stopped after the test."""
    made: list[tuple[Context, MosquittoProcess | None]] = []

    async def make(mode: str = "embedded", opts: GatewayOptions | None = None) -> Context:
        mosq = None
        if mode == "mosquitto":
            if NO_MOSQUITTO:
                pytest.skip("needs the mosquitto binary with its dynamic-security plugin")
            mosq = MosquittoProcess(tmp_path / f"mosquitto{len(made)}").start()
        try:
            ctx = await _service(settings, mode="external" if mosq else "embedded", mosq=mosq, opts=opts)
        except BaseException:
            if mosq:
                mosq.stop()
            raise
        made.append((ctx, mosq))
        return ctx

    yield make
    for ctx, mosq in reversed(made):
        await lifecycle.stop(ctx)
        await ctx.close()
        if mosq:
            mosq.stop()


BROKERS = ["embedded", pytest.param("mosquitto", marks=[pytest.mark.mosquitto, needs_mosquitto])]


@pytest.fixture(params=BROKERS)
def broker(request) -> str:
    return request.param


@pytest_asyncio.fixture
async def svc(service_factory, broker) -> Context:
    return await service_factory(broker)


async def new_device(ctx: Context, kind: str = "camera", **kw) -> Identity:
    import random

    ident = make_identity(kind, random.Random(), **kw)
    await factory_register(ctx, ident.factory_device())
    return ident


def agent(ctx: Context, ident: Identity, **kw) -> DeviceAgent:
    return DeviceAgent(ident, "127.0.0.1", ctx.mqtt_port, **kw)


async def online(ctx: Context, ident: Identity, **kw) -> DeviceAgent:
    """A started agent, activated and seen online by the gateway."""
    a = agent(ctx, ident, **kw).start()
    gw = ctx.gateway
    await gw.wait_until(lambda: gw.is_connected(ident.serial), 15)
    return a


async def make_user(ctx: Context) -> str:
    from faoyam.accounts.models import User

    async with ctx.db.transaction() as s:
        u = User(country="TH", nickname="Somchai", age_confirmed_at=dt.datetime.now(dt.UTC))
        s.add(u)
    return u.id


async def bind(ctx: Context, ident: Identity, user_id: str) -> str:
    from faoyam.devices import service
    from faoyam.devices.schemas import AddDeviceIn

    out = await service.add_device(ctx, user_id, AddDeviceIn(serial=ident.serial, safety_code=ident.safety_code))
    return out.id


async def eventually(check, timeout: float = 10.0, every: float = 0.05):
    """Poll an async or sync check until it returns something truthy (bounded)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = check()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return r
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)


async def device_row(ctx: Context, serial: str):
    from faoyam.devices import service

    async with ctx.db.session() as s:
        return await service.find_by_serial(s, ctx, serial)


__all__ = ["make_fleet"]
