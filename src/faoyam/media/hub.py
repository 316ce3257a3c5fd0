"""The stream hub: one per channel stream, fanning one muxed stream out to its consumers.

A :class:`StreamHub` owns the stream's :class:`~faoyam.media.muxer.LiveMuxer`, so the
fMP4 bytes are produced once however many consumers there are. It keeps the **current GOP**
(the init segment plus every fragment since the last keyframe): a consumer that joins gets
those at once and starts decoding immediately instead of waiting up to a GOP for the next
keyframe.

Consumers are :class:`Subscription` objects, each with a bounded queue. The hub never
waits for a consumer: handing a fragment over is an append. A consumer that falls behind
by more than its byte limit loses what is queued and resumes at the next keyframe (a
"lag"); after ``max_lags`` lags it is closed. Memory per consumer is therefore bounded
whatever the consumer does, including never reading.

The hub outlives its publisher: when a camera's connection drops and it reconnects, the
viewers stay subscribed and continue (the muxer keeps the timeline monotonic across the
reconnect, and an identical codec configuration does not even produce a new init segment).
When the last consumer leaves, the hub calls ``on_idle`` so its owner can tell the device
to stop pushing; ``on_demand`` is called when the first one arrives.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

from faoyam.media.muxer import Fragment, LiveMuxer
from faoyam.media.tracks import Track

log = logging.getLogger(__name__)

DEFAULT_QUEUE_BYTES = 4 << 20  # ~8 s of a 4 Mbit/s stream
DEFAULT_MAX_LAGS = 3
DEFAULT_GOP_BYTES = 16 << 20  # a camera that never sends a keyframe must not grow the cache


class Publisher(Protocol):
    """What the hub needs from an ingest connection: a way to end it."""

    def close(self, reason: str) -> None: ...


class Subscription:
    """One consumer's bounded queue of fMP4 chunks (init segments and fragments).

    Read with ``await sub.read()`` (every queued chunk, oldest first; ``[]`` once closed) or
    ``async for chunks in sub``. ``closed_reason`` says why the hub ended it.
    """

    def __init__(self, hub: StreamHub, max_bytes: int, max_lags: int, background: bool = False,
                 keyframes_only: bool = False):
        self.hub = hub
        self.background = background
        self.keyframes_only = keyframes_only  # a detector that decodes keyframes only: the rest never queues
        self.max_bytes = max_bytes
        self.max_lags = max_lags
        self._queue: deque[tuple[bytes, int]] = deque()  # (bytes, samples in them)
        self._unread_init: bytes | None = None  # the latest init segment, while it is queued
        self._waiting_for_keyframe = True
        self._waiter: asyncio.Future | None = None
        self.queued_bytes = 0
        self.lags = 0
        self.skipped_fragments = 0
        self.samples_read = 0
        self.closed_reason: str | None = None

    # -- hub side (synchronous, O(1), never blocks) --
    def _push(self, data: bytes, samples: int) -> None:
        self._queue.append((data, samples))
        self.queued_bytes += len(data)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _offer_init(self, init: bytes) -> None:
        """A (new) init segment, queued after what came before the change: the recorder
        must not lose the old stream's last fragments, and a player switches at the init."""
        self._waiting_for_keyframe = True
        self._unread_init = init
        self._push(init, 0)

    def _offer(self, fragment: Fragment) -> None:
        if self.keyframes_only and not fragment.keyframe:
            return
        if self._waiting_for_keyframe:
            if not fragment.keyframe:
                self.skipped_fragments += 1
                return
            self._waiting_for_keyframe = False
        if self.queued_bytes + len(fragment.data) > self.max_bytes:
            self._lag()
            if self.closed_reason is not None or not fragment.keyframe:
                self.skipped_fragments += 1
                return
            self._waiting_for_keyframe = False
        self._push(fragment.data, fragment.samples)

    def _lag(self) -> None:
        self.lags += 1
        if self.lags > self.max_lags:
            self.close(f"too slow: fell behind {self.lags} times")
            return
        self._queue.clear()
        self.queued_bytes = 0
        if self._unread_init is not None:  # what follows needs it: it stays
            self._push(self._unread_init, 0)
        self._waiting_for_keyframe = True

    # -- consumer side --
    async def read(self) -> list[bytes]:
        """Every queued chunk (waiting until there is one); ``[]`` when closed."""
        while not self._queue:
            if self.closed_reason is not None:
                return []
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.take()

    def take(self) -> list[bytes]:
        """Every queued chunk, without waiting (``[]`` if none)."""
        chunks = [data for data, _ in self._queue]
        self.samples_read += sum(samples for _, samples in self._queue)
        self._queue.clear()
        self.queued_bytes = 0
        self._unread_init = None
        return chunks

    def __aiter__(self):
        return self

    async def __anext__(self) -> list[bytes]:
        chunks = await self.read()
        if not chunks:
            raise StopAsyncIteration
        return chunks

    def close(self, reason: str = "closed") -> None:
        """Leave the hub (idempotent). Queued chunks are discarded."""
        if self.closed_reason is not None:
            return
        self.closed_reason = reason
        self._queue.clear()
        self.queued_bytes = 0
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
        self.hub._unsubscribe(self)

    @property
    def tracks(self) -> tuple[Track, ...]:
        return self.hub.muxer.tracks


