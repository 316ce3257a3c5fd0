"""Ingest cost: N simulated 1080p cameras pushing RTMP at real-time rate into one hub process,
against one ``ffmpeg -c copy`` receiver per camera fed the same frames in the same run.

    python bench/bench_ingest.py                      # 10 cameras, 30 s measured (+5 s warm-up)
    python bench/bench_ingest.py --cameras 50
    python bench/bench_ingest.py --cameras 200 --no-baseline   # the 2-core target
    python bench/bench_ingest.py --cameras 200 --recorder-only # nobody watches: 500 ms batches

What runs (separate processes, so each side's CPU is its own):
* the **hub process** (``--serve``): one :class:`~faoyam.media.RtmpServer` for all cameras,
  a :class:`~faoyam.media.StreamHub` per camera muxing fMP4, and one consumer per hub that
  reads every fragment (standing in for a viewer or the recorder);
* the **baseline**: per camera one ``ffmpeg -listen 1 -i rtmp://… -c copy -f null -``
  (Debian's ffmpeg 5.1), the usual one-process-per-camera design;
* this process: the **senders** — every camera loops the same pre-encoded clip (1920×1080,
  25 fps, GOP 2 s, ~4 Mbit/s, half-second rate buffer) from one real-time pacer and writes
  each frame to both receivers, so both sides get identical streams at the same moments.

Measured over the window after warm-up: CPU seconds (user+sys, from ``/proc`` via psutil)
of the hub process, and the sum over the ffmpeg processes, each divided by camera-minutes.
Packets: frames sent per camera, frames into the hubs, samples read by the consumers, and
frames ffmpeg counted (``-progress``): "dropped" is sent minus received on each side.
The figures are medians over ``--runs`` (each run uses fresh processes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from faoyam.media import ChannelId, RtmpServer, StreamHubs  # noqa: E402
from faoyam.media.rtmp_publisher import Camera, RtmpPublisher, run_cameras  # noqa: E402

CLIP = dict(width=1920, height=1080, fps=25, seconds=10.0, gop_seconds=2.0, bitrate=4_000_000, bframes=0)


# -- the hub process --------------------------------------------------------------------

async def serve(cameras: int, read_interval: float, idle_timeout: float, background: bool) -> None:
    """Receive every camera; answer ``stats`` on stdin with JSON; exit on ``quit``."""
    hubs = StreamHubs()
    server = await RtmpServer(hubs, lambda app, key: ChannelId(key) if key.startswith("cam") else None,
                              read_interval=read_interval, idle_timeout=idle_timeout).start()
    subs = [hubs.hub(ChannelId(f"cam{i}")).subscribe(queue_bytes=64 << 20, background=background)
            for i in range(cameras)]

    async def consume(sub):
        async for _chunks in sub:
            pass

    consumers = [asyncio.create_task(consume(sub)) for sub in subs]
    print(json.dumps({"port": server.port}), flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := (await reader.readline()).strip():
        if line == b"stats":
            print(json.dumps({
                "samples_in": sum(sub.hub.samples_in for sub in subs),
                "samples_read": sum(sub.samples_read for sub in subs),
                "lags": sum(sub.lags for sub in subs),
                "publishing": sum(1 for sub in subs if sub.hub.publisher is not None),
            }), flush=True)
        elif line == b"quit":
            break
    for task in consumers:
        task.cancel()
    await server.close()


# -- the measuring side -----------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(proc) -> float:
    times = proc.cpu_times()
    return times.user + times.system


FFMPEG_WAVE = 20  # baseline receivers started at a time


def spawn_ffmpeg(i: int, children: list) -> tuple[subprocess.Popen, str]:
    url = f"rtmp://127.0.0.1:{free_port()}/live/cam{i}"
    proc = subprocess.Popen(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-stats_period", "5",
         "-progress", "pipe:1", "-listen", "1", "-i", url, "-c", "copy", "-f", "null", "-"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    children.append(proc)
    return proc, url


async def wait_listening(proc: subprocess.Popen, url: str, timeout: float = 60.0) -> None:
    """Until ``proc`` listens on ``url``'s port (read from /proc, without connecting: a test
    connection would use up ffmpeg's single ``-listen 1`` connection)."""
    import psutil

    port = int(url.split(":")[2].split("/")[0])
    ps, deadline = psutil.Process(proc.pid), time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"ffmpeg for {url} exited with {proc.returncode} before listening")
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in ps.net_connections("tcp")):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"ffmpeg for {url} does not listen after {timeout:g} s")
        await asyncio.sleep(0.05)


