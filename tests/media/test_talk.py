"""Talk-back through the media worker, over TCP: a websockets client plays the browser (PCM at
48 kHz), the device agent's real ``Speaker`` plays the doorbell (connects where it is told,
decodes G.711 with PyAV); what the doorbell heard is checked by its dominant frequency.
Refusals: no or a bad token, expired, used twice, another permission, revoked mid-talk, a
device that cannot talk or never connects, a forged device token."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import wave
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from faoyam.agent.speaker import Speaker
from faoyam.media import ChannelId
from faoyam.media.talk import G711Encoder, TalkClose, TalkRefused, TalkServer, decode_g711
from faoyam.media.tokens import mint

from .conftest import wait_for
from .test_live_ws import serve

KEY = b"talk-test-secret"
BELL = ChannelId("d" * 32, 0, "main")


def tone(freq: float, seconds: float, rate: int = 48000, amplitude: int = 12000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude).astype("<i2").tobytes()


def dominant(samples: np.ndarray, rate: int = 8000) -> float:
    x = samples.astype(float) * np.hanning(samples.size)
    return float(np.argmax(np.abs(np.fft.rfft(x))) * rate / samples.size)


class Doorbell:
    """``open_talk`` for the server: a real agent Speaker connects to the URL it is given."""

    def __init__(self, codec: str = "pcma", refuse: TalkRefused | None = None, connect: bool = True,
                 record_dir=None):
        self.speaker = Speaker(record_dir=record_dir)
        self.codec, self.refuse, self.connect = codec, refuse, connect
        self.asked: list[tuple[ChannelId, str, str]] = []
        self.closed: list[ChannelId] = []

    async def open_talk(self, channel: ChannelId, url: str, codec: str) -> dict:
        self.asked.append((channel, url, codec))
        if self.refuse is not None:
            raise self.refuse
        if self.connect:
            self.speaker.start(url, self.codec)
        return {"codec": self.codec}

    async def close_talk(self, channel: ChannelId) -> None:
        self.closed.append(channel)


@pytest_asyncio.fixture
async def talk_factory():
    running = []

    async def start(bell: Doorbell, **options):
        port_box = {}
        server = TalkServer(KEY, bell.open_talk, close_talk=bell.close_talk,
                            device_base_url=lambda: f"ws://127.0.0.1:{port_box['port']}", **options)
        http, task, port = await serve(server)
        port_box["port"] = port
        running.append((http, task, bell))
        return server, port

    yield start
    for http, task, bell in running:
        await bell.speaker.stop()
        http.should_exit = True
        await asyncio.wait_for(task, 15)


def url(port: int, token: str | None = None, **mint_args) -> str:
    mint_args.setdefault("permission", "talk")
    return f"ws://127.0.0.1:{port}/media/talk/{token or mint(KEY, BELL, 'user:u1', **mint_args)}"


async def talk(ws, pcm: bytes, chunk_s: float = 0.02, rate: int = 48000) -> None:
    step = int(chunk_s * rate) * 2
    for i in range(0, len(pcm), step):
        await ws.send(pcm[i:i + step])


async def closed_with(ws) -> int:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 15)
    return ws.close_code


def test_the_encoder_makes_8khz_g711_that_decodes_to_the_same_tone():
    for codec in ("pcma", "pcmu"):
        enc = G711Encoder(44100, codec)
        pcm = tone(1000, 1.0, rate=44100)
        out = b"".join(enc.encode(pcm[i:i + 1764]) for i in range(0, len(pcm), 1764))  # 20 ms chunks
        assert 7900 <= len(out) <= 8000  # one byte per 8 kHz sample (the resampler keeps a few)
        assert abs(dominant(decode_g711(out, codec)) - 1000) < 5


@pytest.mark.req("B4")
@pytest.mark.parametrize("codec", ["pcma", "pcmu"])
async def test_a_tone_sent_by_the_talker_is_heard_by_the_doorbell(talk_factory, codec, tmp_path):
    bell = Doorbell(codec, record_dir=tmp_path)
    server, port = await talk_factory(bell, max_buffer_s=5.0)
    async with connect(url(port)) as ws:
        await ws.send(json.dumps({"type": "start", "rate": 48000}))
        ready = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert ready == {"type": "ready", "codec": codec, "rate": 8000}
        (channel, device_url, offered), = bell.asked
        assert channel == BELL and offered == "pcma" and "/media/talk-device/" in device_url
        await talk(ws, tone(440, 1.5))
        await wait_for(lambda: bell.speaker.heard_seconds() >= 1.4, what="the doorbell heard 1.5 s")
        await ws.send(json.dumps({"type": "stop"}))
        assert await closed_with(ws) == TalkClose.ENDED
    assert abs(bell.speaker.dominant_frequency() - 440) < 5
    assert bell.speaker.rms() > 3000  # heard at about the volume sent (12000 peak ≈ 8500 rms)
    await wait_for(lambda: not bell.speaker.active, what="the doorbell hung up")
    assert bell.speaker.talks[-1].close_code == TalkClose.ENDED
    assert not server.sessions
    (recording,) = tmp_path.glob("talk-*.wav")  # what the simulated doorbell "played"
    with wave.open(str(recording)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    assert pcm.size >= 1.4 * 8000 and abs(dominant(pcm) - 440) < 5


async def test_refusals_before_anything_reaches_the_doorbell(talk_factory):
    bell = Doorbell()
    server, port = await talk_factory(bell, start_timeout=1.0)
    with pytest.raises(InvalidStatus):  # no token at all: no such route
        async with connect(f"ws://127.0.0.1:{port}/media/talk/"):
            pass
    cases = [
        (url(port, token="not-a-token"), TalkClose.BAD_TOKEN),
        (url(port, token=mint(b"another-deployment", BELL, "user:u1", permission="talk")), TalkClose.BAD_TOKEN),
        (url(port, now=0, ttl=60), TalkClose.EXPIRED),
        (url(port, permission="live"), TalkClose.FORBIDDEN),  # a viewer's token cannot talk
    ]
    for address, code in cases:
        async with connect(address) as ws:
            assert await closed_with(ws) == code, address
    once = url(port)
    async with connect(once) as ws:  # no start message within start_timeout
        assert await closed_with(ws) == TalkClose.BAD_REQUEST
    async with connect(once) as ws:  # the same token again
        assert await closed_with(ws) == TalkClose.EXPIRED
    async with connect(url(port)) as ws:
        await ws.send(json.dumps({"type": "start", "rate": 3}))
        assert await closed_with(ws) == TalkClose.BAD_REQUEST
    assert bell.asked == [] and bell.speaker.talks == []
    # the doorbell's own route wants a device token for an open session
    async with connect(f"ws://127.0.0.1:{port}/media/talk-device/{mint(KEY, BELL, 'talk:nope', permission='talk-device')}") as ws:
        assert await closed_with(ws) == TalkClose.EXPIRED
    async with connect(f"ws://127.0.0.1:{port}/media/talk-device/{mint(KEY, BELL, 'user:u1', permission='talk')}") as ws:
        assert await closed_with(ws) == TalkClose.BAD_TOKEN


async def test_a_device_that_cannot_talk_or_never_connects(talk_factory):
    bell = Doorbell(refuse=TalkRefused(TalkClose.NOT_SUPPORTED, "not a doorbell"))
    _, port = await talk_factory(bell)
    async with connect(url(port)) as ws:
        await ws.send(json.dumps({"type": "start", "rate": 48000}))
        assert await closed_with(ws) == TalkClose.NOT_SUPPORTED
    silent = Doorbell(connect=False)
    _, port = await talk_factory(silent, connect_timeout=0.5)
    async with connect(url(port)) as ws:
        await ws.send(json.dumps({"type": "start", "rate": 48000}))
        assert await closed_with(ws) == TalkClose.OFFLINE
    await wait_for(lambda: silent.closed == [BELL], what="stop_talk sent to the doorbell that never came")


async def test_revoking_the_talker_ends_the_talk_within_a_poll(talk_factory):
    revoked = asyncio.Event()

    async def is_revoked(grant) -> bool:
        return revoked.is_set()

    bell = Doorbell()
    server, port = await talk_factory(bell, revoked=is_revoked, poll_interval=0.1)
    async with connect(url(port)) as ws:
        await ws.send(json.dumps({"type": "start", "rate": 16000}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
        await talk(ws, tone(700, 0.5, rate=16000), rate=16000)
        await wait_for(lambda: bell.speaker.heard_seconds() >= 0.4, what="heard")
        revoked.set()
        assert await closed_with(ws) == TalkClose.FORBIDDEN
    await wait_for(lambda: not bell.speaker.active, what="the doorbell hung up")
    assert abs(bell.speaker.dominant_frequency() - 700) < 10


async def test_a_doorbell_that_reads_slowly_loses_old_audio_not_memory(talk_factory):
    bell = Doorbell()
    server, port = await talk_factory(bell, max_buffer_s=0.5)
    async with connect(url(port)) as ws:
        await ws.send(json.dumps({"type": "start", "rate": 8000}))
        await asyncio.wait_for(ws.recv(), 10)
        (session,) = server.sessions.values()
        for _ in range(50):  # while the doorbell's writer is not scheduled, 5 s arrive at once
            server._queue(session, b"\xd5" * 800)  # noqa: SLF001 - the bounded queue itself
        assert session.queued <= 0.5 * 8000 and session.dropped >= 4 * 8000


async def test_the_talk_benchmark_runs_at_a_small_size():
    """bench/bench_talk.py keeps working (the figures themselves are not asserted)."""
    path = Path(__file__).resolve().parents[2] / "bench" / "bench_talk.py"
    spec = importlib.util.spec_from_file_location("bench_talk", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    chunks = bench.tone_chunks(5, 16000)
    assert len(await bench.ours(chunks, 16000)) == 5 and len(await bench.baseline(chunks)) == 5
