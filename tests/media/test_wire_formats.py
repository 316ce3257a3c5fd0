"""AMF0 and the RTMP chunk stream: round trips, any split of the byte stream, hostile bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faoyam.media import amf, flv
from faoyam.media.rtmp_chunks import (
    SET_CHUNK_SIZE, VIDEO, ChunkReader, Message, RtmpProtocolError, encode_message,
)

amf_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=4),
    max_leaves=12)


@given(st.lists(amf_values, max_size=5))
def test_amf0_round_trip(values):
    assert amf.decode_all(amf.encode(*values)) == values


@given(st.binary(max_size=200))
def test_amf0_garbage_raises_only_amf_error(data):
    try:
        amf.decode_all(data)
    except amf.AmfError:
        pass


def test_amf0_truncated_command_is_an_error():
    data = amf.encode("connect", 1.0, {"app": "live"})
    with pytest.raises(amf.AmfError):
        amf.decode_all(data[:-2])


def parse_in_pieces(stream: bytes, cuts: list[int]) -> list[Message]:
    reader, buf, out = ChunkReader(), bytearray(), []
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {len(stream)})
    start = 0
    for end in bounds:
        buf += stream[start:end]
        start = end
        pos = reader.parse(buf, 0, out)
        del buf[:pos]
    assert not buf
    return out


@settings(max_examples=60)
@given(payloads=st.lists(st.binary(min_size=0, max_size=3000), min_size=1, max_size=6),
       chunk_size=st.sampled_from([1, 7, 128, 4096]), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_messages_survive_any_chunk_size_and_any_split_of_the_stream(payloads, chunk_size, cuts):
    stream = encode_message(2, SET_CHUNK_SIZE, 0, 0, chunk_size.to_bytes(4, "big"), 128)
    for i, payload in enumerate(payloads):
        stream += encode_message(6, VIDEO, 1, 40 * i, payload, chunk_size)
    got = parse_in_pieces(stream, cuts)
    assert [m.payload for m in got[1:]] == payloads
    assert [m.timestamp for m in got[1:]] == [40 * i for i in range(len(payloads))]


def test_extended_timestamps_and_delta_headers():
    big = 0x01234567
    stream = encode_message(6, VIDEO, 1, big, b"abc", 128)
    # fmt 1 (delta 40, new length/type) then fmt 2 (delta 40) then fmt 3 (repeats delta 40)
    stream += bytes((0x46,)) + (40).to_bytes(3, "big") + (2).to_bytes(3, "big") + bytes((VIDEO,)) + b"de"
    stream += bytes((0x86,)) + (40).to_bytes(3, "big") + b"fg"
    stream += bytes((0xC6,)) + b"hi"
    got = parse_in_pieces(stream, [5, 17])
    assert [(m.timestamp, m.payload) for m in got] == [
        (big, b"abc"), (big + 40, b"de"), (big + 80, b"fg"), (big + 120, b"hi")]


def test_a_message_over_the_size_limit_is_refused():
    reader = ChunkReader(max_message_size=1000)
    with pytest.raises(RtmpProtocolError):
        reader.parse(bytearray(encode_message(6, VIDEO, 1, 0, b"x" * 2000, 4096)), 0, [])


@settings(max_examples=200)
@given(st.binary(max_size=400))
def test_garbage_chunks_raise_only_protocol_errors(data):
    try:
        ChunkReader(max_message_size=1 << 16).parse(bytearray(data), 0, [])
    except RtmpProtocolError:
        pass


@given(st.binary(max_size=64))
def test_garbage_tag_bodies_raise_only_flv_errors(data):
    for parse in (flv.parse_video, flv.parse_audio):
        try:
            parse(data)
        except flv.FlvError:
            pass


def test_enhanced_rtmp_h265_tags_round_trip():
    tag = flv.parse_video(flv.video_tag("hvc1", flv.FRAME, True, -40, b"\0\0\0\1x"))
    assert (tag.kind, tag.codec, tag.keyframe, tag.cts, tag.data) == ("frame", "hvc1", True, -40, b"\0\0\0\1x")
    assert flv.parse_video(flv.video_tag("hvc1", flv.CONFIG, data=b"cfg")).data == b"cfg"
