"""Per-device credentials and ACLs: a device reaches only its own topics, on both brokers;
deleted devices lose their broker access at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import aiomqtt
import pytest

from faoyam.devices.gateway import protocol as p
from tests.gateway.conftest import bind, eventually, make_user, new_device, online


def _code(rc) -> int:
    return int(getattr(rc, "value", rc))


@pytest.mark.req("SEC1", "B6")
async def test_a_device_cannot_touch_another_devices_topics(svc):
    gw = svc.gateway
    port = svc.mqtt_port
    alice, mallory = await new_device(svc), await new_device(svc)
    a = await online(svc, alice)
    m = await online(svc, mallory)
    await m.stop()
    got: list[str] = []
    try:
        async with aiomqtt.Client("127.0.0.1", port, username=mallory.username, password=mallory.password,
                                  identifier=mallory.username) as c:
            # subscribing to the other device's commands, or to everyone's, is refused
            for flt in (f"faoyam/d/{alice.serial}/down/#", "faoyam/d/+/down/cmd", "faoyam/#", "#",
                        f"faoyam/d/{alice.serial}/up/#"):
                assert _code((await c.subscribe(flt, qos=1))[0]) >= 0x80, flt
            # its own topics are fine
            assert _code((await c.subscribe(f"faoyam/d/{mallory.serial}/down/#", qos=1))[0]) < 0x80
            # publishing as the other device goes nowhere: the gateway never sees it
            alarms_before = gw.stats["handled.alarm"]
            fake = p.envelope(channel=0, type="human", at=p.now_ms())
            await c.publish(p.up(alice.serial, p.ALARM), p.dumps(fake), qos=1)
            await c.publish(p.up(alice.serial, p.STATE), p.dumps({"v": 1, "online": False, "conn": a._conn}), qos=1)
            await c.publish(p.down(alice.serial, p.CMD), p.dumps({"v": 1, "id": "abcd", "name": "reboot"}), qos=1)

            async def listen():
                with contextlib.suppress(aiomqtt.MqttError):
                    async for msg in c.messages:
                        got.append(str(msg.topic))
            task = asyncio.create_task(listen())
            # commands to alice are delivered to alice only
            assert (await gw.command(alice.serial, "snapshot", {"channel": 0}))["jpeg"]
            await gw.command(alice.serial, "set_config", {"nightVision": "off"})
            task.cancel()
        # alice is still online (the forged will was not accepted) and got no forged command
        assert gw.is_connected(alice.serial)
        assert a.stats.commands == 2
        assert gw.stats["handled.alarm"] == alarms_before
        assert not [t for t in got if alice.serial in t]
    finally:
        await a.stop()


@pytest.mark.req("SEC1")
async def test_a_last_will_on_another_devices_topic_is_refused(svc):
    gw = svc.gateway
    port = svc.mqtt_port
    alice, mallory = await new_device(svc), await new_device(svc)
    a = await online(svc, alice)
    m = await online(svc, mallory)
    await m.stop()
    # the forged will names alice's current connection: if delivered, the gateway would believe it
    will = aiomqtt.Will(p.up(alice.serial, p.STATE), p.dumps({"v": 1, "online": False, "conn": a._conn}), qos=1)
    c = aiomqtt.Client("127.0.0.1", port, username=mallory.username, password=mallory.password,
                       identifier=mallory.username, will=will)
    try:
        await c.__aenter__()
    except aiomqtt.MqttError:
        pass  # the embedded broker refuses the connection outright
    else:  # Mosquitto accepts it; vanish without DISCONNECT so that the will would fire
        c._client.socket().shutdown(socket.SHUT_RDWR)  # noqa: SLF001
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(c._disconnected), 5)  # noqa: SLF001
    await asyncio.sleep(0.3)  # give a (wrongly) accepted will time to arrive; nothing to await
    assert gw.is_connected(alice.serial)
    await a.stop()


@pytest.mark.req("SEC1")
async def test_client_id_of_another_device_cannot_knock_it_off(svc):
    """Connecting with a victim's serial as client id but wrong (or other) credentials
    neither disconnects the victim nor touches its subscriptions."""
    gw = svc.gateway
    port = svc.mqtt_port
    alice, mallory = await new_device(svc), await new_device(svc)
    a = await online(svc, alice)
    m = await online(svc, mallory)
    await m.stop()
    for user, pw in ((alice.serial, "not-the-password"), (mallory.username, mallory.password)):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, username=user, password=pw, identifier=alice.serial):
                pass
    # alice still answers commands (her session and subscription are intact)
    assert gw.is_connected(alice.serial)
    assert (await gw.command(alice.serial, "set_config", {"motionDetect": True}))["config"]["motionDetect"] is True
    assert a.stats.connects == 1
    await a.stop()


@pytest.mark.req("B10")
async def test_deleting_a_device_revokes_its_broker_access(svc):
    from faoyam.devices import service

    gw = svc.gateway
    user = await make_user(svc)
    ident = await new_device(svc)
    device_id = await bind(svc, ident, user)
    a = await online(svc, ident)
    old = (ident.username, ident.password)
    await service.delete_device(svc, user, device_id)
    await gw.wait_until(lambda: not gw.is_connected(ident.serial), 10)
    # the old per-device credentials no longer sign in
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", svc.mqtt_port, username=old[0], password=old[1],
                                  identifier=old[0]):
            pass
    # the retained "online" is cleared: a new subscriber learns nothing about the device
    await eventually(lambda: not a.connected.is_set() or a.id.password != old[1], 10)
    await a.stop()
    assert (await service.credentials_revoked(svc, ident.serial)) is True
    assert json.dumps(gw.stats)  # counters stay serialisable for metrics


@pytest.mark.req("B17", "B10", "R3")
async def test_erasing_an_account_disconnects_its_devices_at_once(svc):
    """The erasure wipes the device credentials; the erasure hook also drops the live
    connection and the old credentials no longer sign in."""
    from faoyam.devices import service
    from faoyam.privacy.subjects import erase_subject, resolve_subject

    gw = svc.gateway
    user = await make_user(svc)
    ident = await new_device(svc)
    await bind(svc, ident, user)
    a = await online(svc, ident)
    old = (ident.username, ident.password)
    async with svc.db.session() as s:
        subject = await resolve_subject(s, user)
    await erase_subject(svc.db, svc.blobs, subject)
    assert not gw.is_connected(ident.serial)  # at once, not at the next reconnect
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", svc.mqtt_port, username=old[0], password=old[1],
                                  identifier=old[0]):
            pass
    await a.stop()
    assert (await service.credentials_revoked(svc, ident.serial)) is True
