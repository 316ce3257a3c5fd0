"""The alarms domain's per-process state, at ``ctx.alarms``: the per-device flood guard,
the live listeners of this node (server-sent events), and the dispatcher's wake-up."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass, field


CHANNELS = ("push", "email", "webhook")


@dataclass
class FloodGuard:
    """A token bucket per device: ``rate`` alarms a second, bursts of ``burst``. A flooding
    device is refused; every other device keeps its own bucket (B11 bad input)."""

    rate: float = 10.0
    burst: float = 50.0
    max_devices: int = 100_000
    _buckets: OrderedDict[str, tuple[float, float]] = field(default_factory=OrderedDict)

    def admit(self, device_id: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.pop(device_id, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        ok = tokens >= 1.0
        self._buckets[device_id] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > self.max_devices:
            self._buckets.popitem(last=False)
        return ok


@dataclass
class AlarmRuntime:
    flood: FloodGuard = field(default_factory=FloodGuard)
    # user id -> queues of the live streams (SSE) that user has open on this node
    listeners: dict[str, set[asyncio.Queue]] = field(default_factory=dict)
    # One per channel's dispatcher loop (a slow SMTP round never holds up the pushes).
    wakes: dict[str, asyncio.Event] = field(default_factory=lambda: {c: asyncio.Event() for c in CHANNELS})
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)  # alarm ids already fanned out here
    stats: Counter[str] = field(default_factory=Counter)
    http: object | None = None  # httpx.AsyncClient of the dispatcher
    dispatcher: asyncio.Task | None = None  # the dispatcher (one loop per channel under it)
    # Called with each delivery attempt's outcome (tests, the latency benchmark).
    observers: list = field(default_factory=list)

    def wake(self) -> None:
        for e in self.wakes.values():
            e.set()

    def first_time(self, alarm_id: str) -> bool:
        """True once per alarm id (the bus may bring back what this node published)."""
        if alarm_id in self.seen:
            return False
        self.seen[alarm_id] = None
        if len(self.seen) > 10_000:
            self.seen.popitem(last=False)
        return True


def runtime(ctx) -> AlarmRuntime:
    if ctx.alarms is None:
        ctx.alarms = AlarmRuntime()
    return ctx.alarms
