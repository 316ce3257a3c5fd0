"""Motion detection on real H.264 from the simulator, against its known motion intervals."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from faoyam.media.motion import ZONE_ROWS, match_episodes, truth_intervals
from tests.detection.conftest import MOTION, detect, motion_clip

TOLERANCE = 1.5  # s: a keyframe interval (1 s) plus half a second — see docs/motion-detection.md


def _score(events, clip, loops):
    truth = truth_intervals(clip.motion, clip.duration_ms / 1000, loops * clip.duration_ms / 1000)
    return match_episodes([(e.start, e.end) for e in events], truth, TOLERANCE), truth


@pytest.mark.req("B11")
async def test_keyframe_episodes_match_the_known_motion_intervals(clip):
    events, det = await detect(clip, loops=3, mode="keyframes")
    match, truth = _score(events, clip, 3)
    print(f"keyframes: {match}")
    assert len(truth) == 12
    assert match.precision >= 0.9 and match.recall >= 0.9, (match, [(e.start, e.end) for e in events])
    # Only keyframes were decoded: one per second of video, none of the 24 P-frames between.
    assert det.decoded == det.samples == 3 * 30
    for event in events:
        assert event.start <= event.end and event.peak > 0 and event.pictures >= 1
        assert event.started_at <= event.ended_at


@pytest.mark.req("B11")
async def test_sub_stream_frames_mode_analyses_a_few_frames_a_second(clip):
    events, det = await detect(clip, loops=2, mode="frames", fps=5.0)
    match, _ = _score(events, clip, 2)
    print(f"frames at 5 fps: {match}")
    assert match.precision >= 0.9 and match.recall >= 0.9, (match, [(e.start, e.end) for e in events])
    assert det.decoded == 2 * 30 * 25  # P-frames need their predecessors: all decoded ...
    assert 2 * 30 * 5 - 5 <= det.analyzer.pictures <= 2 * 30 * 5 + 5  # ... 5 a second analysed


@pytest.mark.req("B11")
@pytest.mark.parametrize("mode", ["keyframes", "frames"])
async def test_a_static_scene_raises_nothing(static_clip, mode):
    events, det = await detect(static_clip, loops=2, mode=mode)
    assert det.analyzer.pictures > 0  # it did look
    assert events == []


@pytest.mark.req("B11")
async def test_the_snapshot_is_a_jpeg_of_the_peak_with_the_box_in_it(clip):
    events, _ = await detect(clip, loops=1, mode="keyframes", snapshot_width=160)
    assert events
    picture = Image.open(io.BytesIO(events[0].snapshot))
    assert picture.format == "JPEG" and picture.size == (160, 90)
    grey = np.asarray(picture.convert("L"))[:-8]  # without the frame-number bar code
    assert (grey > 225).sum() >= 0.5 * (90 // 4) ** 2  # the box (235) is in the picture


@pytest.mark.req("B11")
async def test_zones_outside_the_box_s_path_see_nothing(clip):
    # The box crosses the middle rows; watch only the top two rows of cells.
    top = [0xFFFF, 0xFFFF] + [0] * (ZONE_ROWS - 2)
    events, _ = await detect(clip, loops=1, mode="keyframes", zones=top)
    assert events == []
    middle = [0] * 4 + [0xFFFF] + [0] * (ZONE_ROWS - 5)
    events, _ = await detect(clip, loops=1, mode="keyframes", zones=middle)
    assert len(events) == len(MOTION)


@pytest.mark.req("B11")
async def test_sensitivity_and_a_zone_that_leaves_out_the_on_screen_clock(clip):
    events, _ = await detect(clip, loops=1, mode="keyframes", sensitivity=1)
    assert events == []  # the box is 3.5 % of the picture; sensitivity 1 wants 19 %
    # Very sensitive, the frame-number bar code (a camera's on-screen clock) is motion too:
    # one endless episode ...
    events, _ = await detect(clip, loops=1, mode="keyframes", sensitivity=90)
    assert len(events) == 1 and events[0].end - events[0].start > 25
    # ... unless the zone leaves out the bottom row of cells where it is.
    no_clock = [0xFFFF] * (ZONE_ROWS - 1) + [0]
    events, _ = await detect(clip, loops=1, mode="keyframes", sensitivity=90, zones=no_clock)
    assert len(events) == len(MOTION)


@pytest.mark.req("B11")
@pytest.mark.parametrize("mode", ["keyframes", "frames"])
async def test_b_frames_and_h265_are_dated_by_presentation_time(mode):
    """A decoder holds frames back with B-frames: pictures are dated by their frame's
    presentation time, not by when the decoder gave them out."""
    for clip in (motion_clip(bframes=2), motion_clip(codec="h265", width=352, height=198)):
        events, _ = await detect(clip, loops=1, mode=mode)
        match, _ = _score(events, clip, 1)
        assert match.precision == 1.0 and match.recall == 1.0, (clip.codec, [(e.start, e.end) for e in events])
