"""A monotonic decode timeline for one track, whatever the camera's clock does.

Cameras send timestamps that go backwards (a clock reset, an encoder restart), repeat or are
all zero (no clock at all), or jump (a reconnect starts again at 0; a camera paused for a
while). Players and MP4 need strictly increasing decode times without gaps they would stall
on. The rule, per track:

* a timestamp that advances by a plausible step (0 < step ≤ ``max_step``) is kept, shifted
  by the current offset, so the camera's own frame pacing (and B-frame offsets) survive;
* anything else — backwards, repeated, missing, a jump — is placed one frame after the
  previous sample (the last good step), and the offset is re-based so that the following
  samples continue from there.

The muxer ends each fragment with an *estimated* duration for its last sample (the next
sample has not arrived yet). :meth:`close_fragment` records where that fragment ends, and a
later sample is never placed before it, so fragments never overlap.
"""

from __future__ import annotations


class Timeline:
    __slots__ = ("_offset", "_last", "_step", "_floor", "max_step", "rebased")

    def __init__(self, default_step: int, max_step: int):
        self._offset: int | None = None
        self._last = 0
        self._step = default_step
        self._floor = 0
        self.max_step = max_step
        self.rebased = 0  # how many times the input timeline was repaired (for logs and tests)

    def place(self, dts: int) -> int:
        """The output decode time of a sample whose input decode time is ``dts``."""
        if self._offset is None:  # the first sample starts the output at 0
            self._offset = -dts
            self._last = 0
            return 0
        out = dts + self._offset
        step = out - self._last
        if 0 < step <= self.max_step:
            self._step = step
        else:
            out = self._last + self._step
            self._offset = out - dts
            self.rebased += 1
        if out < self._floor:
            out = self._floor
        self._last = out
        return out

    @property
    def step(self) -> int:
        """The last good step: the estimated duration of the latest sample."""
        return self._step

    def close_fragment(self, end: int) -> None:
        """A fragment was emitted ending at ``end``: later samples start there or later."""
        self._floor = end
