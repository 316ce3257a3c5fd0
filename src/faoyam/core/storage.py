"""The blob store: pictures, video segments, exports.

One interface, ``BlobStore``, with two backends behind it: ``LocalBlobStore`` (files in a
local directory, the embedded default, here) and ``S3BlobStore`` (any S3-compatible
server, ``faoyam.core.storage_s3``). ``faoyam.core.blobstores.make_blob_store(settings)`` picks one.

Keys are ``{kind}/{random}``: the kind must be declared with
``faoyam.core.declarations.blob_kind`` or ``put`` refuses it, so nothing lands in the
store that the privacy engine does not know how to export and erase.

Video segments and exports are large, so every path has a streaming form that never holds
a whole blob in memory:

- writing: ``open_writer(key)`` is an async context manager; chunks written to it become
  the blob only when the block exits cleanly (a temp file renamed into place; an S3
  multipart upload completed). An exception inside the block leaves nothing behind.
  ``write_stream`` and ``put_stream`` feed it from an async iterator.
- reading: ``read_stream(key, start, end)`` yields chunks of the byte range
  ``[start, end)`` (for seeking in a video), ``stat`` gives size and modification time,
  ``keys``/``stats`` list by prefix without building the whole list.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from faoyam.core.declarations import BLOB_KINDS

DEFAULT_CHUNK = 1 << 20  # 1 MiB: big enough to amortise a thread hop or a request


class BlobNotFound(KeyError):
    pass


class StorageFull(OSError):
    """The store has no room; nothing was written."""


def storage_full_from(exc: OSError) -> OSError:
    """The error to raise for ``exc``: ``StorageFull`` when the disk or quota is full."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(exc.errno, "blob store is full")
    return exc


@dataclass(frozen=True)
class BlobStat:
    key: str
    size: int
    modified: dt.datetime  # UTC, timezone-aware


class BlobWriter(ABC):
    """Receives one blob chunk by chunk; use it as ``async with store.open_writer(key) as w``.

    On a clean exit the blob is committed (it appears whole, atomically); when the block
    raises, everything written so far is discarded and the exception propagates.
    """

    def __init__(self, key: str):
        self.key = key
        self.size = 0  # bytes written so far

    async def write(self, chunk: bytes) -> None:
        if chunk:
            await self._write(chunk)
            self.size += len(chunk)

    @abstractmethod
    async def _start(self) -> None:
        """Prepare the destination (temp file, multipart upload)."""

    @abstractmethod
    async def _write(self, chunk: bytes) -> None: ...

    @abstractmethod
    async def _commit(self) -> None:
        """Make the blob visible under its key, whole."""

    @abstractmethod
    async def _abort(self) -> None:
        """Discard what was written; must not raise for an already-clean state."""

    async def __aenter__(self) -> BlobWriter:
        await self._start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if exc_type is None:
            try:
                await self._commit()
            except BaseException:
                await self._abort()
                raise
        else:
            await self._abort()