class StreamHub:
    """One channel stream: its muxer, its current GOP, its publisher and its consumers."""

    def __init__(self, stream: Hashable, *, on_idle: Callable[[StreamHub], None] | None = None,
                 on_demand: Callable[[StreamHub], None] | None = None,
                 queue_bytes: int = DEFAULT_QUEUE_BYTES, max_lags: int = DEFAULT_MAX_LAGS,
                 gop_bytes: int = DEFAULT_GOP_BYTES, max_jump_seconds: float = 5.0):
        self.stream = stream
        self.muxer = LiveMuxer(max_jump_seconds)
        self.on_idle = on_idle
        self.on_demand = on_demand
        self.queue_bytes = queue_bytes
        self.max_lags = max_lags
        self.gop_bytes = gop_bytes
        self.publisher: Publisher | None = None
        self.subscribers: set[Subscription] = set()
        # Consumers a person is waiting on (not ``background``): while there is none, ingest
        # may read the publisher in longer batches (see RtmpServer's ``background_interval``).
        self.live_subscribers = 0
        self._gop: list[Fragment] = []
        self._gop_size = 0
        self.samples_in = 0
        self.fragments_out = 0
        self.inits_out = 0

    # -- producer side --
    def attach(self, publisher: Publisher) -> None:
        """A publisher connected; an older one still attached is closed (a camera that
        reconnects before its old TCP connection timed out)."""
        old, self.publisher = self.publisher, publisher
        if old is not None and old is not publisher:
            log.info("media: %s: a new publisher replaces the old connection", self.stream)
            old.close("replaced by a new connection for the same stream")

    def detach(self, publisher: Publisher) -> None:
        if self.publisher is publisher:
            self.flush()
            self.publisher = None

    def configure(self, tracks: Sequence[Track]) -> None:
        """The publisher's tracks (again); a change sends every consumer a new init segment."""
        self.flush()
        init = self.muxer.configure(tracks)
        if init is None:
            return
        self._gop, self._gop_size = [], 0
        self.inits_out += 1
        for sub in list(self.subscribers):
            sub._offer_init(init)

    def add(self, index: int, dts: int, cts: int, keyframe: bool, payload: bytes) -> None:
        """One sample of track ``index`` (timestamps in the track's timescale)."""
        self.samples_in += 1
        fragment = self.muxer.add(index, dts, cts, keyframe, payload)
        if fragment is not None:
            self._publish(fragment)

    def flush(self) -> None:
        """End of a read batch: what is pending goes out as one fragment."""
        fragment = self.muxer.flush()
        if fragment is not None:
            self._publish(fragment)

    def _publish(self, fragment: Fragment) -> None:
        self.fragments_out += 1
        if fragment.keyframe:
            self._gop, self._gop_size = [fragment], len(fragment.data)
        elif self._gop:
            self._gop.append(fragment)
            self._gop_size += len(fragment.data)
            if self._gop_size > self.gop_bytes:
                self._gop, self._gop_size = [], 0  # late joiners wait for the next keyframe
        for sub in list(self.subscribers):
            sub._offer(fragment)

    # -- consumer side --
    def subscribe(self, *, queue_bytes: int | None = None, max_lags: int | None = None,
                  background: bool = False, keyframes_only: bool = False) -> Subscription:
        """A new consumer; it starts with the init segment and the current GOP, if any.

        ``background``: nobody watches what this consumer reads as it happens (the recorder,
        a detector), so a few hundred milliseconds more latency cost it nothing — a stream
        with only background consumers is read by ingest in longer, cheaper batches.
        ``keyframes_only``: it is offered only the fragments that start with a keyframe (the
        muxer starts a fragment at every video keyframe), so it wakes once per GOP."""
        sub = Subscription(self, queue_bytes or self.queue_bytes,
                           self.max_lags if max_lags is None else max_lags, background, keyframes_only)
        first = not self.subscribers
        self.subscribers.add(sub)
        if not background:
            self.live_subscribers += 1
        if self.muxer.init is not None:
            sub._offer_init(self.muxer.init)
            for fragment in self._gop:
                sub._offer(fragment)
        if first and self.on_demand is not None:
            self.on_demand(self)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self.subscribers:
            self.subscribers.discard(sub)
            if not sub.background:
                self.live_subscribers -= 1
            if sub.closed_reason not in (None, "closed"):
                log.info("media: %s: consumer dropped: %s", self.stream, sub.closed_reason)
            if not self.subscribers and self.on_idle is not None:
                self.on_idle(self)

    @property
    def current_gop(self) -> tuple[Fragment, ...]:
        return tuple(self._gop)


