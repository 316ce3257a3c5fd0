"""Talk-back through every real part but the browser: the media worker's talk endpoints
composed with the devices domain (``media.talk.talk_server``), the MQTT gateway and broker
(embedded and Mosquitto), and a simulated doorbell (``DeviceAgent``) that gets ``start_talk``,
connects to the worker and records what it hears. A synthetic 440 Hz tone goes in as a
browser would send it; the doorbell must hear 440 Hz. Refusals: a camera that is not a
doorbell, an invitee whose share lacks ``control``, a doorbell that is offline."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect

from faoyam.devices.models import Share
from faoyam.media import ChannelId
from faoyam.media import lifecycle as media
from faoyam.media.grants import user_grant
from faoyam.media.talk import TalkClose, talk_server
from faoyam.media.tokens import mint
from tests.gateway.conftest import (  # noqa: F401 - fixtures
    bind,
    broker,
    eventually,
    make_user,
    new_device,
    online,
    service_factory,
    svc,
)

from .test_live_ws import serve
from .test_talk import closed_with, talk, tone


async def accepted_share(ctx, device_id: str, invitee: str, permissions: list[str]) -> str:
    async with ctx.db.transaction() as s:
        share = Share(device_id=device_id, invitee_id=invitee, invited_via="email", permissions=permissions,
                      status="accepted")
        s.add(share)
    return share.id


async def set_permissions(ctx, share_id: str, permissions: list[str]) -> None:
    async with ctx.db.transaction() as s:
        (await s.get(Share, share_id)).permissions = permissions


@pytest.fixture
async def worker(svc):
    box = {}
    server = talk_server(svc, lambda: f"ws://127.0.0.1:{box['port']}", poll_interval=0.1, connect_timeout=10)
    http, task, box["port"] = await serve(server)
    yield server, box["port"]
    http.should_exit = True
    await asyncio.wait_for(task, 15)


def talk_url(ctx, port: int, device_id: str, user_id: str) -> str:
    token = mint(ctx.key, ChannelId(device_id, 0, "main"), user_grant(user_id), permission="talk")
    return f"ws://127.0.0.1:{port}/media/talk/{token}"


@pytest.mark.req("B4")
async def test_the_simulated_doorbell_hears_the_tone_sent_through_the_talk_websocket(svc, worker):
    server, port = worker
    ident = await new_device(svc, "doorbell")
    bell = await online(svc, ident)
    try:
        owner = await make_user(svc)
        dev = await bind(svc, ident, owner)
        async with connect(talk_url(svc, port, dev, owner)) as ws:
            await ws.send(json.dumps({"type": "start", "rate": 48000}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 15)) == {"type": "ready", "codec": "pcma", "rate": 8000}
            await talk(ws, tone(440, 1.0))
            await eventually(lambda: bell.speaker.heard_seconds() >= 0.95, 10)
        await eventually(lambda: not bell.speaker.active, 10)
        assert abs(bell.speaker.dominant_frequency() - 440) < 5
        (heard,) = bell.speaker.talks
        assert heard.codec == "pcma" and heard.bytes >= 7600 and heard.close_code == TalkClose.ENDED
    finally:
        await bell.stop()


async def test_a_camera_is_not_a_doorbell_and_an_offline_doorbell_does_not_answer(svc, worker):
    _, port = worker
    owner = await make_user(svc)
    cam_ident = await new_device(svc, "camera")  # reports AudioTalk, but it is no doorbell
    cam = await online(svc, cam_ident)
    try:
        cam_id = await bind(svc, cam_ident, owner)
        async with connect(talk_url(svc, port, cam_id, owner)) as ws:
            await ws.send(json.dumps({"type": "start", "rate": 48000}))
            assert await closed_with(ws) == TalkClose.NOT_SUPPORTED
        assert cam.speaker.talks == []
    finally:
        await cam.stop()
    bell_ident = await new_device(svc, "doorbell")
    bell = await online(svc, bell_ident)
    bell_id = await bind(svc, bell_ident, owner)
    await bell.stop()
    await eventually(lambda: not svc.gateway.is_connected(bell_ident.serial), 10)
    async with connect(talk_url(svc, port, bell_id, owner)) as ws:
        await ws.send(json.dumps({"type": "start", "rate": 48000}))
        assert await closed_with(ws) == TalkClose.OFFLINE


async def test_an_invitee_needs_control_to_talk_and_loses_it_mid_talk(svc, worker):
    _, port = worker
    ident = await new_device(svc, "doorbell")
    bell = await online(svc, ident)
    try:
        owner, friend = await make_user(svc), await make_user(svc)
        dev = await bind(svc, ident, owner)
        share = await accepted_share(svc, dev, friend, ["live"])
        async with connect(talk_url(svc, port, dev, friend)) as ws:  # live only: refused at once
            assert await closed_with(ws) == TalkClose.FORBIDDEN
        await set_permissions(svc, share, ["live", "control"])
        async with connect(talk_url(svc, port, dev, friend)) as ws:
            await ws.send(json.dumps({"type": "start", "rate": 48000}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 15))["type"] == "ready"
            await talk(ws, tone(600, 0.3))
            await set_permissions(svc, share, ["live"])  # the owner takes control away
            assert await closed_with(ws) == TalkClose.FORBIDDEN
        await eventually(lambda: not bell.speaker.active, 10)
    finally:
        await bell.stop()


@pytest.mark.req("B4")
async def test_the_media_worker_serves_talk_back_beside_live_view(svc):
    """The media role as ``faoyam serve`` starts it (``media.lifecycle``): the talk routes are
    on its HTTP port and doorbells are told to connect there."""
    await media.start(svc)
    ident = await new_device(svc, "doorbell")
    bell = await online(svc, ident)
    try:
        owner = await make_user(svc)
        dev = await bind(svc, ident, owner)
        async with connect(talk_url(svc, svc.settings.media_http_port, dev, owner)) as ws:
            await ws.send(json.dumps({"type": "start", "rate": 16000}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 15))["type"] == "ready"
            await talk(ws, tone(880, 0.6, rate=16000), rate=16000)
            await eventually(lambda: bell.speaker.heard_seconds() >= 0.55, 10)
        assert abs(bell.speaker.dominant_frequency() - 880) < 8
        assert bell.speaker.talks[0].url_host == f"127.0.0.1:{svc.settings.media_http_port}"
    finally:
        await bell.stop()
        await media.stop(svc)
