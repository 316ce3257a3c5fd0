"""The media worker's motion detection: settings → detectors → one alarm per episode."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from faoyam.detection import service
from faoyam.devices import service as devices
from faoyam.media import motion_worker
from faoyam.media.hub import StreamHubs
from faoyam.media.ids import ChannelId
from faoyam.media.motion_worker import MotionWorker, alarm_sink
from faoyam.media.testfeed import feed
from tests.detection.conftest import MOTION, wait_for
from tests.devices.conftest import owned as add_device
from tests.devices.conftest import person
from tests.recordings.conftest import Owned, make_owned


async def _worker(ctx, raise_alarm=motion_worker.devices_alarm):
    demand: list = []
    hubs = StreamHubs(on_demand=demand.append)
    worker = MotionWorker(hubs, lambda: service.enabled_channels(ctx.db), alarm_sink(ctx, raise_alarm), batch_s=0)
    return worker, hubs, demand


@pytest.mark.req("B11")
async def test_episodes_become_device_alarms_with_their_snapshot(ctx, client, clip):
    owner = await person(ctx)  # a device added the real way: its alarms are found by serial
    owned = Owned(owner.user_id, (await add_device(ctx, client, owner))[0])
    await service.store_detection(ctx.db, owned.device_id, 0, service.ChannelDetection(enabled=True))
    worker, hubs, demand = await _worker(ctx)
    try:
        assert await worker.sync() == {(owned.device_id, 0)}
        channel = ChannelId(owned.device_id, 0, "main")
        assert demand == [channel]  # detection makes the device push its stream
        det, _ = worker.detectors[(owned.device_id, 0)]
        assert det.mode == "keyframes"
        feed(hubs.hub(channel), clip, loops=1, audio=False)
        await wait_for(lambda: det.events >= len(MOTION) - 1, what="episodes reported")
    finally:
        await worker.close()  # reports the episode in progress
    alarms = await devices.list_alarms(ctx, owned.user_id, owned.device_id)
    assert len(alarms) == len(MOTION)
    assert {a.type for a in alarms} == {"videoMotion"} and all(a.has_snapshot and a.channel == 0 for a in alarms)
    jpeg = await devices.alarm_snapshot(ctx, owned.user_id, owned.device_id, alarms[0].id)
    assert Image.open(io.BytesIO(jpeg)).format == "JPEG"


@pytest.mark.req("B11")
async def test_the_callback_is_injectable_and_settings_changes_are_followed(ctx, clip):
    owned = await make_owned(ctx)
    raised = []

    async def raise_alarm(ctx_, **kw):
        raised.append(kw)

    key = (owned.device_id, 0)
    await service.store_detection(ctx.db, *key, service.ChannelDetection(enabled=True, stream="sub"))
    worker, hubs, demand = await _worker(ctx, raise_alarm)
    try:
        await worker.sync()
        det, _ = worker.detectors[key]
        assert det.mode == "frames" and demand == [ChannelId(owned.device_id, 0, "sub")]
        # Retuned in place ...
        await service.store_detection(ctx.db, *key, service.ChannelDetection(True, 80, [0xFFFF] * 9, "sub"))
        await worker.sync()
        assert worker.detectors[key][0] is det and det.analyzer.sensitivity == 80
        # ... replaced for another stream ...
        await service.store_detection(ctx.db, *key, service.ChannelDetection(enabled=True, stream="main"))
        await worker.sync()
        det = worker.detectors[key][0]
        assert det.mode == "keyframes"
        feed(hubs.hub(ChannelId(owned.device_id, 0, "main")), clip, loops=1, audio=False)
        await wait_for(lambda: len(raised) >= len(MOTION) - 1, what="episodes raised")
        # ... and stopped when switched off: the hub has no consumer left.
        await service.store_detection(ctx.db, *key, service.ChannelDetection(enabled=False))
        assert await worker.sync() == set() and worker.detectors == {}
        assert hubs.get(ChannelId(owned.device_id, 0, "main")) is None or \
            not hubs.get(ChannelId(owned.device_id, 0, "main")).subscribers
    finally:
        await worker.close()
    assert len(raised) == len(MOTION)
    assert all(r["kind"] == "videoMotion" and r["source"] == "server" and r["channel"] == 0
               and r["device_id"] == owned.device_id and r["snapshot"][:2] == b"\xff\xd8" for r in raised)


@pytest.mark.req("B11", "B10")
async def test_settings_go_with_the_device(ctx):
    owned = await make_owned(ctx)
    await service.store_detection(ctx.db, owned.device_id, 0, service.ChannelDetection(enabled=True))
    await devices.delete_device(ctx, owned.user_id, owned.device_id)
    assert await service.enabled_channels(ctx.db) == {}


async def test_the_media_role_runs_the_worker(ctx, app):
    assert motion_worker.worker_of(ctx) is not None


@pytest.mark.req("B11")
async def test_a_detector_stopped_by_an_error_is_started_again(ctx):
    owned = await make_owned(ctx)
    key = (owned.device_id, 0)
    await service.store_detection(ctx.db, *key, service.ChannelDetection(enabled=True))
    worker, hubs, _ = await _worker(ctx)
    try:
        await worker.sync()
        det = worker.detectors[key][0]
        det.task.cancel()  # as if an error had ended it
        await wait_for(lambda: det.task.done(), what="the detector ended")
        await worker.sync()
        assert worker.detectors[key][0] is not det and not worker.detectors[key][0].task.done()
    finally:
        await worker.close()
