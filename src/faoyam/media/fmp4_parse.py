"""Reading fragmented MP4 back into samples: the inverse of :func:`faoyam.media.fmp4.media_fragment`.

The hub hands its consumers bytes (init segments and ``moof``+``mdat`` fragments). Consumers
that need to know what is *inside* — the LL-HLS segmenter cuts parts at sample boundaries,
the snapshotter wants the keyframe's bytes, the transcoder feeds a decoder — parse the
``moof`` here. Only the boxes the muxer writes are read (``mfhd``, ``traf`` with ``tfhd``,
``tfdt`` and ``trun``); the sample bytes are sliced out of the ``mdat`` without copying the
whole fragment more than once.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from faoyam.media.fmp4 import TrackRun
from faoyam.media.tracks import Track

_NON_SYNC = 0x00010000  # sample_is_non_sync_sample


class FragmentError(ValueError):
    """Bytes that are not a fragment this parser understands."""


def boxes(data: bytes | memoryview, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """``(type, payload start, box end)`` for each box in ``data[start:end]``."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise FragmentError(f"box {kind!r} overruns its container")
        yield kind, pos + header, pos + size
        pos += size


def is_init(chunk: bytes) -> bool:
    """An init segment (``ftyp``/``moov``) rather than a fragment."""
    return chunk[4:8] in (b"ftyp", b"moov")


def _trun(data: bytes, start: int, end: int, defaults: tuple[int, int, int]) -> tuple[int, list[tuple[int, int, int, int]]]:
    """(data offset, [(duration, size, flags, cts offset)]) of one ``trun`` payload."""
    version_flags, count = struct.unpack_from(">II", data, start)
    version, flags = version_flags >> 24, version_flags & 0xFFFFFF
    pos = start + 8
    offset = 0
    if flags & 0x1:
        offset = struct.unpack_from(">i", data, pos)[0]
        pos += 4
    first_flags = None
    if flags & 0x4:
        first_flags = struct.unpack_from(">I", data, pos)[0]
        pos += 4
    default_duration, default_size, default_flags = defaults
    samples = []
    for i in range(count):
        duration, size, sample_flags, cts = default_duration, default_size, default_flags, 0
        if flags & 0x100:
            duration = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        if flags & 0x200:
            size = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        if flags & 0x400:
            sample_flags = struct.unpack_from(">I", data, pos)[0]
            pos += 4
        elif i == 0 and first_flags is not None:
            sample_flags = first_flags
        if flags & 0x800:
            cts = struct.unpack_from(">i" if version else ">I", data, pos)[0]
            pos += 4
        samples.append((duration, size, sample_flags, cts))
    if pos > end:
        raise FragmentError("trun overruns its box")
    return offset, samples


def parse_fragment(data: bytes, tracks: Sequence[Track] = ()) -> list[TrackRun]:
    """Every track run of every ``moof``+``mdat`` in ``data``, in order.

    ``tracks`` (the init segment's) says which track IDs are video; without it a run is
    video if its samples carry flags (as the muxer writes them).
    """
    runs: list[TrackRun] = []
    for kind, start, end in boxes(data):
        if kind != b"moof":
            continue
        moof_start = start - 8
        for traf_kind, traf_start, traf_end in boxes(data, start, end):
            if traf_kind != b"traf":
                continue
            track_id, base_dts, defaults, base_offset = 0, 0, (0, 0, 0), moof_start
            for sub, s, e in boxes(data, traf_start, traf_end):
                if sub == b"tfhd":
                    flags = struct.unpack_from(">I", data, s)[0] & 0xFFFFFF
                    track_id = struct.unpack_from(">I", data, s + 4)[0]
                    pos = s + 8
                    if flags & 0x1:
                        base_offset = struct.unpack_from(">Q", data, pos)[0]
                        pos += 8
                    if flags & 0x2:
                        pos += 4
                    d = list(defaults)
                    for bit, slot in ((0x8, 0), (0x10, 1), (0x20, 2)):
                        if flags & bit:
                            d[slot] = struct.unpack_from(">I", data, pos)[0]
                            pos += 4
                    defaults = (d[0], d[1], d[2])
                elif sub == b"tfdt":
                    version = data[s]
                    base_dts = struct.unpack_from(">Q" if version else ">I", data, s + 4)[0]
                elif sub == b"trun":
                    offset, samples = _trun(data, s, e, defaults)
                    pos = base_offset + offset
                    payloads = []
                    for _, size, _, _ in samples:
                        if pos + size > len(data):
                            raise FragmentError("sample data beyond the fragment")
                        payloads.append(data[pos:pos + size])
                        pos += size
                    if 0 < track_id <= len(tracks):
                        video = tracks[track_id - 1].kind == "video"
                    else:
                        video = bool(samples) and any(f for _, _, f, _ in samples)
                    runs.append(TrackRun(
                        track_id, video, base_dts, [d for d, _, _, _ in samples], [c for _, _, _, c in samples],
                        [not f & _NON_SYNC for _, _, f, _ in samples],
                        payloads))
                    base_dts += sum(d for d, _, _, _ in samples)
    return runs


