"""Bad input from devices: malformed, unknown, replayed, oversized or too many messages
are logged (without personal data) and dropped, the sender is rate-limited, and nothing
else is disturbed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter

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
    """Deterministic: the bucket's clock stands still, so no token comes back during the
    flood and exactly what was left of the burst gets through (the refill itself is
    ``test_guard_replay_window_and_bucket``); QoS 1, so no message is lost on the way;
    long heartbeats, so neither device times out on a slow machine meanwhile."""
    svc = await service_factory(broker, options(heartbeat_s=30))
    gw = svc.gateway
    flood, calm = await new_device(svc), await new_device(svc)
    f = await online(svc, flood)
    c = await online(svc, calm)
    gw.guard = Guard(GuardOptions(rate=5, burst=10), clock=lambda: 0.0)
    before = Counter(gw.stats)
    n = 200
    for _ in range(n):
        await f.publish_raw(p.HEARTBEAT, p.dumps(p.envelope(status={"x": 1})), qos=1)
    # while the flooder is over its limit, the calm device is served
    assert (await gw.command(calm.serial, "snapshot", {"channel": 0}))["jpeg"]
    await eventually(lambda: (gw.stats["handled.heartbeat"] - before["handled.heartbeat"])
                     + (gw.stats["dropped.rate-limited"] - before["dropped.rate-limited"]) >= n, 30)
    assert gw.stats["handled.heartbeat"] - before["handled.heartbeat"] == 10  # the burst, nothing more
    assert gw.stats["dropped.rate-limited"] - before["dropped.rate-limited"] == n - 10
    await eventually(lambda: f.stats.notices, 10)  # the device is told
    assert f.stats.notices[0]["code"] == "rate-limited"
    assert not c.stats.notices  # the calm one is not
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