class BlobStore(ABC):
    @staticmethod
    def new_key(kind: str) -> str:
        if kind not in BLOB_KINDS:
            raise ValueError(f"blob kind {kind!r} is not declared (core.declarations.blob_kind)")
        return f"{kind}/{secrets.token_hex(16)}"

    @staticmethod
    def check_key(key: str) -> tuple[str, str]:
        """``(kind, name)`` of a well-formed key; ``ValueError`` for anything that could
        escape its place (``..``, extra slashes, hidden names, empty parts)."""
        kind, _, name = key.partition("/")
        if (not kind or not name or "/" in name or name.startswith(".") or kind.startswith(".")
                or ".." in key or "\\" in key or "\x00" in key):
            raise ValueError(f"bad blob key {key!r}")
        return kind, name

    # Whole-blob conveniences, built on the primitives ------------------------------------
    async def put(self, kind: str, data: bytes) -> str:
        key = self.new_key(kind)
        await self.write(key, data)
        return key

    async def put_stream(self, kind: str, chunks: AsyncIterable[bytes]) -> str:
        """Store a new blob of ``kind`` from ``chunks``; returns its key."""
        key = self.new_key(kind)
        await self.write_stream(key, chunks)
        return key

    async def write_stream(self, key: str, chunks: AsyncIterable[bytes]) -> int:
        """Write ``chunks`` as the blob ``key`` (atomically); returns its size."""
        async with self.open_writer(key) as w:
            async for chunk in chunks:
                await w.write(chunk)
        return w.size

    async def copy_file(self, key: str, path: Path, chunk_size: int = DEFAULT_CHUNK) -> int:
        """Store the local file ``path`` as the blob ``key``, streamed (never whole in memory)."""
        fh = await asyncio.to_thread(open, path, "rb")
        try:
            async with self.open_writer(key) as w:
                while chunk := await asyncio.to_thread(fh.read, chunk_size):
                    await w.write(chunk)
        finally:
            await asyncio.to_thread(fh.close)
        return w.size

    async def adopt(self, key: str, path: Path, chunk_size: int = DEFAULT_CHUNK) -> int:
        """Take the finished local file ``path`` as the blob ``key`` and remove the file;
        returns its size. This default copies it (``copy_file``); the local backend renames
        it into place instead (no copy)."""
        size = await self.copy_file(key, path, chunk_size)
        await asyncio.to_thread(Path(path).unlink, True)
        return size

    async def exists(self, key: str) -> bool:
        try:
            await self.stat(key)
        except BlobNotFound:
            return False
        return True

    async def stats(self, prefix: str = "") -> AsyncIterator[BlobStat]:
        """``BlobStat`` of every blob whose key starts with ``prefix`` — what a reconciler
        needs to leave alone blobs too young to have their row committed yet. A blob
        deleted while listing is skipped."""
        async for key in self.keys(prefix):
            try:
                yield await self.stat(key)
            except BlobNotFound:
                continue

    async def close(self) -> None:
        """Release connections; the default holds none."""

    # What a backend provides -----------------------------------------------------------
    @abstractmethod
    async def write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def open_writer(self, key: str) -> BlobWriter:
        """A writer for ``key`` (validated now); see ``BlobWriter``."""

    @abstractmethod
    async def read(self, key: str) -> bytes: ...

    @abstractmethod
    def read_stream(self, key: str, start: int = 0, end: int | None = None,
                    chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        """Chunks of bytes ``[start, end)`` of the blob (``end`` exclusive, ``None``: to the
        end). The range is clipped to the blob: a ``start`` at or past its size yields
        nothing. ``BlobNotFound`` (on the first iteration) when the blob is missing."""

    @abstractmethod
    async def stat(self, key: str) -> BlobStat:
        """Size and modification time; ``BlobNotFound`` when missing."""

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error (erasure is idempotent)."""

    @abstractmethod
    def keys(self, prefix: str = "") -> AsyncIterator[str]: ...


def check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"bad byte range [{start}, {end})")


class _LocalWriter(BlobWriter):
    """A temp file next to the destination, fsynced and renamed into place on commit."""

    def __init__(self, key: str, path: Path):
        super().__init__(key)
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        self.fh: BinaryIO | None = None

    async def _start(self) -> None:
        def start() -> BinaryIO:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return open(self.tmp, "wb")

        self.fh = await self._io(start)

    async def _write(self, chunk: bytes) -> None:
        await self._io(self.fh.write, chunk)

    async def _commit(self) -> None:
        def commit() -> None:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.tmp, self.path)

        await self._io(commit)

    async def _abort(self) -> None:
        def abort() -> None:
            if self.fh is not None:
                try:
                    self.fh.close()
                except OSError:
                    pass  # a full disk can fail the final flush too; the file goes anyway
            self.tmp.unlink(missing_ok=True)

        await asyncio.to_thread(abort)

    @staticmethod
    async def _io(fn, *args):
        """Run blocking file work in a thread; a full disk becomes ``StorageFull``."""
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as exc:
            raise storage_full_from(exc) from exc


class LocalBlobStore(BlobStore):
    """Files under a directory, sharded ``{kind}/{name[:2]}/{name}``; writes are atomic
    (temp file, fsync, rename), so a reader never sees half a blob."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        kind, name = self.check_key(key)
        return self.root / kind / name[:2] / name

    async def write(self, key: str, data: bytes) -> None:
        async with self.open_writer(key) as w:
            await w.write(data)

    def open_writer(self, key: str) -> BlobWriter:
        return _LocalWriter(key, self._path(key))

    async def adopt(self, key: str, path: Path, chunk_size: int = DEFAULT_CHUNK) -> int:
        """Rename ``path`` into place: atomic, and no byte copied, when it is on the store's
        file system (the recorder's spool is, by default: both live in the data directory).
        The caller has fsynced the file; the directory entry is fsynced here. On another
        file system it is copied like any other store does it."""
        dest = self._path(key)

        def move() -> int:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            return dest.stat().st_size

        try:
            return await asyncio.to_thread(move)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise storage_full_from(exc) from exc
        return await super().adopt(key, path, chunk_size)

    async def read(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    async def read_stream(self, key: str, start: int = 0, end: int | None = None,
                          chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        check_range(start, end)
        path = self._path(key)
        try:
            fh = await asyncio.to_thread(open, path, "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        try:
            await asyncio.to_thread(fh.seek, start)
            pos = start
            while end is None or pos < end:
                want = chunk_size if end is None else min(chunk_size, end - pos)
                chunk = await asyncio.to_thread(fh.read, want)
                if not chunk:
                    break
                pos += len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(fh.close)

    async def stat(self, key: str) -> BlobStat:
        try:
            st = await asyncio.to_thread(os.stat, self._path(key))
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        return BlobStat(key=key, size=st.st_size, modified=dt.datetime.fromtimestamp(st.st_mtime, dt.UTC))

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, True)

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        # Listing walks the directory in a thread, one kind at a time, so a store with
        # millions of files neither blocks the loop nor builds one giant list.
        kind_prefix, slash, _ = prefix.partition("/")
        for kind in await asyncio.to_thread(self._kinds, kind_prefix, bool(slash)):
            for key in await asyncio.to_thread(self._keys_of, kind):
                if key.startswith(prefix):
                    yield key

    def _kinds(self, kind_prefix: str, exact: bool) -> list[str]:
        if not self.root.exists():
            return []
        return sorted(d.name for d in self.root.iterdir() if d.is_dir() and not d.name.startswith(".")
                      and (d.name == kind_prefix if exact else d.name.startswith(kind_prefix)))

    def _keys_of(self, kind: str) -> list[str]:
        out = []
        for shard in sorted((self.root / kind).iterdir()):
            if shard.is_dir():
                out.extend(f"{kind}/{f.name}" for f in sorted(shard.iterdir()) if not f.name.startswith("."))
        return out
