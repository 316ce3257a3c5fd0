"""Server-side motion detection: small grey pictures → a score → episodes (start, end, peak).

This module is the arithmetic, with no video and no asyncio in it: a :class:`MotionAnalyzer`
takes one small grey picture (about 64×36, see :data:`ANALYSIS_WIDTH`) and its media time,
and says when an **episode** starts and ends. :mod:`faoyam.media.motion_decode` makes those
pictures from a stream hub (keyframes of the main stream, or a few frames a second of the
sub-stream) and :mod:`faoyam.media.motion_worker` runs one per channel with detection on.

* **Background**: a running average of past pictures (float32), adapting with a time
  constant of ``background_s`` seconds of *media time* — so the same setting works whether
  pictures come once per GOP or five times a second. It follows slow changes (daylight,
  clouds); something that moves stands out against it.
* **Score**: the fraction of the zone's pixels whose difference to the background is above
  a threshold. Downscaling with area averaging first is what removes sensor noise and the
  encoder's blocking; a threshold of 20–40 grey levels then only sees real changes.
* **Sensitivity** (1–100, default 50) sets both the pixel threshold and the share of the
  zone that must change (:func:`thresholds`).
* **Zones**: a grid of :data:`ZONE_ROWS` × :data:`ZONE_COLS` cells over the picture, as one
  bit mask per row (bit ``c`` of row ``r`` set = cell watched); ``None`` = everything.
* **Debouncing**: an episode starts at the first picture that scores at or above the
  trigger and ends once no picture has for ``hold_s`` seconds (at least 2.5 picture
  intervals); its end is the last picture
  that triggered. Pictures while the episode runs keep its peak (score and picture).
  An episode longer than ``max_episode_s`` is cut there (a new one starts at the next
  triggering picture), so endless motion still gives an alarm every so often.
* While the background is still being learnt (the first picture of a stream, or after a
  gap or a change of resolution), pictures only teach it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

ANALYSIS_WIDTH = 64  # analysis pictures are this wide (height by the aspect ratio): 64×36 for 16:9
ZONE_ROWS, ZONE_COLS = 9, 16
ALL_CELLS = (1 << ZONE_COLS) - 1
BACKGROUND_S = 10.0
HOLD_S = 3.0
MAX_EPISODE_S = 60.0
GAP_S = 10.0  # a pause longer than this (camera away) restarts learning


def thresholds(sensitivity: int) -> tuple[float, float]:
    """(pixel difference in grey levels, share of the zone) for a sensitivity of 1–100.

    50 → 30 levels and 1.1 % of the zone (the simulator's box at 1080p, seen at 64×36, is
    3.5 %); 100 → 20 levels and 0.06 %; 1 → 40 levels and 19 %."""
    s = min(max(int(sensitivity), 1), 100)
    return 40.0 - s / 5.0, 0.2 * 10 ** (-s / 40.0)


def zone_mask(zones: Sequence[int] | None, height: int, width: int) -> np.ndarray:
    """Boolean ``height``×``width`` mask of the watched cells (all of them for ``None``)."""
    if zones is None:
        return np.ones((height, width), dtype=bool)
    grid = np.array([[bool(int(zones[r]) >> c & 1) for c in range(ZONE_COLS)] for r in range(ZONE_ROWS)])
    rows = np.arange(height) * ZONE_ROWS // height
    cols = np.arange(width) * ZONE_COLS // width
    return grid[rows][:, cols]


def valid_zones(zones) -> bool:
    return zones is None or (isinstance(zones, list) and len(zones) == ZONE_ROWS and all(
        isinstance(m, int) and not isinstance(m, bool) and 0 <= m <= ALL_CELLS for m in zones))


@dataclass
class Episode:
    """One motion interval: media times in seconds, the peak score and its picture."""

    start: float
    end: float
    peak: float
    peak_at: float
    peak_frame: object = None  # what the caller passed with the peak picture (a decoded frame)
    started_wall: float = 0.0  # the caller's wall clock when it started (for the alarm's time)
    pictures: int = 0


@dataclass
class MotionAnalyzer:
    """Background, score and debouncing for one channel stream (see the module docstring)."""

    sensitivity: int = 50
    zones: Sequence[int] | None = None
    background_s: float = BACKGROUND_S
    hold_s: float = HOLD_S
    max_episode_s: float = MAX_EPISODE_S
    gap_s: float = GAP_S
    background: np.ndarray | None = field(default=None, repr=False)
    episode: Episode | None = None
    last_t: float | None = None
    last_trigger: float | None = None
    pictures: int = 0
    interval: float = 0.0  # typical time between two pictures (a GOP, or 1/fps)
    _mask: np.ndarray | None = field(default=None, repr=False)
    _mask_pixels: int = 0

    def configure(self, sensitivity: int, zones: Sequence[int] | None) -> None:
        """A settings change: takes effect with the next picture (the background stays)."""
        if (sensitivity, zones) != (self.sensitivity, self.zones):
            self.sensitivity, self.zones, self._mask = sensitivity, zones, None

    def score(self, picture: np.ndarray) -> float:
        """The share of watched pixels that differ from the background (no state change)."""
        if self.background is None or self.background.shape != picture.shape:
            return 0.0
        level, _ = thresholds(self.sensitivity)
        mask = self._zone(picture.shape)
        if not self._mask_pixels:
            return 0.0
        changed = np.abs(picture.astype(np.float32) - self.background) > level
        return float(np.count_nonzero(changed & mask)) / self._mask_pixels

    def _zone(self, shape: tuple[int, int]) -> np.ndarray:
        if self._mask is None or self._mask.shape != shape:
            self._mask = zone_mask(self.zones, *shape)
            self._mask_pixels = int(np.count_nonzero(self._mask))
        return self._mask

    def feed(self, t: float, picture: np.ndarray, frame: object = None, wall: float = 0.0) -> Episode | None:
        """One grey picture at media time ``t`` (s). Returns an episode when one ends."""
        self.pictures += 1
        finished = None
        gap = self.last_t is not None and (t - self.last_t > self.gap_s or t < self.last_t)
        if gap or self.background is None or self.background.shape != picture.shape:
            finished = self._end()
            self.background = picture.astype(np.float32)
            self.last_t = t
            return finished
        dt = t - self.last_t
        self.last_t = t
        self.interval = dt if not self.interval else 0.9 * self.interval + 0.1 * dt
        score = self.score(picture)
        _, share = thresholds(self.sensitivity)
        triggered = score >= share
        ep = self.episode
        if ep is not None and (t - self.last_trigger > self.hold or t - ep.start > self.max_episode_s):
            finished = self._end()
            ep = None
        if triggered:
            self.last_trigger = t
            if ep is None:
                ep = self.episode = Episode(t, t, score, t, frame, wall)
            ep.end = t
            ep.pictures += 1
            if score > ep.peak:
                ep.peak, ep.peak_at, ep.peak_frame = score, t, frame
        # Learn the background, but not from what is moving: a box that stops would
        # otherwise be half absorbed into it and half "motion" for a while.
        alpha = 1.0 - math.exp(-max(dt, 0.0) / self.background_s)
        if triggered:
            alpha *= 0.25
        self.background += alpha * (picture.astype(np.float32) - self.background)
        return finished

    def tick(self, t: float) -> Episode | None:
        """Media time ``t`` passed without a picture: an episode whose hold ran out ends."""
        if self.episode is not None and t - self.last_trigger > self.hold:
            return self._end()
        return None

    @property
    def hold(self) -> float:
        """``hold_s``, but at least two and a half picture intervals: with one picture per GOP
        a single quiet keyframe inside a motion interval must not split the episode."""
        return max(self.hold_s, 2.5 * self.interval)

    def _end(self) -> Episode | None:
        ep, self.episode = self.episode, None
        return ep

    def close(self) -> Episode | None:
        """The stream ended: the episode in progress, if any, ends with it."""
        self.background, self.last_t = None, None
        return self._end()


# Scoring a detector against the truth ------------------------------------------------------

@dataclass(frozen=True)
class Match:
    precision: float
    recall: float
    detected: int
    truth: int
    matched: int


def match_episodes(detected: Sequence[tuple[float, float]], truth: Sequence[tuple[float, float]],
                   tolerance: float) -> Match:
    """Episode-level precision and recall. A detected episode ``(start, end)`` matches a true
    interval if it overlaps the interval widened by ``tolerance`` seconds on both sides; each
    true interval matches at most one detection (the first), so a split episode counts as a
    false positive and a merged one as a miss."""
    used: set[int] = set()
    matched = 0
    for start, end in sorted(detected):
        for i, (ts, te) in enumerate(truth):
            if i not in used and start <= te + tolerance and end >= ts - tolerance:
                used.add(i)
                matched += 1
                break
    precision = matched / len(detected) if detected else 1.0
    recall = len(used) / len(truth) if truth else 1.0
    return Match(precision, recall, len(detected), len(truth), matched)


def truth_intervals(motion: Sequence[tuple[float, float]], clip_s: float, until_s: float,
                    from_s: float = 0.0) -> list[tuple[float, float]]:
    """The clip's motion intervals as a looped stream shows them, between two media times."""
    out = []
    loop = 0
    while loop * clip_s < until_s:
        for start, end in motion:
            a, b = loop * clip_s + start, loop * clip_s + min(end, clip_s)
            if a < b and b > from_s and a < until_s:
                out.append((a, b))
        loop += 1
    return out
