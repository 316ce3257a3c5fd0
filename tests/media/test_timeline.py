"""Timestamps from cameras that misbehave become a strictly increasing timeline."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from faoyam.media.timeline import Timeline


def place_all(timeline: Timeline, stamps):
    return [timeline.place(t) for t in stamps]


def test_a_good_clock_is_kept_shifted_to_zero():
    assert place_all(Timeline(3600, 90_000), [9000, 12600, 16200]) == [0, 3600, 7200]


def test_backwards_timestamps_continue_one_frame_later():
    t = Timeline(3600, 90_000)
    out = place_all(t, [0, 3600, 7200, 3600, 7200])  # the camera's clock jumps back
    assert out == [0, 3600, 7200, 10800, 14400]
    assert t.rebased == 1


def test_missing_timestamps_all_zero_are_spread_by_the_default_step():
    assert place_all(Timeline(3600, 90_000), [0, 0, 0, 0]) == [0, 3600, 7200, 10800]


def test_a_reconnect_that_restarts_at_zero_continues_the_timeline():
    t = Timeline(3600, 90_000)
    first = place_all(t, [100_000, 103_600, 107_200])
    second = place_all(t, [0, 3600])
    assert first + second == [0, 3600, 7200, 10800, 14400]


def test_a_forward_jump_larger_than_the_limit_is_closed_up():
    t = Timeline(3600, 90_000)
    assert place_all(t, [0, 3600, 3600 + 10 * 90_000, 3600 + 10 * 90_000 + 3600]) == [0, 3600, 7200, 10800]


def test_a_sample_never_lands_inside_a_fragment_already_sent():
    t = Timeline(3600, 90_000)
    place_all(t, [0, 3600])
    t.close_fragment(3600 + 3600)  # the last sample was given the estimated duration
    assert t.place(3600 + 3000) == 7200  # the camera was early: pushed to the fragment's end


@given(st.lists(st.integers(min_value=-(2 ** 33), max_value=2 ** 33), min_size=1, max_size=200))
def test_any_input_gives_strictly_increasing_output(stamps):
    out = place_all(Timeline(3600, 90_000), stamps)
    assert all(b > a for a, b in zip(out, out[1:]))
