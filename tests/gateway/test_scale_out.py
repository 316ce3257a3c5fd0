"""Several gateway processes on one Mosquitto: the uplink is a shared subscription, so
every alarm is handled exactly once; online state and command replies are where every
node sees them, so a command sent through one node is answered for a device another
node serves, and a web node without the uplink can send commands too."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from faoyam.core.context import Context
from faoyam.devices import commands, lifecycle
from faoyam.alarms.models import AlarmEvent as Alarm
from tests.gateway.conftest import agent as device_agent
from tests.gateway.conftest import bind, eventually, make_user, needs_mosquitto, new_device, options

pytestmark = [pytest.mark.mosquitto, needs_mosquitto]


async def _node(base: Context, *roles: str) -> Context:
    """Another process of the same deployment: same settings, its own engine and MQTT client."""
    ctx = Context.build(base.settings, roles=frozenset(roles))
    await lifecycle.start(ctx, options=options())
    return ctx


@pytest.mark.req("B11")
async def test_two_gateways_share_the_uplink_and_answer_each_others_commands(service_factory):
    a = await service_factory("mosquitto")
    b = await _node(a, "gateway")
    web = await _node(a, "web")
    agents: list = []
    try:
        gw_a, gw_b = a.gateway, b.gateway
        assert gw_a.o.share_group == gw_b.o.share_group == "faoyam"
        uid = await make_user(a)
        idents = [await new_device(a) for _ in range(6)]
        for ident in idents:
            await bind(a, ident, uid)
        for ident in idents:
            agents.append(device_agent(a, ident).start())
        await eventually(lambda: all(gw_a.is_connected(i.serial) or gw_b.is_connected(i.serial) for i in idents), 15)
        per_device = 5
        ids = set()
        for agent in agents:
            for _ in range(per_device):
                ids.add(await agent.raise_alarm(snapshot=False))
        total = per_device * len(agents)
        assert len(ids) == total and "" not in ids  # every alarm acknowledged with its own row
        handled_a, handled_b = gw_a.stats["handled.alarm"], gw_b.stats["handled.alarm"]
        assert handled_a + handled_b == total and handled_a and handled_b  # split, none twice
        async with a.db.session() as s:
            assert await s.scalar(select(func.count()).select_from(Alarm)) == total

        # A device node B brought online (A never saw its announcement) ...
        only_b = [i for i in idents if gw_b.is_connected(i.serial) and not gw_a.is_connected(i.serial)]
        assert only_b, "the broker gave every announcement to one node"
        serial = only_b[0].serial
        # ... is online for every node, and a command sent through A is answered.
        assert await gw_a.is_online(serial) and await web.gateway.is_online(serial)
        unmatched_b = gw_b.stats["unmatched-reply"]
        assert (await gw_a.command(serial, "snapshot", {"channel": 0}))["jpeg"]
        await eventually(lambda: gw_b.stats["unmatched-reply"] > unmatched_b)  # B saw the reply, left it to A
        # The web node has no uplink: it handles nothing, yet its commands are answered.
        assert (await commands.send(web, serial, "set_config", {"motionDetect": False}))["config"]["motionDetect"] is False
        assert web.gateway.stats["handled.alarm"] == 0 and not web.gateway.online()
    finally:
        for agent in agents:
            await agent.stop()
        for node in (web, b):
            await lifecycle.stop(node)
            await node.close()
