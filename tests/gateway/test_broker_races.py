"""The embedded broker keeps delivering while clients subscribe and unsubscribe.

Background: amqtt's broadcast loop walks the live subscription dict across awaits; a
subscribe in between raised "dictionary changed size during iteration" and lost the
message (seen once in `faoyam demo` logs when a fleet reconnected). ``_Broker`` now
iterates over a snapshot. This test guards delivery under subscription churn; it did not
reproduce that exact interleaving on demand, so it is a guard, not a reproduction.
"""

import asyncio

import aiomqtt
import pytest

from faoyam.devices.gateway.embedded import EmbeddedBroker, _Broker


async def _never(user, pw):
    return None


@pytest.mark.req("B6")
async def test_no_message_is_lost_while_many_clients_subscribe(monkeypatch):
    # The device topic plugin may wait on the registry (a database read) the first time
    # it sees a session; model that with a yield, so subscribes interleave with broadcasts.
    original = _Broker._topic_filtering

    async def suspending(self, *a, **kw):
        await asyncio.sleep(0)
        return await original(self, *a, **kw)

    monkeypatch.setattr(_Broker, "_topic_filtering", suspending)
    broker = EmbeddedBroker("127.0.0.1", 0, _never)
    await broker.start()
    user, pw = broker.service_user, broker.service_password
    n_msgs, n_subscribers = 200, 40
    try:
        async with aiomqtt.Client("127.0.0.1", broker.port, username=user, password=pw, identifier="watcher") as watcher:
            await watcher.subscribe("faoyam/race/#", qos=1)

            done = asyncio.Event()
            ready = asyncio.Barrier(n_subscribers + 1)

            async def churn(i: int):
                async with aiomqtt.Client("127.0.0.1", broker.port, username=user, password=pw, identifier=f"c{i}") as c:
                    await ready.wait()
                    j = 0
                    while not done.is_set():  # subscribe and unsubscribe while messages flow
                        await c.subscribe(f"faoyam/other/{i}/{j}")
                        await c.unsubscribe(f"faoyam/other/{i}/{j}")
                        j += 1

            async def publish():
                async with aiomqtt.Client("127.0.0.1", broker.port, username=user, password=pw, identifier="pub") as pub:
                    await ready.wait()
                    for k in range(n_msgs):
                        await pub.publish(f"faoyam/race/{k}", b"x", qos=1)
                done.set()

            async def collect():
                got = set()
                async for m in watcher.messages:
                    got.add(str(m.topic))
                    if len(got) == n_msgs:
                        return got

            collector = asyncio.create_task(collect())
            await asyncio.gather(publish(), *(churn(i) for i in range(n_subscribers)))
            try:
                got = await asyncio.wait_for(collector, 10)
            except TimeoutError:
                got = None
        assert got is not None, "messages were lost while clients subscribed"
        assert got == {f"faoyam/race/{k}" for k in range(n_msgs)}
    finally:
        await broker.stop()