# Init segments -------------------------------------------------------------------------

@dataclass(frozen=True)
class TrackInfo:
    track_id: int
    kind: str  # video | audio
    timescale: int
    codec: str  # RFC 6381 (audio: mp4a.40.N); video: the sample entry type, see mime()


def init_info(init: bytes) -> list[TrackInfo]:
    """The tracks of an init segment (``moov``/``trak``): id, kind, timescale, codec."""
    out = []
    for kind, start, end in boxes(init):
        if kind != b"moov":
            continue
        for tkind, ts, te in boxes(init, start, end):
            if tkind != b"trak":
                continue
            track_id, timescale, handler, codec = 0, 0, b"", ""
            for sub, s, e in boxes(init, ts, te):
                if sub == b"tkhd":
                    track_id = struct.unpack_from(">I", init, s + (20 if init[s] else 12))[0]
                elif sub == b"mdia":
                    for mkind, ms, me in boxes(init, s, e):
                        if mkind == b"mdhd":
                            timescale = struct.unpack_from(">I", init, ms + (20 if init[ms] else 12))[0]
                        elif mkind == b"hdlr":
                            handler = init[ms + 8:ms + 12]
                        elif mkind == b"minf":
                            codec = _sample_codec(init, ms, me)
            out.append(TrackInfo(track_id, "video" if handler == b"vide" else "audio", timescale, codec))
    return out


def _sample_codec(data: bytes, start: int, end: int) -> str:
    for kind, s, e in boxes(data, start, end):
        if kind == b"stbl":
            for sub, ss, se in boxes(data, s, e):
                if sub == b"stsd":
                    entry = ss + 8  # version/flags, entry count
                    size, etype = struct.unpack_from(">I4s", data, entry)
                    name = etype.decode("latin-1")
                    if etype == b"mp4a":
                        return _aac_codec(data[entry:entry + size])
                    return name
    return ""


def _aac_codec(entry: bytes) -> str:
    """``mp4a.40.<object type>`` from an ``mp4a`` entry's esds (DecoderSpecificInfo, tag 5)."""
    pos = entry.find(b"esds")
    if pos < 0:
        return "mp4a.40.2"
    i = pos + 8
    while i < len(entry):
        tag = entry[i]
        i += 1
        size = 0
        for _ in range(4):
            b = entry[i]
            i += 1
            size = size << 7 | (b & 0x7F)
            if not b & 0x80:
                break
        if tag == 0x03:
            i += 3  # ES_ID, flags: its children follow
        elif tag == 0x04:
            i += 13  # object type .. avg bitrate: its children follow
        elif tag == 0x05:
            return f"mp4a.40.{entry[i] >> 3}" if i < len(entry) else "mp4a.40.2"
        else:
            i += size
    return "mp4a.40.2"
