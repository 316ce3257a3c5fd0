"""The embedded broker matches a message against the filters that can match it, not
against every subscription (one or more per connected device)."""

from __future__ import annotations

import pytest

from faoyam.devices.gateway import protocol as p
from faoyam.devices.gateway.embedded import _Broker, _Subscriptions
from tests.gateway.conftest import eventually, new_device, online


def _fleet_filters(n: int) -> list[str]:
    return [f"faoyam/d/SERIAL{i:05d}/down/#" for i in range(n)]


def test_candidates_do_not_grow_with_the_fleet():
    subs = _Subscriptions()
    for f in _fleet_filters(2000) + [p.topic("+", "up", k) for k in p.UP_KINDS] + ["#", "a/b", "$SYS/#"]:
        subs.setdefault(f, []).append(("session", 1))
    cands = subs.candidates(p.down("SERIAL00042", p.CMD))
    assert "faoyam/d/SERIAL00042/down/#" in cands
    assert len(cands) <= len(p.UP_KINDS) + 4  # its own filter and the wildcard ones, whatever the fleet
    # the index agrees with the brute force match for every kind of topic
    broker = _Broker.__new__(_Broker)
    broker.logger = __import__("logging").getLogger("test")
    for topic in [p.down("SERIAL00042", p.CMD), p.up("SERIAL01999", p.HEARTBEAT), "a/b", "a", "$SYS/broker/x",
                  "faoyam/d/SERIAL00001", "faoyam/d/SERIAL00001/down"]:
        brute = {f for f in subs if broker._matches(topic, f)}
        assert brute == {f for f in subs.candidates(topic) if broker._matches(topic, f)}, topic
    # removal, in each way amqtt removes keys
    del subs["faoyam/d/SERIAL00042/down/#"]
    subs.pop("faoyam/d/SERIAL00043/down/#")
    assert "faoyam/d/SERIAL00042/down/#" not in subs.candidates(p.down("SERIAL00042", p.CMD))
    assert "faoyam/d/SERIAL00043/down/#" not in subs.candidates(p.down("SERIAL00043", p.CMD))
    subs.clear()
    assert subs.candidates(p.down("SERIAL00001", p.CMD)) == []


@pytest.mark.parametrize("broker", ["embedded"])
async def test_messages_still_reach_every_subscriber_through_the_index(svc):
    gw = svc.gateway
    devices = [await new_device(svc) for _ in range(3)]
    agents = [await online(svc, d) for d in devices]
    try:
        assert isinstance(svc.broker.broker._subscriptions, _Subscriptions)
        for d in devices:  # downlink to each device, uplink to the gateway
            assert (await gw.command(d.serial, "snapshot", {"channel": 0}))["jpeg"]
        await eventually(lambda: gw.stats["handled.state"] >= 3)
    finally:
        for a in agents:
            await a.stop()