class StreamHubs:
    """Every hub of one process, by stream id; made on first use.

    ``on_idle(stream)`` / ``on_demand(stream)`` tell the owner (the devices domain) when a
    stream's last consumer left or its first one arrived, so it can ask the device over MQTT
    to stop or start pushing. A hub with neither publisher nor consumers is dropped.
    """

    def __init__(self, *, on_idle: Callable[[Hashable], None] | None = None,
                 on_demand: Callable[[Hashable], None] | None = None, **hub_options):
        self._hubs: dict[Hashable, StreamHub] = {}
        self._on_idle = on_idle
        self._on_demand = on_demand
        self._options = hub_options

    def get(self, stream: Hashable) -> StreamHub | None:
        return self._hubs.get(stream)

    def hub(self, stream: Hashable) -> StreamHub:
        hub = self._hubs.get(stream)
        if hub is None:
            hub = self._hubs[stream] = StreamHub(stream, on_idle=self._idle, on_demand=self._demand,
                                                 **self._options)
        return hub

    def release(self, hub: StreamHub) -> None:
        """Drop ``hub`` if nobody uses it any more (called after a publisher detached)."""
        if hub.publisher is None and not hub.subscribers and self._hubs.get(hub.stream) is hub:
            del self._hubs[hub.stream]

    def _idle(self, hub: StreamHub) -> None:
        if self._on_idle is not None:
            self._on_idle(hub.stream)
        self.release(hub)

    def _demand(self, hub: StreamHub) -> None:
        if self._on_demand is not None:
            self._on_demand(hub.stream)

    def __iter__(self):
        return iter(list(self._hubs.values()))

    def __len__(self) -> int:
        return len(self._hubs)
