"""Talk-back benchmark: latency from a talker's chunk to the doorbell, and the encoder's cost.

    python bench/bench_talk.py                 # 200 chunks of 20 ms at 48 kHz
    python bench/bench_talk.py --chunks 500 --rate 44100

One process, one event loop (client, server and doorbell on loopback, ``time.perf_counter``
is one clock):

* ours — :class:`faoyam.media.talk.TalkServer` under uvicorn: token check, PyAV resample
  to 8 kHz + G.711 in a thread per chunk, the doorbell's bounded queue; the doorbell is the
  agent's :class:`~faoyam.agent.speaker.Speaker` (PyAV decode);
* baseline — a bare ``websockets`` relay: the talker's bytes forwarded as they are to a
  device connection that only counts them (no token, no resampling, no encoding, no decode).

Figures, each with its ratio to the baseline:
1. latency chunk sent → chunk received by the doorbell, p50 / p99 (one chunk in flight at a
   time, so it is the path's latency, not a queue's);
2. encoder CPU: CPU seconds to turn one minute of talker audio into G.711 (``G711Encoder``
   alone, 20 ms chunks), against copying the same bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import uvicorn
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve as ws_serve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from faoyam.agent.speaker import Speaker  # noqa: E402
from faoyam.media import ChannelId  # noqa: E402
from faoyam.media.talk import G711Encoder, TalkServer  # noqa: E402
from faoyam.media.tokens import mint  # noqa: E402

KEY = b"bench-talk"
BELL = ChannelId("b" * 32, 0, "main")


def tone_chunks(n: int, rate: int) -> list[bytes]:
    size = rate // 50
    t = np.arange(n * size) / rate
    pcm = (np.sin(2 * np.pi * 440 * t) * 12000).astype("<i2")
    return [pcm[i * size:(i + 1) * size].tobytes() for i in range(n)]


async def ours(chunks: list[bytes], rate: int) -> list[float]:
    speaker = Speaker()
    box: dict = {}

    async def open_talk(channel, url, codec):
        speaker.start(url, "pcma")
        return {"codec": "pcma"}

    server = TalkServer(KEY, open_talk, device_base_url=lambda: f"ws://127.0.0.1:{box['port']}")
    http = uvicorn.Server(uvicorn.Config(server.app, host="127.0.0.1", port=0, log_level="warning",
                                         lifespan="on", ws="websockets-sansio"))
    task = asyncio.create_task(http.serve())
    while not http.started:
        await asyncio.sleep(0.01)
    box["port"] = http.servers[0].sockets[0].getsockname()[1]
    token = mint(KEY, BELL, "user:bench", permission="talk")
    lat = []
    async with connect(f"ws://127.0.0.1:{box['port']}/media/talk/{token}") as ws:
        await ws.send(json.dumps({"type": "start", "rate": rate}))
        await ws.recv()
        for chunk in chunks:
            before = speaker._kept  # noqa: SLF001 - samples heard so far
            t0 = time.perf_counter()
            await ws.send(chunk)
            while speaker._kept == before:  # noqa: SLF001
                await asyncio.sleep(0)
            lat.append(time.perf_counter() - t0)
    await speaker.stop()
    http.should_exit = True
    await task
    return lat


async def baseline(chunks: list[bytes]) -> list[float]:
    device_ws: list = []
    received = asyncio.Event()
    count = {"n": 0}

    async def handler(ws):
        if ws.request.path == "/device":
            device_ws.append(ws)
            await ws.wait_closed()
            return
        async for msg in ws:
            await device_ws[0].send(msg)

    async with ws_serve(handler, "127.0.0.1", 0) as srv:
        port = srv.sockets[0].getsockname()[1] if hasattr(srv, "sockets") else list(srv.server.sockets)[0].getsockname()[1]

        async def device():
            async with connect(f"ws://127.0.0.1:{port}/device") as d:
                async for _ in d:
                    count["n"] += 1
                    received.set()

        dev = asyncio.create_task(device())
        while not device_ws:
            await asyncio.sleep(0.01)
        lat = []
        async with connect(f"ws://127.0.0.1:{port}/talker") as ws:
            for chunk in chunks:
                before = count["n"]
                t0 = time.perf_counter()
                await ws.send(chunk)
                while count["n"] == before:
                    await asyncio.sleep(0)
                lat.append(time.perf_counter() - t0)
        dev.cancel()
    return lat


def encoder_cpu(rate: int) -> tuple[float, float]:
    chunks = tone_chunks(50 * 60, rate)  # one minute
    enc = G711Encoder(rate)
    t0 = time.process_time()
    for c in chunks:
        enc.encode(c)
    ours_s = time.process_time() - t0
    t0 = time.process_time()
    for c in chunks:
        bytes(bytearray(c))
    return ours_s, time.process_time() - t0


def pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--rate", type=int, default=48000)
    args = ap.parse_args()
    chunks = tone_chunks(args.chunks, args.rate)
    a = await ours(chunks, args.rate)
    b = await baseline(chunks)
    print(f"talk-back latency, {args.chunks} chunks of 20 ms at {args.rate} Hz (chunk sent → heard by the doorbell)")
    for name, f in (("p50", lambda x: statistics.median(x)), ("p99", lambda x: pct(x, 0.99))):
        print(f"  {name}: ours {f(a) * 1000:.2f} ms, bare relay {f(b) * 1000:.2f} ms, ratio {f(a) / f(b):.2f}")
    o, base = encoder_cpu(args.rate)
    print(f"encoder: {o:.3f} CPU-s per talk-minute (PyAV resample + G.711), copying the bytes {base:.4f} CPU-s, "
          f"ratio {o / max(base, 1e-6):.0f}; {o / 60 * 100:.2f} % of a core per talker")


if __name__ == "__main__":
    asyncio.run(main())
