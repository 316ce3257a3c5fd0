"""Playback figures (issue 8, figures 3 and 4): seek-and-start time, clip throughput against
reading the segments raw, and the timeline query at scale.

    python bench/bench_playback.py                       # all three, SQLite
    python bench/bench_playback.py --index-db postgresql+asyncpg://postgres@127.0.0.1:5432/faoyam_bench_playback
    python bench/bench_playback.py --skip-index          # only the media figures
    python bench/bench_playback.py --cameras 2 --days 1 --minutes 0.5 --seeks 5   # a smoke run

**Media** (local blob store, SQLite): ``--minutes`` of a 1080p25 H.264 + AAC clip (keyframe
every second) recorded by the real recorder into ``--segment``-s segments, then the media
worker's playback routes (``media/playback.py``) served by uvicorn on loopback:

1. *seek and start*: ``--seeks`` random instants; for each, the time from opening the
   playback WebSocket (``?at=``) to the first fragment's bytes (after the init), p50/p99.
   Baseline in the same run: the two ranged blob reads that fragment needs (init + the
   keyframe's fragment), done directly — the floor any server has to pay.
2. *clip throughput*: one clip of the whole recording (``/clip.mp4``) through HTTP, against
   every segment's raw bytes through the same server (``/seg/{id}.mp4``); MB/s and the ratio
   clip / raw (median of ``--runs``).

**Index** (figure 4): ``--cameras`` × ``--days`` of 24/7 10-s segments seeded with bulk
inserts (2.6 M rows for 10 × 30), then the timeline query (``recordings/timeline.py``) for one
channel over its last day and over 30 days, ``--queries`` times each, p50/p99; and the same on
a table with one camera's rows only (10× fewer rows, the same rows per channel) for the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
import websockets  # noqa: E402
from sqlalchemy import text  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from faoyam import models  # noqa: E402,F401 - every table
from faoyam.core.database import Base, Database, new_id  # noqa: E402
from faoyam.core.storage import LocalBlobStore  # noqa: E402
from faoyam.devices.models import Device  # noqa: E402
from faoyam.media.hub import StreamHubs  # noqa: E402
from faoyam.media.ids import ChannelId  # noqa: E402
from faoyam.media.playback import PlaybackServer  # noqa: E402
from faoyam.media.recorder import Recorder  # noqa: E402
from faoyam.media.testfeed import feed  # noqa: E402
from faoyam.media.testvideo import cached_clip  # noqa: E402
from faoyam.media.tokens import mint  # noqa: E402
from faoyam.recordings import service, timeline  # noqa: E402

KEY = b"bench-secret-key-of-32-bytes-----"


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def add_device(db: Database) -> str:
    device_id = new_id()
    async with db.transaction() as s:
        s.add(Device(id=device_id, serial_hash=new_id() * 2, kind="camera", model="FY-CAM-1", safety_code_hash="x",
                     factory_secret_hash="y", serial=f"FY{device_id[:8]}"))
    return device_id


class _Server(uvicorn.Server):
    def install_signal_handlers(self):  # noqa: D102 - inside our own loop
        pass


async def serve(app):
    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                                    lifespan="off", ws="websockets-sansio", ws_per_message_deflate=False))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    return server, task, f"127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"


# -- media figures ---------------------------------------------------------------------------

async def media_figures(args) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-playback-"))
    db = Database(f"sqlite+aiosqlite:///{tmp / 'db.sqlite'}")
    await db.create_all()
    blobs = LocalBlobStore(tmp / "blobs")
    device_id = await add_device(db)
    channel = ChannelId(device_id, 0, "main")
    clip = cached_clip(audio=True, seconds=10.0, gop_seconds=1.0, width=args.width, height=args.height,
                       bitrate=args.bitrate)
    hubs = StreamHubs()
    rec = Recorder(db, blobs, hubs, tmp / "spool", backend="local", segment_s=args.segment)
    cr = rec.record(channel)
    loops = max(1, round(args.minutes * 60 / 10))
    frames = 0
    for k in range(loops):  # ten seconds at a time, as fast as the recorder keeps up
        frames += feed(hubs.get(channel), clip, loops=1, audio=True, shift_ms=k * 10_000)
        while cr._sub is not None and cr._sub.queued_bytes > 0:
            await asyncio.sleep(0.02)
    deadline = time.monotonic() + 600
    while cr.frames_spooled < frames and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await rec.stop_recording(channel)
    await rec.drain()
    await rec.close(drain_timeout=30)
    segs = await service.segments(db, device_id, 0)
    total = sum(s.size for s in segs)
    if cr.fragments_dropped or sum(s.frames for s in segs) != frames:
        print(f"warning: recorded {sum(s.frames for s in segs)} of {frames} frames, dropped {cr.fragments_dropped}")
    print(f"recorded: {len(segs)} segments, {sum(s.duration_ms for s in segs) / 1000:.0f} s, "
          f"{total / 1e6:.1f} MB ({args.width}x{args.height}, {args.bitrate / 1e6:.1f} Mbit/s)")

    server = PlaybackServer(db, blobs, KEY, session_idle=300)
    http_server, task, host = await serve(Starlette(routes=server.routes))
    token = mint(KEY, channel, "user:bench", permission="playback", ttl=600)
    base = f"http://{host}/media/playback/{token}"
    start, end = segs[0].start, segs[-1].end
    rng = random.Random(7)

    starts, floors = [], []
    for _ in range(args.seeks):
        at = start + (end - start) * rng.random() * 0.95
        t0 = time.perf_counter()
        async with websockets.connect(f"ws://{host}/media/playback/{token}/stream?at={int(at.timestamp() * 1000)}",
                                      max_size=None) as ws:  # offers permessage-deflate, as browsers do
            binary = 0
            while True:
                msg = await ws.recv()
                if isinstance(msg, bytes):
                    binary += 1
                    if binary == 2:  # init, then the keyframe's fragment
                        starts.append(time.perf_counter() - t0)
                        break
        seg = next(s for s in segs if s.end > at)
        kf = service.keyframe_at(seg.keyframes, max(0, int((at - seg.start).total_seconds() * 1000)))
        points = [p for p in service.unpack_keyframes(seg.keyframes) if p[1] > kf[1]]
        stop = points[0][1] if points else seg.size
        t0 = time.perf_counter()
        async for _ in blobs.read_stream(seg.storage_key, 0, seg.init_size):
            pass
        async for _ in blobs.read_stream(seg.storage_key, kf[1], stop):
            pass
        floors.append(time.perf_counter() - t0)

    clip_rates, raw_rates = [], []
    async with httpx.AsyncClient(timeout=600) as client:
        q = f"from={int(start.timestamp() * 1000)}&to={int(end.timestamp() * 1000)}"
        for _ in range(args.runs):
            t0, n = time.perf_counter(), 0
            async with client.stream("GET", f"{base}/clip.mp4?{q}") as r:
                async for chunk in r.aiter_raw():
                    n += len(chunk)
            clip_rates.append(n / (time.perf_counter() - t0) / 1e6)
            t0, m = time.perf_counter(), 0
            for seg in segs:
                async with client.stream("GET", f"{base}/seg/{seg.id}.mp4") as r:
                    async for chunk in r.aiter_raw():
                        m += len(chunk)
            raw_rates.append(m / (time.perf_counter() - t0) / 1e6)
    http_server.should_exit = True
    await task
    await db.dispose()
    out = {"seek_p50_ms": statistics.median(starts) * 1000, "seek_p99_ms": pct(starts, 99) * 1000,
           "floor_p50_ms": statistics.median(floors) * 1000, "clip_mb_s": statistics.median(clip_rates),
           "raw_mb_s": statistics.median(raw_rates), "clip_bytes": n, "raw_bytes": m}
    print(f"seek and start ({args.seeks} random instants): p50 {out['seek_p50_ms']:.1f} ms, "
          f"p99 {out['seek_p99_ms']:.1f} ms (target < 1000 ms p50); the two ranged reads alone: p50 "
          f"{out['floor_p50_ms']:.2f} ms; ratio {out['seek_p50_ms'] / max(out['floor_p50_ms'], 1e-6):.1f}x")
    print(f"clip download: {out['clip_mb_s']:.0f} MB/s ({n / 1e6:.1f} MB), segments raw through the same server: "
          f"{out['raw_mb_s']:.0f} MB/s ({m / 1e6:.1f} MB); ratio clip / raw: "
          f"{out['clip_mb_s'] / out['raw_mb_s']:.2f} (target >= 0.8)")
    return out


# -- index figures ---------------------------------------------------------------------------

async def reset(url: str) -> Database:
    if url.startswith("postgresql"):
        import asyncpg  # the bench is a CLI module: its optional drivers load when asked for

        name = url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql").rsplit("/", 1)[0] + "/postgres")
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}"')
        await admin.close()
        db = Database(url)
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.drop_all)
        await db.create_all()
        return db
    if url.startswith("sqlite"):  # a fresh file for each table size
        url = f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='bench-index-')) / 'index.sqlite'}"
    db = Database(url)
    await db.create_all()
    return db


async def seed(db: Database, cameras: int, days: int, end: dt.datetime) -> list[str]:
    """``cameras`` × ``days`` of contiguous 10-s segments ending at ``end``, bulk inserted;
    one segment in 200 carries a motion flag."""
    ids = [await add_device(db) for _ in range(cameras)]
    per_day = 8640
    first = end - dt.timedelta(days=days)
    keyframes = service.pack_keyframes([(i * 1000, 1000 + i * 50_000) for i in range(10)])
    rows_total = 0
    t0 = time.perf_counter()
    pg = db.dialect == "postgresql"
    cols = ["id", "device_id", "channel", "stream", "start", "end", "duration_ms", "size", "init_size", "fragments",
            "frames", "keyframes", "codec", "width", "height", "events", "keep", "backend", "storage_key", "state",
            "writer", "created_at"]
    for device_id in ids:
        batch = []
        for i in range(days * per_day):
            a = first + dt.timedelta(seconds=10 * i)
            b = a + dt.timedelta(seconds=10)
            key = f"recording_segment/{device_id}{i:08d}"
            batch.append((new_id(), device_id, 0, "main", a, b, 10_000, 500_000, 1000, 10, 250, keyframes,
                          "avc1.640028", 1920, 1080, 1 if i % 200 == 0 else 0, False, "local", key, "complete",
                          "", a))
            if len(batch) >= 20_000:
                rows_total += await _bulk(db, pg, cols, batch)
                batch = []
        if batch:
            rows_total += await _bulk(db, pg, cols, batch)
    if pg:
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE recording_segments"))
    else:
        async with db.engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    print(f"  seeded {rows_total:,} rows ({cameras} cameras x {days} days) in {time.perf_counter() - t0:.0f} s")
    return ids


async def _bulk(db: Database, pg: bool, cols, batch) -> int:
    """One batch through the driver itself (COPY on PostgreSQL, executemany on SQLite):
    SQLAlchemy's per-value type processing would take most of the seeding time."""
    async with db.engine.begin() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        if pg:
            await raw.copy_records_to_table("recording_segments", records=batch, columns=cols)
        else:
            def sqlite_value(v):
                return v.astimezone(dt.UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f") \
                    if isinstance(v, dt.datetime) else v
            names = ", ".join(f'"{c}"' for c in cols)
            await raw.executemany(f"INSERT INTO recording_segments ({names}) VALUES ({', '.join('?' * len(cols))})",
                                  [tuple(sqlite_value(v) for v in r) for r in batch])
    return len(batch)


async def time_queries(db: Database, device_id: str, end: dt.datetime, n: int) -> dict:
    out = {}
    for label, span in (("day", dt.timedelta(days=1)), ("30 days", dt.timedelta(days=30))):
        times, found = [], None
        for i in range(n):
            a = end - span - dt.timedelta(minutes=i % 60)
            t0 = time.perf_counter()
            found = await timeline.timeline(db, device_id, 0, "main", a, a + span)
            times.append(time.perf_counter() - t0)
        out[label] = (statistics.median(times) * 1000, pct(times, 99) * 1000, len(found.intervals),
                      len(found.events), found.resolution_s)
    return out


async def index_figures(args, url: str, label: str) -> None:
    end = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
    print(f"index at scale, {label}:")
    results = {}
    for cameras in (args.cameras, 1):
        db = await reset(url)
        ids = await seed(db, cameras, args.days, end)
        results[cameras] = await time_queries(db, ids[0], end, args.queries)
        async with db.session() as s:
            rows = (await s.execute(text("SELECT count(*) FROM recording_segments"))).scalar()
        for span, (p50, p99, intervals, events, res) in results[cameras].items():
            print(f"  {rows:>9,} rows, one channel over {span:>7}: p50 {p50:6.2f} ms, p99 {p99:6.2f} ms "
                  f"({intervals} intervals, {events} event markers, resolution {res} s)")
        await db.dispose()
        if db.dialect == "sqlite":
            shutil.rmtree(Path(db.engine.url.database).parent, ignore_errors=True)
        if args.cameras == 1:
            break
    if 1 in results and args.cameras != 1:
        for span in ("day", "30 days"):
            big, small = results[args.cameras][span], results[1][span]
            print(f"  ratio {args.cameras}x rows / 1x, over {span}: p99 {big[1] / small[1]:.2f}, p50 {big[0] / small[0]:.2f} "
                  f"(target p99 < 50 ms: {'yes' if big[1] < 50 else 'NO'})")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=5.0, help="video recorded for the media figures")
    ap.add_argument("--segment", type=float, default=10.0)
    ap.add_argument("--width", type=int, default=1920)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--bitrate", type=int, default=4_000_000)
    ap.add_argument("--seeks", type=int, default=50)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cameras", type=int, default=10)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--index-db", default=None, help="database URL for the index figures (default: a SQLite file)")
    ap.add_argument("--skip-media", action="store_true")
    ap.add_argument("--skip-index", action="store_true")
    args = ap.parse_args()
    figures = {}
    if not args.skip_media:
        figures["media"] = await media_figures(args)
    if not args.skip_index:
        url = args.index_db or f"sqlite+aiosqlite:///{Path(tempfile.mkdtemp(prefix='bench-index-')) / 'index.sqlite'}"
        await index_figures(args, url, "PostgreSQL" if url.startswith("postgresql") else "SQLite")
    if figures:
        print(json.dumps(figures, default=str))


if __name__ == "__main__":
    asyncio.run(main())
