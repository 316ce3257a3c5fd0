"""The fMP4 muxer, checked by reading its output back with PyAV (FFmpeg's MP4 demuxer and
decoders): codec, picture size, every frame present and decodable, timestamps monotonic and
the camera's composition offsets (B-frames) kept."""

from __future__ import annotations

import pytest

from faoyam.media.muxer import LiveMuxer
from faoyam.media.testvideo import make_clip, load_clip
from faoyam.media.tracks import aac_track, h264_track, h265_track

from .conftest import probe, strictly_increasing


def mux(clip, batch: int = 3, audio: bool = True) -> tuple[bytes, list]:
    """The clip through a LiveMuxer, flushing every ``batch`` packets like a read batch."""
    muxer = LiveMuxer()
    video = (h264_track if clip.codec == "avc1" else h265_track)(clip.config)
    tracks = [video] + ([aac_track(clip.audio_config)] if audio and clip.audio_config else [])
    out = [muxer.configure(tracks)]
    fragments = []
    for n, (kind, p) in enumerate(clip.loop(1), 1):
        if kind == "audio" and len(tracks) == 1:
            continue
        if kind == "video":
            cut = muxer.add(0, p.dts * 90, p.cts * 90, p.keyframe, p.data)
        else:
            cut = muxer.add(1, p.dts * clip.audio_rate // 1000, 0, True, p.data)
        if cut:
            fragments.append(cut)
        if n % batch == 0 and (f := muxer.flush()):
            fragments.append(f)
    if f := muxer.flush():
        fragments.append(f)
    return b"".join(out + [f.data for f in fragments]), fragments


@pytest.mark.req("B4")
def test_h264_with_b_frames_and_aac_reads_back_frame_for_frame(h264_clip):
    data, fragments = mux(h264_clip)
    got = probe(data)
    assert got.streams["video"] == ("h264", 320, 240)
    assert got.streams["audio"][0] == "aac"
    assert len(got.video) == len(h264_clip.packets) == got.decoded
    assert len(got.audio) == len(h264_clip.audio_packets)
    assert strictly_increasing([dts for dts, _, _ in got.video])
    assert strictly_increasing([dts for dts, _, _ in got.audio])
    # presentation times are the camera's, B-frame reordering included
    assert [pts for _, pts, _ in got.video] == [(p.dts + p.cts) * 90 for p in h264_clip.packets]
    assert [k for _, _, k in got.video] == [p.keyframe for p in h264_clip.packets]


def test_every_keyframe_starts_a_fragment_flagged_keyframe(h264_clip):
    _, fragments = mux(h264_clip, batch=7)
    keyframes = sum(p.keyframe for p in h264_clip.packets)
    assert keyframes >= 2
    assert sum(f.keyframe for f in fragments) == keyframes
    assert fragments[0].keyframe
    assert [f.sequence for f in fragments] == list(range(1, len(fragments) + 1))
    assert sum(f.samples for f in fragments) == len(h264_clip.packets) + len(h264_clip.audio_packets)


@pytest.mark.req("B4")
def test_h265_reads_back(h265_clip):
    data, _ = mux(h265_clip)
    got = probe(data)
    assert got.streams["video"] == ("hevc", 320, 240)
    assert len(got.video) == len(h265_clip.packets) == got.decoded
    assert strictly_increasing([dts for dts, _, _ in got.video])


@pytest.mark.parametrize("codec,size", [("h264", (1920, 1080)), ("h265", (1920, 1080)), ("h264", (322, 182))])
def test_picture_size_comes_from_the_sps_including_cropping(tmp_path, codec, size):
    """1080 is not a multiple of 16: the size is only right if the cropping window is read."""
    clip = load_clip(make_clip(tmp_path / "c.mp4", codec=codec, width=size[0], height=size[1], seconds=0.08,
                               preset="ultrafast"))
    track = (h264_track if codec == "h264" else h265_track)(clip.config)
    assert (track.width, track.height) == size


def test_mime_codec_strings(h264_clip, h265_clip):
    video = h264_track(h264_clip.config)
    assert video.mime_codec == "avc1." + h264_clip.config[1:4].hex()
    assert aac_track(h264_clip.audio_config).mime_codec == "mp4a.40.2"
    assert h265_track(h265_clip.config).mime_codec.startswith("hvc1.1.6.L")


def test_same_tracks_do_not_make_a_new_init_segment(h264_clip):
    muxer = LiveMuxer()
    track = h264_track(h264_clip.config)
    assert muxer.configure([track]) is not None
    assert muxer.configure([track]) is None


def test_g711_audio_is_muxed_as_alaw_and_ulaw(h264_clip):
    """FLV carries G.711 (common on cameras); MP4 stores it as 'alaw'/'ulaw' sample entries."""
    from faoyam.media.tracks import g711_track

    for law, name in (("alaw", "pcm_alaw"), ("ulaw", "pcm_mulaw")):
        muxer = LiveMuxer()
        parts = [muxer.configure([h264_track(h264_clip.config), g711_track(law)])]
        for i, p in enumerate(h264_clip.packets[:25]):
            for f in (muxer.add(0, p.dts * 90, p.cts * 90, p.keyframe, p.data),
                      muxer.add(1, p.dts * 8, 0, True, bytes(320))):  # 40 ms of 8 kHz samples
                if f:
                    parts.append(f.data)
        parts.append(muxer.flush().data)
        got = probe(b"".join(parts), decode=False)
        assert got.streams["audio"][0] == name
        assert len(got.video) == 25
