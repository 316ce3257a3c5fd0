"""The blob store contract, run on every backend: local files and S3 (a real SeaweedFS).

Each test takes ``store`` (parametrized ``local`` / ``s3``); the S3 case skips, saying why,
when the ``weed`` binary is missing or does not start (see ``tests/s3server.py``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from faoyam.core.storage import BlobNotFound, BlobStat, BlobStore, LocalBlobStore, StorageFull

MB = 1 << 20


@pytest.fixture(params=["local", "s3"])
def backend(request) -> str:
    return request.param


@pytest.fixture
async def store(backend, tmp_path, request):
    if backend == "local":
        yield LocalBlobStore(tmp_path / "blobs")
        return
    s3 = request.getfixturevalue("s3_server")
    st = await s3.fresh_store()
    yield st
    await st.close()


@pytest.fixture
def leftovers(backend, store, request):
    """What a failed or finished write left behind besides blobs: temp files (local),
    unfinished multipart uploads (S3). Returns an async callable."""
    if backend == "local":
        async def local() -> list[str]:
            return [str(p) for p in store.root.rglob(".*") if p.is_file()]
        return local
    return lambda: request.getfixturevalue("s3_server").pending_uploads(store)


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic, non-repeating-looking bytes (so a shifted range cannot pass)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


async def chunked(data: bytes, size: int):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def collect(it) -> bytes:
    return b"".join([c async for c in it])


async def test_whole_blob_round_trip_and_idempotent_delete(store: BlobStore):
    key = await store.put("profile_photo", b"abc")
    assert key.startswith("profile_photo/")
    assert await store.read(key) == b"abc"
    assert [k async for k in store.keys()] == [key]
    await store.delete(key)
    await store.delete(key)  # idempotent: erasure may run twice
    with pytest.raises(BlobNotFound):
        await store.read(key)
    assert [k async for k in store.keys()] == []


async def test_streaming_round_trip_of_a_multi_megabyte_blob(store: BlobStore):
    data = pattern(5 * MB + 123)
    key = await store.put_stream("alarm_snapshot", chunked(data, 256 * 1024))
    chunks = [c async for c in store.read_stream(key, chunk_size=MB)]
    assert b"".join(chunks) == data
    assert len(chunks) >= 5  # streamed in pieces, not one whole-blob read
    assert max(len(c) for c in chunks) <= 2 * MB
    assert await store.read(key) == data


async def test_write_stream_returns_the_size_and_replaces_atomically(store: BlobStore):
    key = BlobStore.new_key("device_cover")
    assert await store.write_stream(key, chunked(b"old" * 1000, 100)) == 3000
    assert await store.write_stream(key, chunked(b"new!" * 10, 7)) == 40
    assert await store.read(key) == b"new!" * 10


@pytest.mark.parametrize(("start", "end"), [
    (0, None), (0, 1), (1, 2), (100, 5000), (4095, 4096), (0, 4096), (4000, None),
    (4096, None), (4096, 5000), (5000, None), (10, 10), (0, 10_000),
])
async def test_range_reads(store: BlobStore, start, end):
    data = pattern(4096, seed=1)
    key = BlobStore.new_key("alarm_snapshot")
    await store.write(key, data)
    got = await collect(store.read_stream(key, start, end, chunk_size=1000))
    assert got == data[start:end]


async def test_range_read_in_small_chunks_and_bad_ranges(store: BlobStore):
    data = pattern(10_000, seed=2)
    key = await store.put("alarm_snapshot", data)
    chunks = [c async for c in store.read_stream(key, 1234, 8765, chunk_size=1000)]
    assert b"".join(chunks) == data[1234:8765]
    for bad in ((-1, None), (10, 5)):
        with pytest.raises(ValueError):
            await collect(store.read_stream(key, *bad))


async def test_reading_a_missing_blob_is_blob_not_found(store: BlobStore):
    key = BlobStore.new_key("alarm_snapshot")
    with pytest.raises(BlobNotFound):
        await collect(store.read_stream(key))
    with pytest.raises(BlobNotFound):
        await collect(store.read_stream(key, 5, 10))
    with pytest.raises(BlobNotFound):
        await store.stat(key)
    assert not await store.exists(key)


async def test_stat_and_exists(store: BlobStore):
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)  # clock skew of the server
    key = await store.put("alarm_snapshot", pattern(12_345))
    st = await store.stat(key)
    assert isinstance(st, BlobStat) and st.key == key and st.size == 12_345
    assert st.modified.tzinfo is not None and st.modified.utcoffset() == dt.timedelta(0)
    assert before <= st.modified <= dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    assert await store.exists(key)
    empty = await store.put("alarm_snapshot", b"")
    assert (await store.stat(empty)).size == 0 and await store.read(empty) == b""


class Boom(RuntimeError):
    pass


async def test_a_writer_that_raises_leaves_nothing_behind(store: BlobStore, leftovers):
    key = BlobStore.new_key("alarm_snapshot")
    with pytest.raises(Boom):
        async with store.open_writer(key) as w:
            await w.write(pattern(3 * MB))
            raise Boom()
    assert not await store.exists(key)
    assert [k async for k in store.keys()] == []
    assert await leftovers() == []


async def test_a_failing_source_leaves_the_old_blob_intact(store: BlobStore, leftovers):
    key = await store.put("device_cover", b"the old cover")

    async def broken():
        yield b"half a new cov"
        raise Boom()

    with pytest.raises(Boom):
        await store.write_stream(key, broken())
    assert await store.read(key) == b"the old cover"
    assert await leftovers() == []


async def test_multipart_a_blob_larger_than_the_part_size(store: BlobStore, leftovers):
    part = getattr(store, "part_size", 5 * MB)
    data = pattern(2 * part + 1234, seed=3)
    key = BlobStore.new_key("alarm_snapshot")
    async with store.open_writer(key) as w:
        for i in range(0, len(data), 700_001):  # odd chunk size: parts never align with writes
            await w.write(data[i:i + 700_001])
        assert w.size == len(data) and not await store.exists(key)  # not visible before commit
    assert (await store.stat(key)).size == len(data)
    assert hashlib.sha256(await collect(store.read_stream(key))).digest() == hashlib.sha256(data).digest()
    tail = await collect(store.read_stream(key, part - 10, part + 10))
    assert tail == data[part - 10:part + 10]  # a range across the part boundary
    assert await leftovers() == []


async def test_a_writer_that_raises_mid_multipart_aborts_the_upload(store: BlobStore, leftovers):
    part = getattr(store, "part_size", 5 * MB)
    key = BlobStore.new_key("alarm_snapshot")
    with pytest.raises(Boom):
        async with store.open_writer(key) as w:
            for _ in range(3):
                await w.write(pattern(part, seed=4))
            # The partial blob exists somewhere now (temp file, open multipart upload):
            # this is what the check below must find gone.
            assert await leftovers() != []
            raise Boom()
    assert not await store.exists(key)
    assert await leftovers() == []


async def test_keys_listing_by_prefix(store: BlobStore):
    a = {await store.put("alarm_snapshot", b"a") for _ in range(3)}
    c = {await store.put("device_cover", b"c") for _ in range(2)}
    assert set([k async for k in store.keys()]) == a | c
    assert set([k async for k in store.keys("alarm_snapshot/")]) == a
    assert set([k async for k in store.keys("device_")]) == c
    one = sorted(a)[0]
    assert [k async for k in store.keys(one[:len("alarm_snapshot/") + 32])] == [one]
    assert [k async for k in store.keys("alarm_snapshot_other/")] == []
    assert [k async for k in store.keys("nothing")] == []


async def test_stats_list_sizes_and_times_by_prefix(store: BlobStore):
    a = await store.put("alarm_snapshot", b"12345")
    c = await store.put("device_cover", pattern(7000))
    stats = {s.key: s async for s in store.stats()}
    assert {k: s.size for k, s in stats.items()} == {a: 5, c: 7000}
    assert stats[a] == await store.stat(a)
    assert [s.key async for s in store.stats("device_cover/")] == [c]


async def test_undeclared_kind_is_refused(store: BlobStore):
    with pytest.raises(ValueError, match="not declared"):
        await store.put("secret_dossier", b"x")
    with pytest.raises(ValueError, match="not declared"):
        await store.put_stream("secret_dossier", chunked(b"x", 1))
    assert [k async for k in store.keys()] == []


BAD_KEYS = ("../etc/passwd", "profile_photo/../../x", "profile_photo/", "noslash", "/abs",
            "profile_photo/a/b", "profile_photo/.hidden", ".kind/x", "kind/a\\b", "kind/a\x00b")


@pytest.mark.parametrize("bad", BAD_KEYS)
async def test_bad_keys_are_refused_everywhere(store: BlobStore, bad):
    with pytest.raises(ValueError):
        await store.write(bad, b"x")
    with pytest.raises(ValueError):
        store.open_writer(bad)
    with pytest.raises(ValueError):
        await store.read(bad)
    with pytest.raises(ValueError):
        await collect(store.read_stream(bad))
    with pytest.raises(ValueError):
        await store.stat(bad)
    with pytest.raises(ValueError):
        await store.delete(bad)


# Local only --------------------------------------------------------------------------


async def test_local_store_full_disk_is_storage_full_and_leaves_nothing(tmp_path, monkeypatch):
    store = LocalBlobStore(tmp_path)

    class FullFile:
        def __init__(self, fh):
            self.fh = fh

        def write(self, data):
            raise OSError(28, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.fh, name)

    import faoyam.core.storage as storage

    real_open = open

    def full_open(path, mode="r", *a, **kw):
        fh = real_open(path, mode, *a, **kw)
        return FullFile(fh) if "w" in mode else fh

    monkeypatch.setattr(storage, "open", full_open, raising=False)
    key = BlobStore.new_key("alarm_snapshot")
    with pytest.raises(StorageFull):
        await store.write(key, b"x" * 10)
    with pytest.raises(StorageFull):
        await store.write_stream(key, chunked(b"y" * 100, 10))
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


async def test_local_writer_is_invisible_until_commit(tmp_path):
    store = LocalBlobStore(tmp_path)
    key = BlobStore.new_key("alarm_snapshot")
    async with store.open_writer(key) as w:
        await w.write(b"part one ")
        assert not await store.exists(key)
        assert [k async for k in store.keys()] == []  # the temp file is hidden from listings
        await w.write(b"part two")
    assert await store.read(key) == b"part one part two"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [key.split("/")[1]]
    assert os.stat(tmp_path / "alarm_snapshot" / key.split("/")[1][:2] / key.split("/")[1]).st_size == 17


# S3 only ----------------------------------------------------------------------------


class _FullS3(BaseHTTPRequestHandler):
    """An S3 endpoint that is out of space, answering as MinIO does (HTTP 507). A stand-in
    for the one answer SeaweedFS cannot be made to give (it grows volumes on demand)."""

    def _full(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"<?xml version='1.0'?><Error><Code>XMinioStorageFull</Code><Message>full</Message></Error>"
        self.send_response(507)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_PUT = do_POST = _full

    def log_message(self, *args):
        pass


async def test_s3_store_full_is_storage_full(tmp_path):
    from faoyam.core.config import Settings
    from faoyam.core.storage_s3 import S3BlobStore

    server = ThreadingHTTPServer(("127.0.0.1", 0), _FullS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        store = S3BlobStore.from_settings(Settings(
            data_dir=tmp_path, blob_backend="s3", s3_endpoint=f"http://127.0.0.1:{server.server_port}",
            s3_bucket="b", s3_access_key="k", s3_secret_key="s", s3_timeout_seconds=5, _env_file=None))
        key = BlobStore.new_key("alarm_snapshot")
        with pytest.raises(StorageFull):
            await store.write(key, b"x" * 100)
        with pytest.raises(StorageFull):
            await store.write_stream(key, chunked(b"y" * 1000, 100))
    finally:
        server.shutdown()
        server.server_close()


# Choosing a backend --------------------------------------------------------------------


def test_settings_pick_the_backend(tmp_path, monkeypatch):
    from faoyam.core.config import Settings
    from faoyam.core.blobstores import make_blob_store
    from faoyam.core.storage_s3 import S3BlobStore

    assert isinstance(make_blob_store(Settings(data_dir=tmp_path, _env_file=None)), LocalBlobStore)
    monkeypatch.setenv("FAOYAM_BLOB_BACKEND", "s3")
    monkeypatch.setenv("FAOYAM_S3_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("FAOYAM_S3_BUCKET", "cams")
    monkeypatch.setenv("FAOYAM_S3_PREFIX", "site-a")
    monkeypatch.setenv("FAOYAM_S3_PART_SIZE", str(6 * MB))
    store = make_blob_store(Settings(data_dir=tmp_path, _env_file=None))
    assert isinstance(store, S3BlobStore) and store.part_size == 6 * MB and store.s3.prefix == "site-a"
    monkeypatch.delenv("FAOYAM_S3_BUCKET")
    with pytest.raises(ValueError, match="FAOYAM_S3_BUCKET"):
        make_blob_store(Settings(data_dir=tmp_path, _env_file=None))
    monkeypatch.setenv("FAOYAM_S3_PART_SIZE", str(MB))  # below S3's 5 MiB floor for parts
    with pytest.raises(ValueError):
        Settings(data_dir=tmp_path, _env_file=None)
