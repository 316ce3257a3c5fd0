"""Recording events across processes: published on the service's MQTT broker
(``faoyam/svc/record-event``), received by the media worker's recorder. The whole app in
this process with an embedded broker: the message really goes through the broker."""

from __future__ import annotations

import time

import pytest

from faoyam.media.recorder import recorder_of
from faoyam.media.testfeed import feed
from faoyam.recordings import events, service
from tests.recordings.conftest import make_owned, wait_for


@pytest.fixture
def settings(settings):
    settings.mqtt_mode, settings.mqtt_port = "embedded", 0
    return settings


def test_the_message_is_checked():
    ev = events.RecordEvent("a" * 32, 1, service.MOTION, 1764600000.5)
    assert events.decode(events.encode(ev)) == ev
    for bad in (b"", b"[]", b'{"device_id": "x", "channel": 0, "flags": 1, "at": 0}',
                events.encode(events.RecordEvent("a" * 32, 300, 1, 0)), events.encode(events.RecordEvent("a" * 32, 0, 0, 0))):
        assert events.decode(bad) is None


@pytest.mark.req("B5")
async def test_an_event_published_on_the_broker_starts_an_event_recording(ctx, app, clip):
    rec = recorder_of(ctx)
    assert rec is not None and ctx.gateway is not None
    owned = await make_owned(ctx)
    await service.set_channel_settings(ctx.db, owned.device_id, 0,
                                       service.ChannelSettings(mode="event", pre_roll_s=1, post_roll_s=1))
    await rec.sync()
    ch = rec.channels[owned.channel()]
    feed(rec.hubs.get(owned.channel()), clip, loops=1)
    await wait_for(lambda: ch.status == "armed: waiting for an event", what="armed")
    await wait_for(lambda: events.TOPIC in ctx.gateway._listeners and ctx.gateway._client is not None,
                   what="subscribed")
    # A malformed message on the topic is dropped; the receive loop goes on.
    await ctx.gateway.publish_raw(events.TOPIC, b'{"nonsense": true}')
    await events.publish_event(ctx, owned.device_id, 0, service.ALARM, at=time.time())
    await wait_for(lambda: ch.event_until is not None, what="the event through the broker")
    assert ch.event_flags == service.ALARM
    feed(rec.hubs.get(owned.channel()), clip, loops=1, shift_ms=2000)
    await wait_for(lambda: ch.segments_closed == 1 and ch.pending == 0, what="the event recorded")
    (seg,) = await service.segments(ctx.db, owned.device_id, 0)
    assert seg.events == service.ALARM and seg.frames > 0
