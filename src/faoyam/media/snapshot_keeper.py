"""The last snapshot of each running channel, kept for the device cards on Home.

While a stream runs, its hub holds the current GOP. Every ``scan`` seconds the keeper
looks at the hubs of this worker; for a channel whose last kept picture is older than
``interval`` (a few minutes) it decodes the hub's latest keyframe to JPEG — in a worker
thread, never on the event loop (:func:`~faoyam.media.snapshot.decode_keyframe`) — and
hands it to ``store(channel, jpeg)``, which the devices domain implements
(:func:`faoyam.devices.live_snapshots.store_snapshot`: a declared blob, replaced through
``blob_transaction``).

One picture per channel, whichever of its streams runs (the main stream when both do).
A keyframe already kept is not kept again (a hub whose camera went quiet still holds its
last GOP), and nothing runs for channels nobody streams: the keeper costs one decode per
running channel per interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from faoyam.media.hub import StreamHubs
from faoyam.media.ids import ChannelId
from faoyam.media.snapshot import SnapshotError, decode_keyframe, latest_keyframe

log = logging.getLogger(__name__)

Store = Callable[[ChannelId, bytes], Awaitable[bool]]  # False: not kept (no such bound channel)

DEFAULT_INTERVAL = 180.0
MAX_WIDTH = 1280  # a card is small; a 4K keyframe need not be kept at 4K


class SnapshotKeeper:
    def __init__(self, hubs: StreamHubs, store: Store, *, interval: float = DEFAULT_INTERVAL,
                 scan: float | None = None, max_width: int = MAX_WIDTH, quality: int = 75):
        self.hubs = hubs
        self.store = store
        self.interval = interval
        self.scan = scan if scan is not None else min(interval, 10.0)
        self.max_width = max_width
        self.quality = quality
        self.kept = 0
        self._last: dict[tuple[str, int], tuple[float, object]] = {}  # (device, channel) -> (when, keyframe)
        self._task: asyncio.Task | None = None

    def start(self) -> SnapshotKeeper:
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="media-snapshot-keeper")
        return self

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.scan)
            try:
                await self.pass_once()
            except Exception:  # one bad pass must not end the keeper
                log.warning("media: snapshot pass failed", exc_info=True)

    async def pass_once(self) -> int:
        """Keep a picture of every channel that is due; returns how many were kept."""
        now = time.monotonic()
        due: dict[tuple[str, int], tuple] = {}
        for hub in self.hubs:
            stream = hub.stream
            if not isinstance(stream, ChannelId):
                continue
            key = (stream.device_id, stream.channel)
            last = self._last.get(key)
            if last is not None and now - last[0] < self.interval:
                continue
            try:
                found = latest_keyframe(hub)
            except ValueError:  # an unreadable fragment: next pass
                continue
            if found is None or (last is not None and last[1] is found[2]):
                continue
            if key not in due or stream.stream == "main":
                due[key] = (stream, found)
        kept = 0
        for key, (stream, (track, sample, identity)) in due.items():
            width = min(track.width or self.max_width, self.max_width)
            try:
                jpeg = await asyncio.to_thread(decode_keyframe, track, sample, width=width, quality=self.quality)
                stored = await self.store(stream, jpeg)
            except SnapshotError as exc:
                log.info("media: %s: no snapshot: %s", stream, exc)
            except Exception:
                log.warning("media: %s: snapshot not kept", stream, exc_info=True)
            else:
                if stored:
                    kept += 1
                    self.kept += 1
            # tried: next attempt after an interval, even after a failure (no hot loop)
            self._last[key] = (time.monotonic(), identity)
        return kept
