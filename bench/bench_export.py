"""Export memory benchmark: is the memory of an export flat as the account grows?

    python bench/bench_export.py                  # 20 MB vs 200 MB of blobs, 3 runs, local store
    python bench/bench_export.py --s3             # the same on S3 (SeaweedFS started for the run)
    python bench/bench_export.py --small 20 --large 2000 --runs 1

Each measurement runs in a fresh process (so one run's peak cannot hide another's): it
makes an account on SQLite with the local blob store (or S3 with ``--s3``), gives it ``--small`` or ``--large``
megabytes of blobs (10 MB files, outbox mail reached through the account), then streams
the ZIP export to /dev/null (``faoyam.privacy.export.export_zip``, the path the API and
``faoyam privacy export`` use) and records

* the peak RSS growth during the export (psutil, sampled every 5 ms, minus the RSS just
  before), and
* the peak of Python allocations during a second export (tracemalloc).

Printed: medians over ``--runs`` for each size and the ratio large/small (target ≈ 1:
memory does not follow the account's size), plus the export throughput for information.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

MB = 1 << 20
FILE_MB = 10


async def _chunks(size: int, seed: int):
    import hashlib

    block = hashlib.sha256(str(seed).encode()).digest() * (MB // 32)
    left = size
    while left > 0:
        yield block[: min(left, MB)]
        left -= MB


class PeakRSS:
    """Samples this process's RSS in a thread; ``peak`` is the highest seen."""

    def __init__(self) -> None:
        import psutil

        self.proc = psutil.Process()
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRSS:
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


async def child(total_mb: int, conf: dict) -> dict:
    from faoyam.accounts.models import User
    from faoyam.core.config import Settings
    from faoyam.core.context import Context
    from faoyam.core.database import utcnow
    from faoyam.core.models import OutboundMessage
    from faoyam.privacy.export import export_zip
    from faoyam.privacy.subjects import Subject

    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(**conf, data_dir=Path(tmp), mqtt_mode="off", jobs_enabled=False, log_level="WARNING",
                     _env_file=None)
        ctx = Context.build(s)
        import faoyam.models  # noqa: F401 - every domain's tables, so create_all makes them all

    await ctx.db.create_all()
        async with ctx.db.transaction() as session:
            user = User(email="bench@example.com", country="TH", nickname="Bench", age_confirmed_at=utcnow())
            session.add(user)
        for i in range(max(1, total_mb // FILE_MB)):
            key = await ctx.blobs.put_stream("mail_outbox", _chunks(FILE_MB * MB, i))
            async with ctx.db.transaction() as session:
                session.add(OutboundMessage(channel="email", recipient="bench@example.com", user_id=user.id,
                                            template="bench", body_key=key, backend="outbox"))
        subject = Subject(user_id=user.id)

        async def export() -> int:
            n = 0
            with open("/dev/null", "wb") as sink:
                async for chunk in export_zip(ctx.db, ctx.blobs, subject):
                    sink.write(chunk)
                    n += len(chunk)
            return n

        await export()  # warm: imports, statement caches, the page cache
        import psutil

        before = psutil.Process().memory_info().rss
        t0 = time.perf_counter()
        with PeakRSS() as rss:
            size = await export()
        seconds = time.perf_counter() - t0
        tracemalloc.start()
        await export()
        _, traced = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await ctx.close()
    return {"mb": total_mb, "zip_bytes": size, "rss_growth": rss.peak - before, "traced_peak": traced,
            "seconds": seconds}


def measure(total_mb: int, conf: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(total_mb), "--conf", json.dumps(conf)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=20, help="MB of blobs in the small account")
    ap.add_argument("--large", type=int, default=200, help="MB of blobs in the large account")
    ap.add_argument("--runs", type=int, default=3, help="measurements per size (medians are printed)")
    ap.add_argument("--s3", action="store_true", help="blobs on S3: a SeaweedFS server started for the run")
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--conf", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child, json.loads(args.conf)))))
        return
    conf: dict = {}
    server = None
    if args.s3:
        sys.path.insert(0, str(ROOT))
        from tests.s3server import SeaweedS3

        server = SeaweedS3.start()
        conf = server.settings_for(server.new_prefix())
        conf.pop("s3_part_size")  # the production default, not the tests' minimum
    results: dict[int, list[dict]] = {args.small: [], args.large: []}
    try:
        for _ in range(args.runs):
            for mb in (args.small, args.large):  # interleaved, so drift hits both alike
                results[mb].append(measure(mb, conf))
    finally:
        if server is not None:
            server.stop()

    def med(mb: int, key: str) -> float:
        return statistics.median(r[key] for r in results[mb])

    print(f"export of an account's ZIP, blobs {'on S3' if args.s3 else 'in the local store'}, "
          f"medians of {args.runs} runs (fresh process each)")
    for mb in (args.small, args.large):
        print(f"  {mb:>5} MB of blobs: peak RSS growth {med(mb, 'rss_growth') / MB:6.1f} MiB, "
              f"peak Python allocations {med(mb, 'traced_peak') / MB:6.1f} MiB, "
              f"{med(mb, 'zip_bytes') / MB / med(mb, 'seconds'):7.0f} MiB/s")
    rss_ratio = med(args.large, "rss_growth") / max(med(args.small, "rss_growth"), 1)
    traced_ratio = med(args.large, "traced_peak") / max(med(args.small, "traced_peak"), 1)
    print(f"ratio {args.large} MB / {args.small} MB: peak RSS growth {rss_ratio:.2f}, "
          f"peak Python allocations {traced_ratio:.2f}  (target ≈ 1)")


if __name__ == "__main__":
    main()
