"""The stream hub without the network: late joiners, slow and stuck viewers, codec changes,
publisher hand-over and the owner's idle/demand callbacks."""

from __future__ import annotations

import asyncio

import pytest

from faoyam.media import ChannelId, StreamHub, StreamHubs
from faoyam.media.tracks import aac_track, h264_track, h265_track

from .conftest import probe, strictly_increasing


def feed(hub: StreamHub, clip, *, loops: int = 1, batch: int = 3, audio: bool = False, shift_ms: int = 0):
    """Push a clip into a hub as an ingest session would: configure, samples, flush per batch."""
    video = (h264_track if clip.codec == "avc1" else h265_track)(clip.config)
    tracks = [video] + ([aac_track(clip.audio_config)] if audio else [])
    hub.configure(tracks)
    n = 0
    for kind, p in clip.loop(loops):
        if kind == "audio":
            if not audio:
                continue
            hub.add(1, (p.dts + shift_ms) * clip.audio_rate // 1000, 0, True, p.data)
        else:
            hub.add(0, (p.dts + shift_ms) * 90, p.cts * 90, p.keyframe, p.data)
        n += 1
        if n % batch == 0:
            hub.flush()
    hub.flush()


def video_frames_since_last_keyframe(clip):
    last_key = max(i for i, p in enumerate(clip.packets) if p.keyframe)
    return len(clip.packets) - last_key


@pytest.mark.req("B4")
async def test_a_late_joiner_gets_init_and_the_current_gop_starting_with_a_keyframe(h264_clip):
    hub = StreamHub(ChannelId("cam"))
    feed(hub, h264_clip)
    sub = hub.subscribe()
    chunks = await sub.read()
    assert chunks[0] == hub.muxer.init and chunks[0][4:8] == b"ftyp"
    got = probe(b"".join(chunks))
    assert got.video[0][2], "the first frame a late joiner gets is a keyframe"
    assert len(got.video) == got.decoded == video_frames_since_last_keyframe(h264_clip)


async def test_a_viewer_joining_before_the_first_keyframe_waits_for_it(h264_clip):
    hub = StreamHub(ChannelId("cam"))
    sub = hub.subscribe()  # nothing published yet
    feed(hub, h264_clip)
    got = probe(b"".join(await sub.read()))
    assert len(got.video) == len(h264_clip.packets)
    assert strictly_increasing([dts for dts, _, _ in got.video])


@pytest.mark.req("B4")
async def test_a_viewer_that_never_reads_stays_bounded_and_is_dropped_while_others_get_everything(h264_clip):
    hub = StreamHub(ChannelId("cam"))
    stuck = hub.subscribe(queue_bytes=300_000, max_lags=2)
    reader = hub.subscribe()
    received = []
    peak = 0
    for _ in range(12):  # 48 s of video
        feed(hub, h264_clip, shift_ms=0)
        peak = max(peak, stuck.queued_bytes)
        received.extend(await reader.read())  # the good viewer keeps up
    biggest_fragment = max(len(f.data) for f in hub.current_gop)
    assert peak <= 300_000 + biggest_fragment
    assert stuck.closed_reason is not None and "too slow" in stuck.closed_reason
    assert stuck not in hub.subscribers and stuck.queued_bytes == 0
    got = probe(b"".join(received), decode=False)
    assert len(got.video) == 12 * len(h264_clip.packets)
    assert strictly_increasing([dts for dts, _, _ in got.video])


async def test_a_slow_viewer_skips_to_the_next_keyframe_and_still_decodes(h264_clip):
    hub = StreamHub(ChannelId("cam"))
    hub.configure([h264_track(h264_clip.config)])
    gop = sum(len(p.data) for p in h264_clip.packets) // sum(p.keyframe for p in h264_clip.packets)
    slow = hub.subscribe(queue_bytes=int(gop * 1.5), max_lags=100)
    received, sent = [], 0
    for kind, p in h264_clip.loop(6):
        if kind != "video":
            continue
        hub.add(0, p.dts * 90, p.cts * 90, p.keyframe, p.data)
        sent += 1
        if sent % 3 == 0:
            hub.flush()
        if sent % 90 == 0:  # reads every 1.8 GOPs: more than its queue holds
            received.extend(slow.take())
    assert slow.lags >= 1 and slow.closed_reason is None
    got = probe(b"".join(received))
    assert got.video[0][2]
    assert 0 < len(got.video) < sent
    assert got.decoded == len(got.video), "every frame after a skip must still decode"
    assert strictly_increasing([dts for dts, _, _ in got.video])


async def test_a_codec_change_sends_a_new_init_segment(h264_clip, h265_clip):
    hub = StreamHub(ChannelId("cam"))
    sub = hub.subscribe()
    feed(hub, h264_clip)
    first = await sub.read()
    feed(hub, h265_clip)
    second = await sub.read()
    assert second[0] == hub.muxer.init and second[0] != first[0]
    assert hub.inits_out == 2
    got = probe(b"".join(second))
    assert got.streams["video"][0] == "hevc" and got.video[0][2]
    assert len(got.video) == len(h265_clip.packets)
    late = hub.subscribe()
    assert (await late.read())[0] == hub.muxer.init


@pytest.mark.req("B4", "B5")
async def test_what_was_queued_before_a_codec_change_is_still_delivered(h264_clip, h265_clip):
    """The recorder reads after the change: the old stream's last fragments come first, then
    the new init and the new stream — nothing is dropped at the switch."""
    hub = StreamHub(ChannelId("cam"))
    sub = hub.subscribe()
    feed(hub, h264_clip)
    feed(hub, h265_clip)  # nothing read in between
    chunks = await sub.read()
    inits = [i for i, c in enumerate(chunks) if c[4:8] == b"ftyp"]
    assert len(inits) == 2 and inits[0] == 0
    old, new = probe(b"".join(chunks[:inits[1]])), probe(b"".join(chunks[inits[1]:]))
    assert old.streams["video"][0] == "h264" and len(old.video) == len(h264_clip.packets)
    assert new.streams["video"][0] == "hevc" and len(new.video) == len(h265_clip.packets)


async def test_a_lag_after_a_codec_change_keeps_the_new_init(h264_clip, h265_clip):
    hub = StreamHub(ChannelId("cam"), queue_bytes=1)  # every fragment overflows: a lag each time
    sub = hub.subscribe(max_lags=1_000_000)
    feed(hub, h264_clip)
    feed(hub, h265_clip)
    chunks = await sub.read()
    assert chunks[0] == hub.muxer.init, "what follows a lag still starts with the stream's init"
    assert probe(b"".join(chunks)).streams["video"][0] == "hevc"


async def test_the_owner_hears_when_the_first_viewer_comes_and_the_last_one_goes():
    events = []
    hubs = StreamHubs(on_idle=lambda s: events.append(("idle", s)), on_demand=lambda s: events.append(("demand", s)))
    channel = ChannelId("cam", 1)
    a = hubs.hub(channel).subscribe()
    b = hubs.hub(channel).subscribe()
    a.close()
    assert events == [("demand", channel)]
    b.close()
    assert events == [("demand", channel), ("idle", channel)]
    assert hubs.get(channel) is None, "a hub with no publisher and no viewer is dropped"


async def test_a_closed_subscription_wakes_its_reader():
    hub = StreamHub(ChannelId("cam"))
    sub = hub.subscribe()
    reading = asyncio.create_task(sub.read())
    await asyncio.sleep(0)
    sub.close("revoked")
    assert await asyncio.wait_for(reading, 2) == []
    assert sub.closed_reason == "revoked"


class FakePublisher:
    def __init__(self):
        self.closed = None

    def close(self, reason):
        self.closed = reason


def test_a_new_publisher_replaces_the_old_connection():
    hub = StreamHub(ChannelId("cam"))
    old, new = FakePublisher(), FakePublisher()
    hub.attach(old)
    hub.attach(new)
    assert old.closed and "replaced" in old.closed
    assert hub.publisher is new and new.closed is None
    hub.detach(old)  # the old connection's late goodbye changes nothing
    assert hub.publisher is new
