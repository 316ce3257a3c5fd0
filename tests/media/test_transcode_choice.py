"""Which stream a browser viewer is sent (media.stream_choice) from what the device reports
about its channel's streams (devices.channel_streams.streams_of)."""

from __future__ import annotations

import pytest

from faoyam.devices.channel_streams import streams_of
from faoyam.media.ids import ChannelId
from faoyam.media.stream_choice import browser_stream
from faoyam.media.transcode import h264_stream_of, transcoded_source

H264 = {"main": "h264", "sub": "h264"}
H265_H264_SUB = {"main": "h265", "sub": "h264"}
H265_H265_SUB = {"main": "h265", "sub": "h265"}
H265_ONLY = {"main": "h265"}
UNKNOWN = {"main": None}


@pytest.mark.req("B4")
@pytest.mark.parametrize("codecs, requested, hevc, fallback, expected", [
    (H264, "main", False, False, "main"),  # H.264 plays everywhere: as it is
    (H264, "sub", False, False, "sub"),
    (H265_H264_SUB, "main", False, False, "sub"),  # the camera's H.264 sub-stream, no decoding
    (H265_ONLY, "main", False, False, "main.h264"),  # no sub-stream: the transcode
    (H265_H265_SUB, "main", False, False, "sub.h264"),  # the small picture is cheaper to decode
    (H265_H265_SUB, "sub", False, False, "sub.h264"),
    (H265_H264_SUB, "main", True, False, "main"),  # a browser that plays HEVC gets it as it is
    (H265_ONLY, "main", True, False, "main"),
    (UNKNOWN, "main", False, False, "main"),  # not reported: try as is, the player reports back
    (UNKNOWN, "main", False, True, "main.h264"),  # … that it could not play it
    (H265_ONLY, "main", True, True, "main.h264"),  # said it plays HEVC, but not this one
    ({"main": None, "sub": "h264"}, "main", False, True, "sub"),
])
def test_the_browser_gets_what_it_can_play(codecs, requested, hevc, fallback, expected):
    assert browser_stream(requested, codecs, hevc=hevc, fallback=fallback) == expected


def test_transcoded_stream_ids_name_their_source():
    cam = ChannelId("d1", 2, "main")
    assert h264_stream_of(cam) == ChannelId("d1", 2, "main.h264")
    assert transcoded_source(h264_stream_of(cam)) == cam
    assert transcoded_source(cam) is None
    assert transcoded_source(ChannelId("d1", 0, ".h264")) is None


def test_a_devices_configuration_says_what_streams_it_has():
    assert streams_of({"mainStream": {"codec": "H.265", "resolution": "1920x1080"},
                       "subStream": {"codec": "h264"}}) == {"main": "h265", "sub": "h264"}
    assert streams_of({"mainStream": {"codec": "hevc"}}) == {"main": "h265"}, "no subStream: none"
    assert streams_of({"mainStream": {"codec": "hevc"}, "subStream": None}) == {"main": "h265"}
    assert streams_of({"motionDetect": True}) == {"main": None}, "codec not reported"
    assert streams_of(None) == {"main": None}
    assert streams_of({"subStream": {}}) == {"main": None, "sub": None}
    # an NVR's channels may differ: its per-channel report wins for those channels
    nvr = {"mainStream": {"codec": "h264"}, "subStream": {"codec": "h264"},
           "channelStreams": {"1": {"mainStream": {"codec": "h265"}}}}
    assert streams_of(nvr, 0) == {"main": "h264", "sub": "h264"}
    assert streams_of(nvr, 1) == {"main": "h265"}
    # what a device may send is not trusted to be well-formed
    assert streams_of({"mainStream": "h265", "subStream": [1], "channelStreams": 5}) == {"main": None}
    assert streams_of({"mainStream": {"codec": 265}}) == {"main": None}
