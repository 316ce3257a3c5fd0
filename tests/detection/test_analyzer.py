"""The analyzer's arithmetic on synthetic pictures: background, debouncing, zones, scoring."""

from __future__ import annotations

import numpy as np
import pytest

from faoyam.media.motion import (
    ZONE_COLS,
    ZONE_ROWS,
    MotionAnalyzer,
    match_episodes,
    thresholds,
    truth_intervals,
    valid_zones,
    zone_mask,
)

H, W = 36, 64


def scene(box_at: int | None = None, level: int = 100) -> np.ndarray:
    picture = np.full((H, W), level, dtype=np.uint8)
    if box_at is not None:
        picture[12:24, box_at:box_at + 12] = 235
    return picture


def run(analyzer, pictures, step=1.0):
    """Feed (box position or None) per picture, ``step`` s apart; the episodes that ended."""
    out = []
    for i, box in enumerate(pictures):
        ep = analyzer.feed(i * step, scene(box))
        if ep is not None:
            out.append(ep)
    ep = analyzer.close()
    return out + ([ep] if ep else [])


def test_one_episode_per_interval_with_its_peak():
    a = MotionAnalyzer()
    eps = run(a, [None] * 5 + [0, 10, 20] + [None] * 10 + [30, 40] + [None] * 5)
    assert [(e.start, e.end) for e in eps] == [(5.0, 7.0), (18.0, 19.0)]
    assert all(e.peak == pytest.approx(144 / (H * W)) for e in eps)


def test_a_quiet_picture_inside_the_hold_does_not_split_an_episode():
    a = MotionAnalyzer(hold_s=3.0)
    eps = run(a, [None] * 3 + [0, None, None, 20, None, None, None, None, None])
    assert [(e.start, e.end) for e in eps] == [(3.0, 6.0)]


def test_the_hold_stretches_to_the_picture_interval():
    a = MotionAnalyzer(hold_s=1.0)
    # Pictures 2 s apart (a 2 s GOP): one quiet keyframe must not end the episode.
    eps = run(a, [None] * 3 + [0, None, 30] + [None] * 6, step=2.0)
    assert len(eps) == 1 and a.hold == pytest.approx(5.0, rel=0.05)


def test_endless_motion_is_cut_into_episodes_of_max_length():
    a = MotionAnalyzer(max_episode_s=10.0)
    eps = run(a, [None] * 2 + [(i * 7) % 50 for i in range(30)])
    assert len(eps) == 3 and all(e.end - e.start <= 10.0 for e in eps)


def test_slow_changes_are_learnt_not_reported():
    a = MotionAnalyzer()
    eps = []
    for i in range(300):  # daylight: 100 → 160 grey levels over five minutes
        ep = a.feed(float(i), scene(level=100 + i // 5))
        eps += [ep] if ep else []
    assert eps == [] and a.background.mean() == pytest.approx(159, abs=3)


def test_a_gap_or_a_new_size_restarts_learning():
    a = MotionAnalyzer()
    a.feed(0.0, scene())
    assert a.feed(1.0, scene(0)) is None and a.episode is not None
    ep = a.feed(30.0, scene(level=200))  # 29 s later: the camera was away
    assert ep is not None and a.episode is None  # the episode ended; the new scene is learnt
    assert a.feed(31.0, scene(level=200)) is None and a.episode is None
    a.feed(32.0, np.full((48, 64), 200, dtype=np.uint8))  # 4:3 now
    assert a.background.shape == (48, 64)


def test_zones_mask_cells_of_the_grid():
    assert zone_mask(None, H, W).all()
    left_column = [1] * ZONE_ROWS
    mask = zone_mask(left_column, H, W)
    assert mask[:, :W // ZONE_COLS].all() and not mask[:, W // ZONE_COLS:].any()
    a = MotionAnalyzer(zones=[0] * (ZONE_ROWS - 1) + [0xFFFF])  # the bottom row only
    assert run(a, [None, 0, 10, None]) == []
    assert valid_zones(None) and valid_zones([0] * ZONE_ROWS)
    assert not valid_zones([0] * 3) and not valid_zones([1 << ZONE_COLS] * ZONE_ROWS)
    assert not valid_zones([True] * ZONE_ROWS) and not valid_zones("all")


def test_sensitivity_orders_the_thresholds():
    levels = [thresholds(s) for s in (1, 25, 50, 75, 100)]
    assert levels == sorted(levels, reverse=True)
    assert thresholds(0) == thresholds(1) and thresholds(500) == thresholds(100)


def test_episode_matching():
    truth = [(3.0, 6.0), (11.0, 13.0)]
    assert match_episodes([(3.0, 5.0), (11.0, 12.0)], truth, 1.0).precision == 1.0
    m = match_episodes([(3.0, 4.0), (5.0, 5.5), (20.0, 21.0)], truth, 1.0)  # split + a false one + a miss
    assert (m.matched, m.precision, m.recall) == (1, pytest.approx(1 / 3), 0.5)
    assert match_episodes([], [], 1.0).recall == 1.0
    assert truth_intervals([(3.0, 6.0)], 10.0, 25.0) == [(3.0, 6.0), (13.0, 16.0), (23.0, 26.0)]
