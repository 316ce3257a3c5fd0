"""The simulator's test video: real H.264 whose frames carry their number, motion only in
the announced intervals, and loops whose timestamps keep going."""

from __future__ import annotations

import av
import numpy as np

from faoyam.media.testvideo import DEFAULT_MOTION, read_barcode


def decoded_lumas(clip):
    with av.open(str(clip.path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="gray")


def test_frames_carry_their_number_and_motion_only_in_the_intervals(h264_clip):
    previous, moving = None, []
    for index, luma in enumerate(decoded_lumas(h264_clip)):
        assert read_barcode(luma) == index
        picture = luma[: -luma.shape[0] // 8].astype(np.int16)  # above the bar code
        if previous is not None:
            moving.append(int((np.abs(picture - previous) > 40).sum()) > 100)  # pixels that changed a lot
        previous = picture
    fps = h264_clip.fps
    expected = [any(start <= i / fps < end or start <= (i - 1) / fps < end for start, end in DEFAULT_MOTION)
                for i in range(1, len(moving) + 1)]
    assert moving == expected
    assert any(moving) and not all(moving)


def test_a_loop_continues_the_timestamps(h264_clip):
    packets = [p for kind, p in h264_clip.loop(3) if kind == "video"]
    assert len(packets) == 3 * len(h264_clip.packets)
    dts = [p.dts for p in packets]
    assert all(b > a for a, b in zip(dts, dts[1:]))
    assert packets[len(h264_clip.packets)].dts == h264_clip.duration_ms
    assert packets[len(h264_clip.packets)].keyframe, "each loop starts with a keyframe"


def test_the_clip_looks_like_a_camera(h264_clip):
    keyframes = [i for i, p in enumerate(h264_clip.packets) if p.keyframe]
    assert keyframes == list(range(0, len(h264_clip.packets), 2 * h264_clip.fps))  # GOP 2 s, closed
    assert any(p.cts for p in h264_clip.packets), "B-frames: composition offsets present"
