"""Recording cost: CPU seconds per camera-minute of the recorder, against one
``ffmpeg -c copy -f segment`` process per camera (what Frigate runs), in the same run.

    python bench/bench_record.py                         # N=20, 60 s per leg, 1080p25 H.264 ~4 Mbit/s
    python bench/bench_record.py --cameras 200 --seconds 600   # the issue's target run (figure 1)
    python bench/bench_record.py --cameras 200 --seconds 600 --store s3   # the same on SeaweedFS S3
    python bench/bench_record.py --copy          # closed segments copied into the store (before adopt)

``--store s3`` starts a SeaweedFS (``tests/s3server.py``) and records into it; ``--copy``
streams each closed spool into the store instead of the local store's rename (``adopt``),
the recorder as it was before, for the before/after figure; ``--no-ffmpeg`` skips leg 3.

Three legs of ``--seconds`` each, on the same simulated cameras (one encoded clip, looped
with rewritten timestamps, fed to one hub per camera at real-time rate, one fragment per
frame as a camera's push arrives — ``media.testfeed.feed_realtime``):

1. **feed only** — the hubs with nobody subscribed: the cost of the simulated cameras and
   the muxing the hub does anyway for live view;
2. **feed + recorder** — the same, recorded: ``media.recorder.Recorder`` on a local (or S3)
   blob store and SQLite, segments of ``--segment`` s. The recorder's cost is leg 2 − leg 1
   (process CPU time, threads included: spool writes and uploads run in threads);
3. **ffmpeg baseline** — per camera ``ffmpeg -re -stream_loop -1 -i clip.mp4 -c copy -f
   segment -segment_time S -segment_format_options
   movflags=+frag_keyframe+empty_moov+default_base_moof``, CPU from ``RUSAGE_CHILDREN``.
   (It includes its own demuxing of the input, as Frigate's ffmpeg demuxes its RTSP input;
   the recorder's input is the hub the live view has anyway.)

After leg 2 the index is checked against the blobs (every closed segment stored and
indexed, none lost), against the expected count (per camera, the leg's media time over the
segment length, each segment ending at the first keyframe after it: a camera with fewer
segments lost some) and one segment per camera is decoded with PyAV.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import av  # noqa: E402

from faoyam import models  # noqa: E402,F401 - every table
from faoyam.core.database import Database, new_id  # noqa: E402
from faoyam.core.config import Settings  # noqa: E402
from faoyam.core.storage import LocalBlobStore  # noqa: E402
from faoyam.core.storage_s3 import S3BlobStore  # noqa: E402
from faoyam.devices.models import Device  # noqa: E402
from faoyam.media.hub import StreamHubs  # noqa: E402
from faoyam.media.ids import ChannelId  # noqa: E402
from faoyam.media.recorder import Recorder  # noqa: E402
from faoyam.media.testfeed import feed_realtime  # noqa: E402
from faoyam.media.testvideo import cached_clip  # noqa: E402
from faoyam.recordings import service  # noqa: E402
from tests.s3server import SeaweedS3  # noqa: E402 - for --store s3


async def _feed(hubs: StreamHubs, channels, clip, seconds: float) -> None:
    tasks = [asyncio.create_task(feed_realtime(hubs.hub(c), clip, shift_ms=0)) for c in channels]
    await asyncio.sleep(seconds)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def leg_feed(channels, clip, seconds: float) -> float:
    hubs = StreamHubs()
    t0 = time.process_time()
    await _feed(hubs, channels, clip, seconds)
    return time.process_time() - t0


async def leg_record(channels, clip, seconds: float, segment_s: float, work: Path, blobs,
                     adopt: bool = True) -> tuple[float, dict]:
    db = Database(f"sqlite+aiosqlite:///{work / 'bench.db'}")
    await db.create_all()
    async with db.transaction() as s:
        for c in channels:
            s.add(Device(id=c.device_id, serial_hash=new_id() * 2, kind="camera", model="bench",
                         safety_code_hash="x", factory_secret_hash="y"))
    hubs = StreamHubs()
    rec = Recorder(db, blobs, hubs, work / "spool", segment_s=segment_s,
                   backend="local" if isinstance(blobs, LocalBlobStore) else "s3")
    rec.adopt = adopt
    t0 = time.process_time()
    for c in channels:
        rec.record(c)
    await _feed(hubs, channels, clip, seconds)
    dropped = sum(r.fragments_dropped for r in rec.channels.values())  # before stopping forgets them
    for c in channels:
        await rec.stop_recording(c)
    await rec.drain()
    cpu = time.process_time() - t0
    await rec.close()
    # Index = blobs = what was recorded.
    segs = {c: await service.segments(db, c.device_id, c.channel) for c in channels}
    keys = {k async for k in blobs.keys("recording_segment/")}
    indexed = {s.storage_key for ss in segs.values() for s in ss}
    states = {s.state for ss in segs.values() for s in ss}
    frames = sum(s.frames for ss in segs.values() for s in ss)
    # Expected per camera: segments cut at the first keyframe at or after segment_s of media,
    # so with a GOP of g s each is ceil(segment_s / g) * g long; the last one is partial.
    key_dts = [p.dts for p in clip.packets if p.keyframe]
    gop = (key_dts[1] - key_dts[0]) / 1000 if len(key_dts) > 1 else clip.duration_ms / 1000
    seg_len = -(-segment_s // gop) * gop
    expected_min = int(seconds // seg_len)  # whole segments; +1 for the part at the end
    short = [c for c in channels if len(segs[c]) < expected_min]
    decoded_ok = 0
    for c in channels:
        seg = segs[c][0]
        with av.open(io.BytesIO(await blobs.read(seg.storage_key))) as container:
            n = sum(len(p.decode()) for p in container.demux(container.streams.video[0]) if p.size)
        decoded_ok += n > 0
    await db.dispose()
    return cpu, {"segments": sum(map(len, segs.values())), "blobs": len(keys), "index_eq_blobs": keys == indexed,
                 "expected": f"{expected_min}-{expected_min + 1} per camera", "short_cameras": len(short),
                 "states": sorted(states), "frames": frames, "decoded": decoded_ok,
                 "dropped": dropped}


def leg_ffmpeg(n: int, clip_path: Path, seconds: float, segment_s: float, work: Path) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    procs = []
    for i in range(n):
        out = work / f"ff{i}"
        out.mkdir()
        procs.append(subprocess.Popen(
            ["ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", str(clip_path),
             "-c", "copy", "-f", "segment", "-segment_time", str(segment_s), "-segment_format", "mp4",
             "-segment_format_options", "movflags=+frag_keyframe+empty_moov+default_base_moof",
             str(out / "seg%05d.mp4")], stdout=subprocess.DEVNULL))
    time.sleep(seconds)
    for p in procs:
        p.send_signal(signal.SIGINT)  # ffmpeg finishes its segment and exits
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each leg")
    ap.add_argument("--segment", type=float, default=10.0, help="segment length, s (production: 60)")
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--bitrate", type=int, default=4_000_000)
    ap.add_argument("--store", choices=("local", "s3"), default="local")
    ap.add_argument("--copy", action="store_true", help="copy closed spools into the store (no rename)")
    ap.add_argument("--no-ffmpeg", action="store_true", help="skip the ffmpeg baseline leg")
    args = ap.parse_args()
    if not args.no_ffmpeg and shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is needed for the baseline (apt-get install ffmpeg)")
    clip = cached_clip(width=args.width, height=args.height, bitrate=args.bitrate, seconds=4.0, gop_seconds=2.0,
                       bframes=0, audio=False, preset="ultrafast")
    n = args.cameras
    channels = [ChannelId(new_id()) for _ in range(n)]
    minutes = n * args.seconds / 60
    print(f"{n} cameras, {args.width}x{args.height} {clip.fps} fps H.264 ~{clip.bitrate / 1e6:.1f} Mbit/s, "
          f"{args.seconds:.0f} s per leg, segments of {args.segment:.0f} s, {os.cpu_count()} CPUs")
    server = None
    with tempfile.TemporaryDirectory(prefix="bench-record-") as tmp:
        work = Path(tmp)
        if args.store == "s3":
            server = SeaweedS3.start()
            blobs = S3BlobStore.from_settings(Settings(**server.settings_for(server.new_prefix()), _env_file=None))
        else:
            blobs = LocalBlobStore(work / "blobs")
        try:
            feed_cpu = await leg_feed(channels, clip, args.seconds)
            print(f"[leg 1 done] feed only: {feed_cpu:.2f} CPU s", flush=True)
            both_cpu, check = await leg_record(channels, clip, args.seconds, args.segment, work, blobs,
                                               adopt=not args.copy)
            print(f"[leg 2 done] feed + recorder: {both_cpu:.2f} CPU s; {check}", flush=True)
            await blobs.close()
        finally:
            if server is not None:
                server.stop()
        ff_cpu = 0.0 if args.no_ffmpeg else leg_ffmpeg(n, clip.path, args.seconds, args.segment, work)
    recorder_cpu = max(both_cpu - feed_cpu, 0.0)
    rec_per, ff_per = recorder_cpu / minutes, ff_cpu / minutes
    print(f"{'leg':<28}{'CPU s':>9}{'CPU s / camera-minute':>24}")
    print(f"{'feed only (cameras + hub)':<28}{feed_cpu:>9.2f}{feed_cpu / minutes:>24.3f}")
    print(f"{'feed + recorder':<28}{both_cpu:>9.2f}{both_cpu / minutes:>24.3f}")
    print(f"{'recorder (difference)':<28}{recorder_cpu:>9.2f}{rec_per:>24.3f}")
    print(f"{'ffmpeg -c copy -f segment':<28}{ff_cpu:>9.2f}{ff_per:>24.3f}")
    print(f"ratio recorder / ffmpeg: {rec_per / ff_per:.2f}  (target <= 0.5)" if ff_per else "ffmpeg leg skipped")
    print(f"store {args.store}, closed segments {'copied' if args.copy else 'adopted'}; expected {check['expected']}, "
          f"cameras short of it {check['short_cameras']}")
    print(f"segments {check['segments']}, blobs {check['blobs']}, index = blobs: {check['index_eq_blobs']}, "
          f"states {check['states']}, frames recorded {check['frames']}, decodable {check['decoded']}/{n}, "
          f"fragments dropped {check['dropped']}")


if __name__ == "__main__":
    asyncio.run(main())
