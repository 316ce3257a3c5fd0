"""LL-HLS latency: a frame handed to the hub → the part holding it available to an HLS client,
against a bare hub subscription reader (the WebSocket path's floor) in the same run.

    python bench/bench_hls.py                   # 20 s, 25 fps 640×360, GOP 2 s, parts of 0.3 s
    python bench/bench_hls.py --seconds 60 --part-target 0.5

One process: a hub fed at real-time rate (one frame per 40 ms tick, flushed at once, as the
ingest does), the HLS routes served by uvicorn on a free port, and three readers:

* **subscription** — ``hub.subscribe()`` read in a loop: the time a fragment reaches a
  consumer on the same event loop (what the WebSocket viewer gets before its network write);
* **LL-HLS preload hint** — an HTTP client that always asks for the hinted next part
  (``part/M.P.m4s``; held by the server until it exists), as Safari and hls.js do;
* **LL-HLS blocking reload** — an HTTP client that asks for
  ``playlist.m3u8?_HLS_msn=M&_HLS_part=P`` and counts a part available when the playlist
  listing it arrives.

For every frame: latency = time its reader had it − time it was handed to the hub. A frame
waits for its part to fill, so LL-HLS latency is about half a part plus the HTTP round trip;
medians and 99th percentiles are printed with their ratio to the subscription reader's.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from faoyam.media import ChannelId, StreamHubs  # noqa: E402
from faoyam.media.fmp4_parse import is_init, parse_fragment  # noqa: E402
from faoyam.media.hls import HlsOutputs  # noqa: E402
from faoyam.media.hls_routes import hls_app  # noqa: E402
from faoyam.media.testvideo import cached_clip  # noqa: E402
from tests.media.clipfeed import ClipFeeder  # noqa: E402

CAM = ChannelId("bench")
TOKEN = "bench-token"
WINDOW = {"end": float("inf")}  # frames handed over after this (the final wake-up burst) are not counted


def video_dts(data: bytes, tracks) -> list[int]:
    out = []
    for run in parse_fragment(data, tracks):
        if run.video:
            dts = run.base_dts
            for duration in run.durations:
                out.append(dts)
                dts += duration
    return out


def record(latencies: list[float], feeder: ClipFeeder, dts_list: list[int], now: float) -> None:
    for dts in dts_list:
        sent = feeder.sent_at.get(dts)
        if sent is not None and sent < WINDOW["end"]:
            latencies.append(now - sent)


async def subscription_reader(hub, feeder, latencies, stop):
    sub = hub.subscribe()
    while not stop.is_set():
        for chunk in await sub.read():
            if not is_init(chunk):
                record(latencies, feeder, video_dts(chunk, sub.tracks), time.monotonic())
    sub.close()


async def preload_hint_reader(client, base, feeder, tracks, latencies, stop, first_hint):
    msn, part = first_hint
    while not stop.is_set():
        response = await client.get(f"{base}/part/{msn}.{part}.m4s")
        now = time.monotonic()
        if response.status_code == 404:  # that segment ended: its successor's first part is next
            msn, part = msn + 1, 0
            continue
        response.raise_for_status()
        record(latencies, feeder, video_dts(response.content, tracks()), now)
        part += 1


async def blocking_reload_reader(client, base, feeder, segmenter, latencies, stop, first_hint):
    msn, part = first_hint
    while not stop.is_set():
        response = await client.get(f"{base}/playlist.m3u8", params={"_HLS_msn": msn, "_HLS_part": part})
        now = time.monotonic()
        response.raise_for_status()
        # every part now listed that we had not seen: its frames became available now
        while True:
            segment = segmenter.segment(msn)
            if segment is None or part >= len(segment.parts):
                if segment is not None and segment.complete:
                    msn, part = msn + 1, 0
                    continue
                break
            record(latencies, feeder, video_dts(segment.parts[part].data, segmenter.tracks), now)
            part += 1


def hint_of(playlist: str) -> tuple[int, int]:
    line = next(x for x in playlist.splitlines() if x.startswith("#EXT-X-PRELOAD-HINT"))
    msn, part = line.split('URI="part/')[1].split(".m4s")[0].split(".")
    return int(msn), int(part)


def summary(values: list[float]) -> tuple[float, float]:
    values = sorted(values)
    return statistics.median(values) * 1000, values[int(len(values) * 0.99) - 1] * 1000


async def main(args) -> None:
    clip = cached_clip(width=640, height=360, seconds=4.0, gop_seconds=2.0, bitrate=800_000)
    hubs = StreamHubs()
    hub = hubs.hub(CAM)
    outputs = HlsOutputs(hubs.hub, part_target=args.part_target, idle_timeout=3600)
    app = hls_app(outputs, {TOKEN: CAM}.get)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.05)
    base = f"http://127.0.0.1:{sock.getsockname()[1]}/{TOKEN}"

    outputs.get(CAM)
    feeder = ClipFeeder(hub, clip, audio=False, batch=1)
    feeding = asyncio.create_task(feeder.run(speed=1.0, tick_ms=40))
    stop = asyncio.Event()
    results: dict[str, list[float]] = {"subscription": [], "LL-HLS preload hint": [], "LL-HLS blocking reload": []}
    async with httpx.AsyncClient(timeout=30) as hint_client, httpx.AsyncClient(timeout=30) as reload_client:
        first = await hint_client.get(f"{base}/playlist.m3u8")  # waits for the first segment
        first.raise_for_status()
        hint = hint_of(first.text)
        segmenter = outputs.get(CAM).segmenter
        readers = [
            asyncio.create_task(subscription_reader(hub, feeder, results["subscription"], stop)),
            asyncio.create_task(preload_hint_reader(hint_client, base, feeder, lambda: segmenter.tracks,
                                                    results["LL-HLS preload hint"], stop, hint)),
            asyncio.create_task(blocking_reload_reader(reload_client, base, feeder, segmenter,
                                                       results["LL-HLS blocking reload"], stop, hint)),
        ]
        await asyncio.sleep(args.seconds)
        stop.set()
        WINDOW["end"] = time.monotonic()
        feeder.feed_ms(2000)  # wake every reader one last time
        await asyncio.wait(readers, timeout=10)
        for task in readers:
            task.cancel()
    feeding.cancel()
    await outputs.close()
    server.should_exit = True
    await serving

    base_p50, base_p99 = summary(results["subscription"])
    print(f"LL-HLS latency, {args.seconds:.0f} s of 640x360 25 fps GOP 2 s, PART-TARGET {args.part_target} s "
          f"(frame handed to the hub -> reader has it; median of all frames)")
    print(f"{'reader':26} {'frames':>7} {'p50 ms':>8} {'p99 ms':>8} {'p50 ratio':>10} {'p99 ratio':>10}")
    for name, values in results.items():
        p50, p99 = summary(values)
        print(f"{name:26} {len(values):7d} {p50:8.1f} {p99:8.1f} {p50 / base_p50:10.1f} {p99 / base_p99:10.1f}")
    print("target (issue 7): LL-HLS < 2000 ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--part-target", type=float, default=0.3)
    asyncio.run(main(parser.parse_args()))
