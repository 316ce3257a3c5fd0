"""Blob store throughput: streaming write + read through ``BlobStore`` vs the raw client.

For each backend, in the same run and on the same data (``--mb`` MiB in ``--chunk`` pieces):

- local: ``LocalBlobStore.write_stream`` + ``read_stream`` vs a raw file copy (plain
  ``open``/``write``/``fsync`` then ``read`` in a thread: the least Python can do);
- s3: ``S3BlobStore.write_stream`` + ``read_stream`` vs raw obstore (``put_async`` from the
  same async iterator, ``get_async`` streamed), against a SeaweedFS started for the run
  (or ``--endpoint``/``--bucket`` for another server).

It prints MiB/s (median of ``--runs``), the ratio store/raw (1.0 = no overhead), and the
peak RSS of the whole run next to the blob size: no path holds a whole blob, so a 200 MiB
blob must not lift the peak by 200 MiB. Not run in CI:

    .venv/bin/python bench/bench_blobs.py              # 200 MiB, 3 runs
    .venv/bin/python bench/bench_blobs.py --mb 50 --runs 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import resource
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import obstore  # noqa: E402

from faoyam.core.config import Settings  # noqa: E402
from faoyam.core.storage import BlobStore, LocalBlobStore  # noqa: E402
from faoyam.core.storage_s3 import S3BlobStore  # noqa: E402

MiB = 1 << 20


async def source(total: int, chunk: bytes):
    sent = 0
    while sent < total:
        piece = chunk[: total - sent]
        sent += len(piece)
        yield piece


async def timed(coro) -> tuple[float, object]:
    t = time.perf_counter()
    result = await coro
    return time.perf_counter() - t, result


async def drain(it) -> int:
    n = 0
    async for c in it:
        n += len(c)
    return n


# The two ways to move the same bytes ---------------------------------------------------


async def store_round(store: BlobStore, total: int, chunk: bytes, chunk_size: int) -> tuple[float, float]:
    key = BlobStore.new_key("alarm_snapshot")
    tw, size = await timed(store.write_stream(key, source(total, chunk)))
    tr, got = await timed(drain(store.read_stream(key, chunk_size=chunk_size)))
    assert size == got == total, (size, got, total)
    await store.delete(key)
    return tw, tr


def _raw_file(path: Path, total: int, chunk: bytes) -> tuple[float, float]:
    t = time.perf_counter()
    with open(path, "wb") as fh:
        sent = 0
        while sent < total:
            piece = chunk[: total - sent]
            fh.write(piece)
            sent += len(piece)
        fh.flush()
        os.fsync(fh.fileno())
    tw = time.perf_counter() - t
    t = time.perf_counter()
    got = 0
    with open(path, "rb") as fh:
        while piece := fh.read(len(chunk)):
            got += len(piece)
    tr = time.perf_counter() - t
    assert got == total
    path.unlink()
    return tw, tr


async def raw_file_round(root: Path, total: int, chunk: bytes, _chunk_size: int) -> tuple[float, float]:
    return await asyncio.to_thread(_raw_file, root / "raw.bin", total, chunk)


async def raw_obstore_round(store: S3BlobStore, total: int, chunk: bytes, chunk_size: int) -> tuple[float, float]:
    key = "bench/raw"
    tw, _ = await timed(obstore.put_async(store.s3, key, source(total, chunk), chunk_size=store.part_size,
                                          max_concurrency=store.max_concurrency))
    t = time.perf_counter()
    result = await obstore.get_async(store.s3, key)
    got = await drain(result.stream(min_chunk_size=chunk_size))
    tr = time.perf_counter() - t
    assert got == total
    await obstore.delete_async(store.s3, key)
    return tw, tr


async def compare(name: str, baseline_name: str, ours, raw, runs: int, total: int, chunk: bytes) -> list[str]:
    results = {"ours": [], "raw": []}
    for _ in range(runs):  # interleaved, so drift in the machine's load hits both
        results["ours"].append(await ours(total, chunk, len(chunk)))
        results["raw"].append(await raw(total, chunk, len(chunk)))
    rows = []
    mib = total / MiB
    for i, what in ((0, "write"), (1, "read")):
        o = mib / statistics.median(r[i] for r in results["ours"])
        b = mib / statistics.median(r[i] for r in results["raw"])
        rows.append(f"| {name} {what} | {o:8.1f} MiB/s | {baseline_name}: {b:8.1f} MiB/s | {o / b:5.2f} |")
    return rows


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=200, help="blob size in MiB")
    ap.add_argument("--chunk", type=int, default=1, help="chunk size in MiB (writes and reads)")
    ap.add_argument("--runs", type=int, default=3, help="runs per variant; medians are printed")
    ap.add_argument("--endpoint", help="an S3 endpoint to use instead of starting SeaweedFS")
    ap.add_argument("--bucket", default="faoyam-bench")
    ap.add_argument("--skip-s3", action="store_true")
    args = ap.parse_args()

    total, chunk = args.mb * MiB, os.urandom(args.chunk * MiB)
    print(f"blob {args.mb} MiB in {args.chunk} MiB chunks, median of {args.runs} runs, {os.cpu_count()} cores")
    rows = ["| figure | BlobStore | baseline (same run) | ratio |", "|---|---|---|---|"]

    with tempfile.TemporaryDirectory(prefix="faoyam-bench-blobs-") as tmp:
        root = Path(tmp)
        local = LocalBlobStore(root / "blobs")
        rows += await compare("local", "raw file copy", lambda *a: store_round(local, *a),
                              lambda *a: raw_file_round(root, *a), args.runs, total, chunk)

    if not args.skip_s3:
        server = None
        if args.endpoint:
            conf = {"blob_backend": "s3", "s3_endpoint": args.endpoint, "s3_bucket": args.bucket}
        else:
            from tests.s3server import SeaweedS3

            server = SeaweedS3.start()
            conf = server.settings_for("bench")
            conf.pop("s3_part_size")  # the production default, not the tests' minimum
        try:
            s3 = S3BlobStore.from_settings(Settings(**conf, _env_file=None))
            print(f"s3: {conf['s3_endpoint']}, part {s3.part_size // MiB} MiB, {s3.max_concurrency} in flight")
            rows += await compare("s3", "raw obstore", lambda *a: store_round(s3, *a),
                                  lambda *a: raw_obstore_round(s3, *a), args.runs, total, chunk)
        finally:
            if server:
                server.stop()
    print("\n".join(rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"peak RSS of the whole run: {peak:.0f} MiB for a {args.mb} MiB blob (a path holding the blob "
          f"would need at least {args.mb} MiB more than the interpreter and its libraries)")


if __name__ == "__main__":
    asyncio.run(main())
