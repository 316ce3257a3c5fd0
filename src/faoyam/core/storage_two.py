"""Two blob stores as one: the box (the deployment's store) and a cloud store, for
recordings a channel keeps in the cloud or in both places (``destination``).

Where a blob lives is written in its key, so every reader — playback, export, the privacy
engine's erasure and tombstone sweep — finds it through the one store it already has,
without a column to consult: ``kind/cloud-<hex>`` is in the cloud store only,
``kind/both-<hex>`` in both, any other key in the box only. Writes of a "both" key go to
both stores (the cloud first, then the box); reads try the box, then the cloud; deletes
delete from every store the key names (deleting a missing blob is not an error).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from faoyam.core.storage import DEFAULT_CHUNK, BlobNotFound, BlobStat, BlobStore, BlobWriter

CLOUD, BOTH = "cloud-", "both-"


class _Tee(BlobWriter):
    """One writer for a blob kept in two stores: committed in both, or in neither."""

    def __init__(self, key: str, writers: list[BlobWriter]):
        super().__init__(key)
        self.writers = writers
        self._open: list[BlobWriter] = []

    async def _start(self) -> None:
        for w in self.writers:
            await w.__aenter__()
            self._open.append(w)

    async def _write(self, chunk: bytes) -> None:
        for w in self._open:
            await w.write(chunk)

    async def _commit(self) -> None:
        for w in self._open:
            await w.__aexit__(None, None, None)
        self._open = []

    async def _abort(self) -> None:
        for w in self._open:
            try:
                await w.__aexit__(RuntimeError, RuntimeError("aborted"), None)
            except Exception:  # noqa: BLE001 - abort the others too
                pass
        self._open = []


class TwoStores(BlobStore):
    def __init__(self, box: BlobStore, cloud: BlobStore):
        self.box, self.cloud = box, cloud

    @staticmethod
    def new_key_for(kind: str, destination: str) -> str:
        """A new key of ``kind`` for ``destination`` (``local``, ``cloud`` or ``both``)."""
        marker = {"cloud": CLOUD, "both": BOTH}.get(destination, "")
        BlobStore.new_key(kind)  # the kind must be declared
        return f"{kind}/{marker}{secrets.token_hex(16)}"

    def stores_of(self, key: str) -> list[BlobStore]:
        _, name = self.check_key(key)
        if name.startswith(CLOUD):
            return [self.cloud]
        if name.startswith(BOTH):
            return [self.cloud, self.box]
        return [self.box]

    async def write(self, key: str, data: bytes) -> None:
        for store in self.stores_of(key):
            await store.write(key, data)

    def open_writer(self, key: str) -> BlobWriter:
        stores = self.stores_of(key)
        if len(stores) == 1:
            return stores[0].open_writer(key)
        return _Tee(key, [s.open_writer(key) for s in stores])

    async def adopt(self, key: str, path: Path, chunk_size: int = DEFAULT_CHUNK) -> int:
        stores = self.stores_of(key)
        if len(stores) == 1:
            return await stores[0].adopt(key, path, chunk_size)
        # The cloud gets a copy, then the box takes the file itself (a rename, locally).
        await stores[0].copy_file(key, path, chunk_size)
        return await stores[1].adopt(key, path, chunk_size)

    def _readers(self, key: str) -> list[BlobStore]:
        return list(reversed(self.stores_of(key)))  # the box first

    async def read(self, key: str) -> bytes:
        for store in self._readers(key):
            try:
                return await store.read(key)
            except BlobNotFound:
                continue
        raise BlobNotFound(key)

    async def read_stream(self, key: str, start: int = 0, end: int | None = None,
                          chunk_size: int = DEFAULT_CHUNK) -> AsyncIterator[bytes]:
        for store in self._readers(key):
            if await store.exists(key):
                async for chunk in store.read_stream(key, start, end, chunk_size):
                    yield chunk
                return
        raise BlobNotFound(key)

    async def stat(self, key: str) -> BlobStat:
        for store in self._readers(key):
            try:
                return await store.stat(key)
            except BlobNotFound:
                continue
        raise BlobNotFound(key)

    async def delete(self, key: str) -> None:
        for store in self.stores_of(key):
            await store.delete(key)

    async def keys(self, prefix: str = "") -> AsyncIterator[str]:
        async for key in self.box.keys(prefix):
            yield key
        async for key in self.cloud.keys(prefix):
            if key.partition("/")[2].startswith(CLOUD):  # "both-" keys were listed with the box
                yield key

    async def close(self) -> None:
        await self.box.close()
        await self.cloud.close()
