"""What the on-demand H.265 → H.264 transcode costs: CPU seconds per camera-minute of a
1080p / 720p H.265 camera transcoded at real-time rate, against ffmpeg doing the same job
on the same input in the same run.

    python bench/bench_transcode.py                       # 1920×1080 and 1280×720, 15 s each
    python bench/bench_transcode.py --sizes 1280x720 --seconds 30

Per picture size, each for ``--seconds`` of wall time at the camera's own pace (25 fps):

* **feed only** — the camera's H.265 handed to its hub at real-time rate and read by one
  subscriber: what the media worker spends on the stream without any transcode;
* **ours, 640 wide** — the same plus :class:`faoyam.media.transcode.Transcoders` (what a
  browser without HEVC gets: decoded, scaled to 640 wide, libx264 ultrafast/zerolatency,
  one codec thread each), its H.264 hub read by one subscriber;
* **ours, full size** — the same without scaling (``--width 0`` in the live server's terms);
* **ffmpeg (as specified)** — ``ffmpeg -re -i clip.mp4 -c:v libx264 -preset ultrafast
  -tune zerolatency -f null -`` (looped for the same span): the baseline the issue names,
  full size, ffmpeg's own threading;
* **ffmpeg like ours** — the same with ``-threads 1`` for decoder and encoder and
  ``-vf scale=640:-2``: the like-for-like job.

CPU is the process's user+system time over the span (every thread), for ffmpeg the child's
rusage. "net" is ours minus feed only. The event loop's lag (a 5 ms ticker's overshoot,
p99 / max) shows whether decoding in the worker thread stalls the hub: it should stay close
to the feed-only run's. Frames in/out/dropped say whether the transcode kept up.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from faoyam.media import ChannelId, StreamHubs  # noqa: E402
from faoyam.media.testfeed import feed_realtime  # noqa: E402
from faoyam.media.testvideo import Clip, cached_clip  # noqa: E402
from faoyam.media.transcode import Transcoders  # noqa: E402

CAM = ChannelId("bench", 0, "main")
BITRATES = {1080: 4_000_000, 720: 2_000_000, 360: 1_000_000}


async def drain(sub) -> int:
    n = 0
    async for chunks in sub:
        n += len(chunks)
    return n


async def ticker(lags: list[float], every: float = 0.005) -> None:
    """How late the event loop wakes a task that asked to sleep ``every`` seconds."""
    while True:
        t0 = time.perf_counter()
        await asyncio.sleep(every)
        lags.append(time.perf_counter() - t0 - every)


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


async def run_ours(clip: Clip, seconds: float, width: int | None) -> dict:
    """The camera fed at real time for ``seconds``; ``width`` None: no transcode at all."""
    hubs = StreamHubs()
    hub = hubs.hub(CAM)
    lags: list[float] = []
    tick = asyncio.create_task(ticker(lags))
    camera = asyncio.create_task(feed_realtime(hub, clip, audio=False))
    viewer = asyncio.create_task(drain(hub.subscribe(queue_bytes=64 << 20)))
    await asyncio.sleep(1.0)  # warm up: the first GOP, the codecs opened
    transcoders = transcoded = None
    if width is not None:
        transcoders = Transcoders(hubs.hub, width=width or 1 << 16)
        transcoded = asyncio.create_task(drain(transcoders.subscribe(CAM, queue_bytes=64 << 20)))
        await asyncio.sleep(1.0)
    lags.clear()
    cpu0, t0 = cpu_self(), time.perf_counter()
    frames0 = (transcoders.running[CAM].frames_in, transcoders.running[CAM].frames_out) if transcoders else (0, 0)
    await asyncio.sleep(seconds)
    cpu, wall = cpu_self() - cpu0, time.perf_counter() - t0
    out = {"cpu": cpu, "wall": wall, "lag_p99": statistics.quantiles(lags, n=100)[98] * 1000,
           "lag_max": max(lags) * 1000}
    if transcoders is not None:
        tr = transcoders.running[CAM]
        out.update(frames_in=tr.frames_in - frames0[0], frames_out=tr.frames_out - frames0[1], dropped=tr.dropped)
        await transcoders.close()
    for task in (tick, camera, viewer, transcoded):
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return out


def run_ffmpeg(clip: Clip, seconds: float, like_ours: bool) -> dict:
    cmd = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin"]
    if like_ours:
        cmd += ["-threads", "1"]
    cmd += ["-re", "-stream_loop", "-1", "-i", str(clip.path), "-t", str(seconds), "-an"]
    if like_ours:
        cmd += ["-vf", "scale=640:-2", "-threads", "1"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-f", "null", "-"]
    cpu0, t0 = cpu_children(), time.perf_counter()
    subprocess.run(cmd, check=True)
    return {"cpu": cpu_children() - cpu0, "wall": time.perf_counter() - t0}


def per_minute(result: dict) -> float:
    return result["cpu"] / result["wall"] * 60


async def bench_size(width: int, height: int, seconds: float) -> None:
    bitrate = BITRATES.get(height, 3_000_000)
    t0 = time.perf_counter()
    clip = cached_clip(codec="h265", width=width, height=height, fps=25, seconds=8.0, gop_seconds=2.0,
                       bitrate=bitrate)
    made = time.perf_counter() - t0
    print(f"\n{width}×{height} H.265, 25 fps, GOP 2 s, {clip.bitrate / 1e6:.1f} Mbit/s "
          f"(clip ready in {made:.1f} s), {seconds:.0f} s per run")
    feed = await run_ours(clip, seconds, None)
    small = await run_ours(clip, seconds, 640)
    full = await run_ours(clip, seconds, 0)
    ff = run_ffmpeg(clip, seconds, like_ours=False)
    ff_like = run_ffmpeg(clip, seconds, like_ours=True)
    base, like = per_minute(ff), per_minute(ff_like)
    print(f"{'':28} {'CPU-s/cam-min':>13} {'net':>7} {'÷ ffmpeg':>9} {'÷ like ours':>11} "
          f"{'loop lag p99/max ms':>20} {'frames in/out/dropped':>22}")
    print(f"{'feed only':28} {per_minute(feed):13.2f} {'':>7} {'':>9} {'':>11} "
          f"{feed['lag_p99']:9.1f} /{feed['lag_max']:7.1f}")
    for name, r in (("ours, 640 wide", small), ("ours, full size", full)):
        net = per_minute(r) - per_minute(feed)
        print(f"{name:28} {per_minute(r):13.2f} {net:7.2f} {net / base:9.2f} {net / like:11.2f} "
              f"{r['lag_p99']:9.1f} /{r['lag_max']:7.1f} {r['frames_in']:>10}/{r['frames_out']}/{r['dropped']}")
    print(f"{'ffmpeg (as specified)':28} {base:13.2f}")
    print(f"{'ffmpeg like ours (640, 1 thr)':28} {like:13.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1920x1080,1280x720")
    ap.add_argument("--seconds", type=float, default=15.0)
    args = ap.parse_args()
    if shutil.which("ffmpeg") is None:
        sys.exit("needs Debian's ffmpeg for the baseline (apt-get install ffmpeg)")
    for size in args.sizes.split(","):
        w, h = (int(x) for x in size.lower().split("x"))
        asyncio.run(bench_size(w, h, args.seconds))


if __name__ == "__main__":
    main()
