"""Bad input from devices: malformed, unknown, replayed, oversized or too many messages
are logged (without personal data) and dropped, the sender is rate-limited, and nothing
else is disturbed."""

from __future__ import annotations

import asyncio
import json
import logging

import aiomqtt
import pytest

from faoyam.devices.gateway import protocol as p
from faoyam.devices.gateway.guard import Guard, GuardOptions
from tests.gateway.conftest import eventually, new_device, online, options


async def _raw(ctx, ident) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", ctx.mqtt_port, username=ident.username, password=ident.password,
                          identifier=ident.username)


@pytest.mark.req("SEC1")
async def test_malformed_unknown_replayed_and_oversized_messages_are_dropped(svc, caplog):
    caplog.set_level(logging.INFO)
    gw = svc.gateway
    bad, good = await new_device(svc), await new_device(svc)
    b = await online(svc, bad)
    g = await online(svc, good)
    await b.stop()
    await gw.wait_until(lambda: not gw.is_connected(bad.serial))
    handled = gw.stats["handled.heartbeat"]
    async with await _raw(svc, bad) as c:
        hb = p.up(bad.serial, p.HEARTBEAT)
        once = p.envelope(status={"uptime_s": 1})
        await c.publish(hb, p.dumps(once), qos=1)  # good (bad ones cost extra, so it goes first)
        await c.publish(hb, b"{not json", qos=1)
        await c.publish(hb, b"[1, 2, 3]", qos=1)
        await c.publish(hb, p.dumps({"v": 99, "id": "abcdef", "ts": p.now_ms()}), qos=1)  # unknown version
        await c.publish(p.up(bad.serial, p.ALARM), p.dumps(p.envelope(channel=0, type="human", at=p.now_ms(),
                                                                      snapshot="bm90IGEganBlZw==")), qos=1)
        await c.publish(hb, p.dumps(once), qos=1)  # replayed id
        await c.publish(hb, p.dumps({**p.envelope(status={}), "ts": p.now_ms() - 3_600_000}), qos=1)  # stale
        await c.publish(hb, p.dumps(p.envelope(status={"junk": "x" * (p.MAX_JSON + 10)})), qos=1)  # oversized
        await c.publish(p.up(bad.serial, "telemetry"), b"{}", qos=1)  # unknown kind: the ACL refuses it
        await eventually(lambda: gw.stats["dropped.stale"] >= 1 and gw.stats["dropped.oversized"] >= 1
                         and gw.stats["dropped.bad-snapshot"] >= 1, 10)
    assert gw.stats["dropped.malformed"] >= 2
    assert gw.stats["dropped.invalid"] >= 1
    assert gw.stats["dropped.replayed"] >= 1
    assert gw.stats["dropped.bad-snapshot"] >= 1
    await eventually(lambda: gw.stats["handled.heartbeat"] >= handled + 1)  # the good one went through, once
    # the other device was not disturbed
    assert gw.is_connected(good.serial)
    assert (await gw.command(good.serial, "set_config", {"motionDetect": False}))["config"]["motionDetect"] is False
    # logs name no serial, address or payload
    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records if r.name.startswith("faoyam"))
    assert "device message dropped" in text
    for secret in (bad.serial, good.serial, bad.password, "127.0.0.1", "not json"):
        assert secret not in text
    await g.stop()


@pytest.mark.req("SEC1")
async def test_unknown_kind_reaching_the_gateway_is_dropped(svc):
    gw = svc.gateway
    gw._receive("faoyam/d/ABCD1234/up/telemetry", b"{}")
    gw._receive("faoyam/d/not a serial/up/heartbeat", b"{}")
    gw._receive("elsewhere/x", b"{}")
    assert gw.stats["dropped.unknown-kind"] == 1 and gw.stats["dropped.bad-topic"] == 2


@pytest.mark.req("SEC1")
async def test_packets_above_the_broker_limit_close_only_that_connection(svc):
    gw = svc.gateway
    bad, good = await new_device(svc), await new_device(svc)
    b = await online(svc, bad)
    g = await online(svc, good)
    await b.stop()
    with pytest.raises(aiomqtt.MqttError):
        async with await _raw(svc, bad) as c:
            await c.publish(p.up(bad.serial, p.ALARM), b"x" * (p.MAX_PACKET + 4096), qos=0)
            async for _ in c.messages:  # the broker hangs up
                pass
    assert gw.is_connected(good.serial)
    assert (await gw.command(good.serial, "snapshot", {"channel": 0}))["jpeg"]
    await g.stop()


@pytest.mark.req("SEC1")
async def test_a_flooding_device_is_rate_limited_and_others_are_served(service_factory, broker):
    svc = await service_factory(broker, options(guard=GuardOptions(rate=5, burst=10, log_every_s=0.2)))
    gw = svc.gateway
    flood, calm = await new_device(svc), await new_device(svc)
    f = await online(svc, flood)
    c = await online(svc, calm)
    handled_before = gw.stats["handled.heartbeat"]
    n = 400
    t0 = asyncio.get_running_loop().time()
    for _ in range(n):
        await f.publish_raw(p.HEARTBEAT, p.dumps(p.envelope(status={"x": 1})), qos=0)
    # while flooding, the calm device is served
    assert (await gw.command(calm.serial, "snapshot", {"channel": 0}))["jpeg"]
    await eventually(lambda: gw.stats["dropped.rate-limited"] > 0, 10)
    await eventually(lambda: f.stats.notices, 10)  # the device is told
    elapsed = asyncio.get_running_loop().time() - t0
    # what got through is bounded by the bucket, the flood did not all reach the registry
    allowed = 10 + 5 * (elapsed + 1) + 20  # burst + rate x time + the calm device's and the agent's own
    assert gw.stats["handled.heartbeat"] - handled_before <= allowed
    assert gw.stats["dropped.rate-limited"] >= n // 2  # most of the flood (QoS 0 may also be lost on the way)
    assert f.stats.notices[0]["code"] == "rate-limited"
    assert gw.is_connected(calm.serial) and gw.is_connected(flood.serial)
    await f.stop()
    await c.stop()


def test_guard_replay_window_and_bucket():
    t = [0.0]
    g = Guard(GuardOptions(rate=1, burst=2, replay_window_s=60, future_skew_s=10, seen_ids=2), clock=lambda: t[0])
    assert g.admit("S1") and g.admit("S1") and not g.admit("S1")
    t[0] += 1.0
    assert g.admit("S1") and not g.admit("S1")
    assert g.admit("S2")  # per device
    now = 1_000_000.0
    assert g.fresh("S1", "a", int(now * 1000), now) is None
    assert g.fresh("S1", "a", int(now * 1000), now) == "replayed"
    assert g.fresh("S1", "b", int((now - 61) * 1000), now) == "stale"
    assert g.fresh("S1", "c", int((now + 11) * 1000), now) == "future"
    g.fresh("S1", "d", int(now * 1000), now)
    g.fresh("S1", "e", int(now * 1000), now)
    assert g.fresh("S1", "a", int(now * 1000), now) is None  # forgotten after seen_ids newer ones
    assert json.dumps({"ok": True})
