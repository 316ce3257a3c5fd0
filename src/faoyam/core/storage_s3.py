"""The S3 blob store: any S3-compatible server (AWS S3, SeaweedFS, MinIO, Ceph RGW, ...).

Built on obstore (Python bindings of the Rust ``object_store`` crate); why that client is
in ``docs/decisions/s3-client.md``. The store maps the ``BlobStore`` contract onto S3:

- keys are object names under an optional prefix (``s3_prefix``), so several deployments
  (or test runs) can share a bucket;
- ``open_writer`` buffers up to one part (``s3_part_size``) and, past that, turns into a
  multipart upload with at most ``s3_max_concurrency`` parts in flight: memory per writer is
  bounded by about ``(concurrency + 1) * part_size``, whatever the blob's size. Leaving the
  block with an exception aborts the upload (AbortMultipartUpload), so no parts linger;
- ``read_stream`` is one ranged GET whose body is streamed in ``chunk_size`` pieces;
- a server out of space (HTTP 507, quota errors) raises ``StorageFull``, as ENOSPC does
  on the local store.

An object appears only when its upload completes (S3 PUT and CompleteMultipartUpload are
atomic), which gives the same all-or-nothing guarantee as the local temp-file rename.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import re
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import GenericError
from obstore.store import S3Store

from faoyam.core.storage import (DEFAULT_CHUNK, BlobNotFound, BlobStat, BlobStore, BlobWriter, StorageFull,
                                 check_range)

if TYPE_CHECKING:
    from obstore import AsyncWritableFile

MIN_PART_SIZE = 5 * 1024 * 1024  # S3's floor for every part but the last

# How S3-compatible servers say "no room": HTTP 507 (MinIO's XMinioStorageFull, Ceph),
# or a quota error code. obstore reports them as text inside its error, after retries.
_FULL = re.compile(r"\b507\b|StorageFull|QuotaExceeded|InsufficientStorage")


@contextlib.contextmanager
def _full_is_storage_full() -> Iterator[None]:
    """Turn the server's "storage full" into ``StorageFull``, as the local store does for
    ENOSPC, so callers handle one error whatever the backend."""
    try:
        yield
    except Exception as exc:
        if not isinstance(exc, StorageFull) and _FULL.search(str(exc)):
            raise StorageFull(errno.ENOSPC, "blob store is full") from exc
        raise


def _stat(key: str, meta) -> BlobStat:
    return BlobStat(key=key, size=meta["size"], modified=meta["last_modified"].astimezone(dt.UTC))


class _EmptyRange(Exception):
    pass


class _S3Writer(BlobWriter):
    def __init__(self, key: str, store: S3BlobStore):
        super().__init__(key)
        self.store = store
        self.w: AsyncWritableFile | None = None

    async def _start(self) -> None:
        self.w = obstore.open_writer_async(self.store.s3, self.key, buffer_size=self.store.part_size,
                                           max_concurrency=self.store.max_concurrency)

    async def _write(self, chunk: bytes) -> None:
        with _full_is_storage_full():
            await self.w.write(chunk)

    async def _commit(self) -> None:
        with _full_is_storage_full():
            await self.w.close()

    async def _abort(self) -> None:
        if self.w is None:
            return
        w, self.w = self.w, None
        try:
            # obstore aborts the upload (and drops the buffer) when its context manager
            # exits with an exception; it has no public abort() of its own.
            await w.__aexit__(RuntimeError, RuntimeError("blob write abandoned"), None)
        except Exception:  # noqa: BLE001 - already closed/failed: nothing left to abort
            pass


class S3BlobStore(BlobStore):
    def __init__(self, s3: S3Store, *, part_size: int = 8 * 1024 * 1024, max_concurrency: int = 4):
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"S3 parts must be at least {MIN_PART_SIZE} bytes")
        self.s3 = s3
        self.part_size = part_size
        self.max_concurrency = max_concurrency

    @classmethod
    def from_settings(cls, settings) -> S3BlobStore:
        if not settings.s3_bucket:
            raise ValueError("FAOYAM_S3_BUCKET must be set when FAOYAM_BLOB_BACKEND=s3")
        config: dict = {}
        if settings.s3_endpoint:
            config["endpoint"] = settings.s3_endpoint
        if settings.s3_access_key:
            # Without explicit keys obstore uses the usual AWS chain (AWS_* variables,
            # instance or container credentials), which is what a cloud deployment wants.
            config["access_key_id"] = settings.s3_access_key
            config["secret_access_key"] = settings.s3_secret_key or ""
        s3 = S3Store(
            settings.s3_bucket,
            prefix=settings.s3_prefix or None,
            region=settings.s3_region,
            client_options={
                "allow_http": bool(settings.s3_endpoint and settings.s3_endpoint.startswith("http://")),
                "connect_timeout": dt.timedelta(seconds=5),
                "timeout": dt.timedelta(seconds=settings.s3_timeout_seconds),
            },
            retry_config={
                "max_retries": 3,
                "retry_timeout": dt.timedelta(seconds=settings.s3_timeout_seconds),
                "backoff": {"init_backoff": dt.timedelta(milliseconds=100), "max_backoff": dt.timedelta(seconds=5),
                            "base": 2},
            },
            **config,
        )
        return cls(s3, part_size=settings.s3_part_size, max_concurrency=settings.s3_max_concurrency)

    async def write(self, key: str, data: bytes) -> None:
        self.check_key(key)
        # One request for a small blob; obstore switches to multipart past one part.
        with _full_is_storage_full():
            await obstore.put_async(self.s3, key, data, chunk_size=self.part_size,
                                    max_concurrency=self.max_concurrency)

    def open_writer(self, key: str) -> BlobWriter:
        self.check_key(key)
        return _S3Writer(key, self)

    async def read(self, key: str) -> bytes:
        self.check_key(key)
        try:
            result = await obstore.get_async(self.s3, key)
            return bytes(await result.bytes_async())
        except FileNotFoundError:  # obstore raises the built-in for NoSuchKey
            raise BlobNotFound(key) from None

    async def read_stream(self, key: str, start: int = 0, end: int | None = None,
                          chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        self.check_key(key)
        check_range(start, end)
        options = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        try:
            if end == start:
                raise _EmptyRange
            result = await obstore.get_async(self.s3, key, options=options)
        except FileNotFoundError:  # obstore raises the built-in for NoSuchKey
            raise BlobNotFound(key) from None
        except (_EmptyRange, GenericError):
            # S3 answers 416 to a range that starts at or past the end (and obstore refuses
            # an empty one); the contract says "nothing", so look at the size to tell that
            # from a real error. Only the unusual case pays for the HEAD.
            size = (await self.stat(key)).size
            if start >= (size if end is None else min(size, end)):
                return
            raise
        async for chunk in result.stream(min_chunk_size=chunk_size):
            yield bytes(chunk)

    async def stat(self, key: str) -> BlobStat:
        self.check_key(key)
        try:
            meta = await obstore.head_async(self.s3, key)
        except FileNotFoundError:  # obstore raises the built-in for NoSuchKey
            raise BlobNotFound(key) from None
        return _stat(key, meta)

    async def delete(self, key: str) -> None:
        self.check_key(key)
        await obstore.delete_async(self.s3, key)  # S3 DELETE of a missing object succeeds

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        async for meta in self._list(prefix):
            yield meta["path"]

    async def stats(self, prefix: str = "") -> AsyncIterator[BlobStat]:
        # The listing carries size and time already: no HEAD per blob.
        async for meta in self._list(prefix):
            yield _stat(meta["path"], meta)

    async def _list(self, prefix: str):
        # S3 lists by string prefix, but object_store lists by path segment ("a/b" lists
        # "a/b/..."), so ask for the whole segments of the prefix and filter the rest here.
        segments = prefix.rpartition("/")[0]
        async for batch in obstore.list(self.s3, prefix=segments or None, chunk_size=1000):
            for meta in batch:
                if meta["path"].startswith(prefix):
                    yield meta
