"""The blob store: pictures, video segments, exports.

One interface, ``BlobStore``; the embedded default keeps files in a local directory, and
an S3-compatible store plugs in behind the same methods (the media issue adds it).

Keys are ``{kind}/{random}``: the kind must be declared with
``faoyam.privacy.declarations.blob_kind`` or ``put`` refuses it, so nothing lands in the
store that the privacy engine does not know how to export and erase.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

from faoyam.core.declarations import BLOB_KINDS


class BlobNotFound(KeyError):
    pass


class StorageFull(OSError):
    """The store has no room; nothing was written."""


class BlobStore(ABC):
    @staticmethod
    def new_key(kind: str) -> str:
        if kind not in BLOB_KINDS:
            raise ValueError(f"blob kind {kind!r} is not declared (privacy.declarations.blob_kind)")
        return f"{kind}/{secrets.token_hex(16)}"

    async def put(self, kind: str, data: bytes) -> str:
        key = self.new_key(kind)
        await self.write(key, data)
        return key

    @abstractmethod
    async def write(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    async def read(self, key: str) -> bytes: ...

    @abstractmethod
    async def delete(self, key: str) -> None:
        """Remove the blob; a missing blob is not an error (erasure is idempotent)."""

    @abstractmethod
    def keys(self, prefix: str = "") -> AsyncIterator[str]: ...


class LocalBlobStore(BlobStore):
    """Files under a directory; writes are atomic (temp file, fsync, rename)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        kind, _, name = key.partition("/")
        if not kind or not name or "/" in name or name.startswith(".") or ".." in key:
            raise ValueError(f"bad blob key {key!r}")
        return self.root / kind / name[:2] / name

    async def write(self, key: str, data: bytes) -> None:
        await asyncio.to_thread(self._write, self._path(key), data)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (28, 122):  # ENOSPC, EDQUOT
                raise StorageFull(exc.errno, "blob store is full") from exc
            raise

    async def read(self, key: str) -> bytes:
        try:
            return await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    async def delete(self, key: str) -> None:
        path = self._path(key)
        await asyncio.to_thread(path.unlink, True)

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        for kind_dir in sorted(self.root.iterdir()) if self.root.exists() else []:
            if not kind_dir.is_dir():
                continue
            for shard in sorted(kind_dir.iterdir()):
                for f in sorted(shard.iterdir()):
                    if f.name.startswith("."):
                        continue
                    key = f"{kind_dir.name}/{f.name}"
                    if key.startswith(prefix):
                        yield key


def make_blob_store(settings) -> BlobStore:
    return LocalBlobStore(settings.blobs_path)
