"""Per-device protection of the gateway: a rate limit and a replay check.

Kept in memory per service node (a device is served by whichever node receives its
messages); the numbers are per node, which is what protects that node.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass
class GuardOptions:
    rate: float = 10.0  # messages per second a device may send on average
    burst: float = 40.0  # and in one go
    bad_cost: float = 5.0  # a malformed, oversized or replayed message costs this many tokens
    replay_window_s: float = 300.0  # a message older than this (device clock) is dropped
    future_skew_s: float = 120.0  # ... and one this far in the future
    seen_ids: int = 512  # message ids remembered per device
    log_every_s: float = 10.0  # at most one log line per device and reason in this time


@dataclass
class _Device:
    tokens: float
    stamp: float
    seen: OrderedDict[str, None] = field(default_factory=OrderedDict)
    dropped: dict[str, int] = field(default_factory=dict)
    logged: dict[str, float] = field(default_factory=dict)


class Guard:
    def __init__(self, options: GuardOptions | None = None, clock=time.monotonic):
        self.o = options or GuardOptions()
        self.clock = clock
        self._d: dict[str, _Device] = {}

    def _dev(self, serial: str) -> _Device:
        d = self._d.get(serial)
        now = self.clock()
        if d is None:
            d = self._d[serial] = _Device(tokens=self.o.burst, stamp=now)
        else:
            d.tokens = min(self.o.burst, d.tokens + (now - d.stamp) * self.o.rate)
            d.stamp = now
        return d

    def admit(self, serial: str, cost: float = 1.0) -> bool:
        """Take tokens for one message; False means the device is over its limit."""
        d = self._dev(serial)
        if d.tokens < cost:
            return False
        d.tokens -= cost
        return True

    def penalise(self, serial: str) -> None:
        d = self._dev(serial)
        d.tokens = max(-self.o.burst, d.tokens - self.o.bad_cost)

    def limited(self, serial: str) -> bool:
        return self._dev(serial).tokens < 1

    def fresh(self, serial: str, msg_id: str, ts_ms: int, now_s: float | None = None) -> str | None:
        """None if the message is new and timely, else the reason to drop it."""
        now_s = time.time() if now_s is None else now_s
        age = now_s - ts_ms / 1000
        if age > self.o.replay_window_s:
            return "stale"
        if -age > self.o.future_skew_s:
            return "future"
        d = self._dev(serial)
        if msg_id in d.seen:
            return "replayed"
        d.seen[msg_id] = None
        if len(d.seen) > self.o.seen_ids:
            d.seen.popitem(last=False)
        return None

    def count_drop(self, serial: str, reason: str) -> tuple[bool, int]:
        """Count a dropped message; returns (log it now?, drops since the last log)."""
        d = self._dev(serial)
        d.dropped[reason] = d.dropped.get(reason, 0) + 1
        now = self.clock()
        if now - d.logged.get(reason, -1e9) >= self.o.log_every_s:
            d.logged[reason] = now
            n = d.dropped.pop(reason)
            return True, n
        return False, 0

    def forget(self, serial: str) -> None:
        self._d.pop(serial, None)
