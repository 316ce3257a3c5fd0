"""Motion-detection cost (issue 9, figure 0): CPU seconds per camera-minute of the server-side
detector for N cameras at real-time rate, against decoding every frame of the same stream,
with the detector's episode-level precision and recall on the simulator's known motion.

    python bench/bench_motion.py                          # N = 10 and 50, 60 s per leg, 1080p25
    python bench/bench_motion.py --cameras 10 --seconds 120
    python bench/bench_motion.py --tiny                   # the smoke test's size (tests/detection)

The simulated cameras loop one pre-encoded clip (``media.testvideo``: 1920×1080, 25 fps, a
keyframe every ``--gop`` s, ~4 Mbit/s, a bright box moving only during the motion intervals
of ``MOTION``), each into its own stream hub at real-time rate, one fragment per frame, with
start times spread over a GOP (cameras are not in step). Per N, in one process:

1. **feed only** — the hubs with nobody subscribed (the cameras and the muxing live view
   does anyway);
2. **feed + detectors** — one :class:`~faoyam.media.motion_decode.ChannelDetector` per
   camera (``keyframes`` mode on the main stream: the production default). Its cost is
   leg 2 − leg 1 (process CPU time, the decoding threads included);
3. with ``--sub``, the same with ``frames`` mode on a 640×360 sub-stream at ``--sub-fps``,
   5 pictures a second analysed;
4. **every frame** — the baseline: one PyAV decoder decoding every frame of the same clip
   (file speed, one thread, as a detector that decodes everything would), CPU per minute
   of video. At real-time rate 50 such cameras would need ~5 cores; the cost is per frame,
   so the file-speed figure is what it costs per camera-minute.

Precision and recall: every camera's episodes against the clip's motion intervals, looped
(``media.motion.match_episodes``, tolerance one GOP + 0.5 s, see docs/motion-detection.md).
Figures are medians over ``--runs``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import av  # noqa: E402

from faoyam.media.hub import StreamHubs  # noqa: E402
from faoyam.media.motion import match_episodes, truth_intervals  # noqa: E402
from faoyam.media.motion_decode import ChannelDetector, MotionEvent  # noqa: E402
from faoyam.media.testfeed import feed_realtime  # noqa: E402
from faoyam.media.testvideo import cached_clip  # noqa: E402

# Four intervals in a 60 s loop, 6-12 s apart: more than the debouncing hold (2.5 GOPs) plus
# a GOP, so two of them never merge into one episode.
MOTION = ((5.0, 10.0), (20.0, 24.0), (33.0, 40.0), (50.0, 54.0))
TINY_MOTION = ((2.0, 5.0), (9.0, 12.0))


async def _run_cameras(clip, n: int, seconds: float, gop: float, mode: str | None, fps: float = 5.0):
    """``n`` cameras for ``seconds``; with ``mode`` a detector on each. (CPU s, episodes, last media t)."""
    hubs = StreamHubs()
    events: dict[int, list[MotionEvent]] = {i: [] for i in range(n)}
    detectors = []
    if mode is not None:
        for i in range(n):
            async def on_event(event: MotionEvent, i=i) -> None:
                events[i].append(event)
            detectors.append(ChannelDetector(hubs.hub(i), on_event, mode=mode, fps=fps).start())

    async def camera(i: int) -> None:
        await asyncio.sleep(gop * i / n)  # cameras are not in step
        await feed_realtime(hubs.hub(i), clip, audio=False)

    t0 = time.process_time()
    tasks = [asyncio.create_task(camera(i)) for i in range(n)]
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    last = {}
    for i, det in enumerate(detectors):
        last[i] = det.analyzer.last_t or 0.0  # what it saw (stop forgets it)
        await det.stop()
    cpu = time.process_time() - t0
    decoded = sum(det.decoded for det in detectors)
    return cpu, events, last, decoded


def _accuracy(clip, events, last, tolerance: float):
    detected = truth = matched = 0
    found = 0
    for i, evs in events.items():
        until = last[i]
        t = truth_intervals(clip.motion, clip.duration_ms / 1000, until)
        m = match_episodes([(e.start, e.end) for e in evs], t, tolerance)
        detected, truth, matched = detected + m.detected, truth + m.truth, matched + m.matched
        found += round(m.recall * m.truth)
    precision = matched / detected if detected else 1.0
    recall = found / truth if truth else 1.0
    return precision, recall, detected, truth


def decode_every_frame(clip, seconds: float) -> float:
    """CPU s per minute of video to decode every frame of ``clip`` (looped to ``seconds``)."""
    ctx = av.CodecContext.create("h264", "r")
    ctx.extradata = clip.config
    ctx.thread_type = "NONE"
    frames_wanted = int(seconds * clip.fps)
    n = 0
    t0 = time.process_time()
    while n < frames_wanted:
        for p in clip.packets:
            n += len(ctx.decode(av.Packet(p.data)))
            if n >= frames_wanted:
                break
    cpu = time.process_time() - t0
    return cpu / (n / clip.fps / 60)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, nargs="+", default=[10, 50])
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each leg")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--bitrate", type=int, default=4_000_000)
    ap.add_argument("--gop", type=float, default=2.0, help="keyframe interval, s")
    ap.add_argument("--sub", action="store_true", help="also measure frames mode on a 640x360 sub-stream")
    ap.add_argument("--sub-fps", type=int, default=25)
    ap.add_argument("--tiny", action="store_true", help="a smoke-test size: 2 cameras, 320x180, 14 s")
    args = ap.parse_args()
    motion, clip_s = MOTION, 60.0
    if args.tiny:
        args.cameras, args.seconds, args.width, args.height, args.bitrate, args.gop = [2], 15.0, 320, 180, 300_000, 1.0
        motion, clip_s = TINY_MOTION, 14.0
    clip = cached_clip(width=args.width, height=args.height, bitrate=args.bitrate, seconds=clip_s,
                       gop_seconds=args.gop, bframes=0, audio=False, preset="ultrafast", motion=motion)
    sub = None
    if args.sub:
        sub = cached_clip(width=640 if not args.tiny else 320, height=360 if not args.tiny else 180, fps=args.sub_fps,
                          bitrate=600_000, seconds=clip_s, gop_seconds=args.gop, bframes=0, audio=False,
                          preset="ultrafast", motion=motion)
    tolerance = args.gop + 0.5
    print(f"{args.width}x{args.height} {clip.fps} fps H.264 ~{clip.bitrate / 1e6:.1f} Mbit/s, keyframe every "
          f"{args.gop:g} s, {args.seconds:.0f} s per leg, {args.runs} run(s), {os.cpu_count()} CPUs; motion "
          f"{list(motion)} in a {clip_s:.0f} s loop; episode tolerance {tolerance:g} s")
    every = statistics.median(decode_every_frame(clip, min(args.seconds, 30.0)) for _ in range(args.runs))
    print(f"baseline: decode every frame of the main stream: {every:.2f} CPU-s per camera-minute")
    sub_every = None
    if sub is not None:
        sub_every = statistics.median(decode_every_frame(sub, min(args.seconds, 30.0)) for _ in range(args.runs))
        print(f"          decode every frame of the sub-stream ({sub.width}x{sub.height} {sub.fps} fps): "
              f"{sub_every:.2f} CPU-s per camera-minute")
    print()
    print("| N | detector | CPU-s / camera-minute | ratio to every main frame | precision | recall | episodes / truth |")
    print("|---|---|---|---|---|---|---|")
    legs = [("keyframes of main", clip, "keyframes")] + ([("5 fps of sub", sub, "frames")] if sub else [])
    for n in args.cameras:
        minutes = n * args.seconds / 60
        for name, source, mode in legs:
            costs, accs = [], []
            for _ in range(args.runs):
                base, _, _, _ = await _run_cameras(source, n, args.seconds, args.gop, None)
                cpu, events, last, _ = await _run_cameras(source, n, args.seconds, args.gop, mode)
                costs.append(max(cpu - base, 0.0) / minutes)
                accs.append(_accuracy(source, events, last, tolerance))
            cost = statistics.median(costs)
            precision = statistics.median(a[0] for a in accs)
            recall = statistics.median(a[1] for a in accs)
            detected, truth = accs[-1][2], accs[-1][3]
            print(f"| {n} | {name} | {cost:.3f} | {cost / every:.3f} | {precision:.3f} | {recall:.3f} | "
                  f"{detected} / {truth} |")
    print()
    print("target: <= 0.3 CPU-s per camera-minute, precision and recall >= 0.9")


if __name__ == "__main__":
    asyncio.run(main())