async def connect_with_retry(url: str, deadline: float, timeout: float = 5.0) -> RtmpPublisher:
    while True:
        publisher = RtmpPublisher(url, timeout=timeout)
        try:
            await publisher.connect()
            return publisher
        except (ConnectionError, OSError, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def one_run(args, clip) -> dict:
    """One measurement with fresh receiver processes; they are ended whatever happens."""
    children: list[subprocess.Popen] = []
    try:
        return await _measure(args, clip, children)
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()


async def _measure(args, clip, children: list) -> dict:
    import psutil

    # No media flows until every camera is connected (one pacer starts them all), which at
    # 200 cameras and 400 connections took longer than the hub's usual 30 s idle timeout:
    # the first cameras were closed as silent before they sent anything.
    hub_proc = subprocess.Popen([sys.executable, __file__, "--serve", "--cameras", str(args.cameras),
                                 "--read-interval", str(args.read_interval),
                                 *(["--recorder-only"] if args.background else []),
                                 "--idle-timeout", str(60 + args.cameras)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    children.append(hub_proc)
    port = json.loads(hub_proc.stdout.readline())["port"]
    ffmpegs: list[subprocess.Popen] = [None] * args.cameras if args.baseline else []
    ff_urls: list[str] = [""] * len(ffmpegs)
    # Started in waves, each waited for until it listens: 200 ffmpeg started at once on 2
    # cores take longer to reach listen() than a client waits, and `-listen 1` takes exactly
    # one connection — a client that gave up mid-handshake left a dead receiver (the N=200
    # baseline "failed to start").
    for first in range(0, len(ffmpegs), FFMPEG_WAVE):
        wave = range(first, min(first + FFMPEG_WAVE, len(ffmpegs)))
        for i in wave:
            ffmpegs[i], ff_urls[i] = spawn_ffmpeg(i, children)
        for i in wave:
            await wait_listening(ffmpegs[i], ff_urls[i])
    deadline = time.monotonic() + 30 + 0.5 * args.cameras
    cameras = []
    for i in range(args.cameras):
        publishers = [await connect_with_retry(f"rtmp://127.0.0.1:{port}/live/cam{i}", deadline)]
        if args.baseline:
            for attempt in range(3):  # a receiver whose one connection failed is replaced
                try:
                    publishers.append(await connect_with_retry(ff_urls[i], deadline, timeout=30))
                    break
                except (ConnectionError, OSError, asyncio.TimeoutError):
                    if attempt == 2:
                        raise
                    ffmpegs[i].kill()
                    ffmpegs[i], ff_urls[i] = spawn_ffmpeg(i, children)
                    await wait_listening(ffmpegs[i], ff_urls[i])
        # stagger the cameras over one GOP, as real cameras are not in lock-step
        cameras.append(Camera(clip, publishers, start_delay=CLIP["gop_seconds"] * i / args.cameras))
    hub_ps = psutil.Process(hub_proc.pid)
    ff_ps = [psutil.Process(f.pid) for f in ffmpegs]
    sender_ps = psutil.Process()

    total = args.warmup + args.seconds
    sending = asyncio.create_task(run_cameras(cameras, total))
    await asyncio.sleep(args.warmup)
    start = (time.monotonic(), cpu_seconds(hub_ps), [cpu_seconds(p) for p in ff_ps], cpu_seconds(sender_ps))
    hub_sys0 = hub_ps.cpu_times().system
    await asyncio.sleep(args.seconds)
    end = (time.monotonic(), cpu_seconds(hub_ps), [cpu_seconds(p) for p in ff_ps], cpu_seconds(sender_ps))
    hub_sys = hub_ps.cpu_times().system - hub_sys0
    hub_rss = hub_ps.memory_info().rss
    ff_rss = [p.memory_info().rss for p in ff_ps]
    await sending
    for camera in cameras:
        for publisher in camera.publishers:
            await publisher.close()
    sent = sum(camera.sent for camera in cameras)

    ff_frames = 0
    for proc in ffmpegs:
        out, _ = await asyncio.to_thread(proc.communicate, timeout=30)
        frames = [int(line.split("=", 1)[1]) for line in out.splitlines() if line.startswith("frame=")]
        ff_frames += frames[-1] if frames else 0

    stats = {}
    for _ in range(100):  # the hub may still be reading its last batch
        hub_proc.stdin.write("stats\n")
        hub_proc.stdin.flush()
        stats = json.loads(hub_proc.stdout.readline())
        if stats["samples_read"] >= sent and stats["publishing"] == 0:
            break
        await asyncio.sleep(0.1)
    hub_proc.stdin.write("quit\n")
    hub_proc.stdin.close()
    hub_proc.wait(timeout=10)

    window = end[0] - start[0]
    camera_minutes = args.cameras * window / 60
    return {
        "hub": (end[1] - start[1]) / camera_minutes,
        "hub_sys": hub_sys / camera_minutes,
        "ffmpeg": (sum(end[2]) - sum(start[2])) / camera_minutes if ffmpegs else None,
        "sender": (end[3] - start[3]) / camera_minutes,
        "hub_rss_mb": hub_rss / 2 ** 20,
        "ffmpeg_rss_mb": sum(ff_rss) / 2 ** 20 if ff_rss else None,
        "sent": sent, "hub_in": stats.get("samples_in"), "hub_out": stats.get("samples_read"),
        "hub_lags": stats.get("lags"), "ffmpeg_frames": ff_frames if ffmpegs else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured window")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--read-interval", type=float, default=0.1, help="hub's batched-read interval, s")
    parser.add_argument("--recorder-only", dest="background", action="store_true",
                        help="the consumers are background ones, like the recorder (nobody watches "
                             "live): the hub reads those streams every 500 ms instead of 100")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip the ffmpeg-per-camera receivers (e.g. for 200 cameras)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--idle-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        if os.environ.get("BENCH_INGEST_PROFILE"):  # where the hub process spends its time
            import cProfile
            cProfile.runctx("asyncio.run(serve(args.cameras, args.read_interval, args.idle_timeout, args.background))", globals(), locals(),
                            os.environ["BENCH_INGEST_PROFILE"])
        else:
            asyncio.run(serve(args.cameras, args.read_interval, args.idle_timeout, args.background))
        return

    from faoyam.media.testvideo import cached_clip

    clip = cached_clip(**CLIP)
    print(f"clip: {clip.width}x{clip.height} {clip.fps} fps, GOP {CLIP['gop_seconds']:g} s, "
          f"{clip.bitrate / 1e6:.2f} Mbit/s, loop {clip.duration_ms / 1000:g} s ({clip.path.name})")
    print(f"{args.cameras} cameras, {args.seconds:g} s measured after {args.warmup:g} s warm-up, "
          f"read interval {args.read_interval * 1000:g} ms, consumers "
          f"{'background (recorder-like: 500 ms batches)' if args.background else 'live (viewer-like)'}, "
          f"{args.runs} run(s)")
    runs = []
    for n in range(args.runs):
        result = asyncio.run(one_run(args, clip))
        runs.append(result)
        print(f"run {n + 1}: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                           for k, v in result.items()))

    def med(key):
        values = [r[key] for r in runs if r[key] is not None]
        return statistics.median(values) if values else None

    hub, ffmpeg = med("hub"), med("ffmpeg")
    last = runs[-1]
    print()
    print("| figure (CPU-s per camera-minute, user+sys, median) | value |")
    print("|---|---|")
    consumer = "a recorder-like consumer" if args.background else "a live viewer-like consumer"
    print(f"| hub process (RTMP in, fMP4 out, {consumer} per stream) | {hub:.3f} |")
    if ffmpeg is not None:
        print(f"| baseline: one `ffmpeg -c copy -f null` per camera | {ffmpeg:.3f} |")
        print(f"| **ratio hub / baseline** | **{hub / ffmpeg:.2f}** |")
    print(f"| (senders, not counted) | {med('sender'):.3f} |")
    print(f"| RSS: hub process | {last['hub_rss_mb']:.0f} MB |")
    if last["ffmpeg_rss_mb"] is not None:
        print(f"| RSS: all ffmpeg receivers | {last['ffmpeg_rss_mb']:.0f} MB |")
    print()
    print(f"packets (last run): sent {last['sent']} per side; hub in {last['hub_in']}, "
          f"hub out {last['hub_out']} (dropped {last['sent'] - (last['hub_out'] or 0)}, lags {last['hub_lags']})"
          + (f"; ffmpeg counted {last['ffmpeg_frames']} (dropped {last['sent'] - last['ffmpeg_frames']})"
             if last["ffmpeg_frames"] is not None else ""))


if __name__ == "__main__":
    main()
