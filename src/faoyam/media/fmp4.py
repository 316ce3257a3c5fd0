"""Fragmented MP4 boxes (ISO/IEC 14496-12): the init segment and ``moof``+``mdat`` fragments.

This is the byte layout Media Source Extensions, LL-HLS and every MP4 reader accept:

* the **init segment** ``ftyp`` + ``moov`` describes the tracks (codec configuration,
  picture size, timescale) and holds no samples (``mvex`` announces that fragments follow);
* each **fragment** is ``moof`` (one ``traf`` per track: base decode time in ``tfdt``, then a
  ``trun`` with every sample's duration, size, flags and composition offset) followed by one
  ``mdat`` holding the samples, video then audio, exactly as the camera sent them.

Offsets are relative to the ``moof`` (``default-base-is-moof``), so fragments can be
concatenated, cached or sent alone. Nothing here looks inside a sample.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from faoyam.media.tracks import Track

SYNC_SAMPLE = 0x02000000  # sample_depends_on = 2: a keyframe
NON_SYNC_SAMPLE = 0x01010000  # depends on others, sample_is_non_sync_sample
_MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def _descriptor(tag: int, body: bytes) -> bytes:
    size, out = len(body), bytearray()
    for shift in (21, 14, 7):  # the 4-byte expandable size form, valid for any length
        out.append(0x80 | ((size >> shift) & 0x7F))
    out.append(size & 0x7F)
    return bytes((tag,)) + bytes(out) + body


def _esds(track: Track) -> bytes:
    decoder_specific = _descriptor(0x05, track.config)
    decoder_config = _descriptor(0x04, struct.pack(">BB3sII", 0x40, 0x15, b"\0\0\0", 0, 0) + decoder_specific)
    es = _descriptor(0x03, struct.pack(">HB", 0, 0) + decoder_config + _descriptor(0x06, b"\x02"))
    return full_box(b"esds", 0, 0, es)


def _sample_entry(track: Track) -> bytes:
    if track.kind == "video":
        config_box = box(b"avcC" if track.codec == "avc1" else b"hvcC", track.config)
        return box(track.codec.encode(), b"\0" * 6, struct.pack(
            ">HHH3IHHIIIH32sHh", 1, 0, 0, 0, 0, 0, track.width, track.height,
            0x480000, 0x480000, 0, 1, b"", 0x18, -1), config_box)
    extra = _esds(track) if track.codec == "mp4a" else b""
    rate = track.sample_rate if track.sample_rate < 0x10000 else 0
    return box(track.codec.encode(), b"\0" * 6, struct.pack(
        ">H8xHHHHI", 1, track.channels, 16, 0, 0, rate << 16), extra)


def _trak(track_id: int, track: Track) -> bytes:
    video = track.kind == "video"
    tkhd = full_box(b"tkhd", 0, 3, struct.pack(
        ">IIIIIQhhhH", 0, 0, track_id, 0, 0, 0, 0, 0, 0 if video else 0x0100, 0),
        _MATRIX, struct.pack(">II", track.width << 16, track.height << 16))
    mdhd = full_box(b"mdhd", 0, 0, struct.pack(">IIIIHH", 0, 0, track.timescale, 0, 0x55C4, 0))
    handler, name = (b"vide", b"VideoHandler\0") if video else (b"soun", b"SoundHandler\0")
    hdlr = full_box(b"hdlr", 0, 0, struct.pack(">I4s12x", 0, handler), name)
    media_header = full_box(b"vmhd", 0, 1, b"\0" * 8) if video else full_box(b"smhd", 0, 0, b"\0" * 4)
    dinf = box(b"dinf", full_box(b"dref", 0, 0, struct.pack(">I", 1), full_box(b"url ", 0, 1)))
    stbl = box(b"stbl",
               full_box(b"stsd", 0, 0, struct.pack(">I", 1), _sample_entry(track)),
               full_box(b"stts", 0, 0, b"\0" * 4), full_box(b"stsc", 0, 0, b"\0" * 4),
               full_box(b"stsz", 0, 0, b"\0" * 8), full_box(b"stco", 0, 0, b"\0" * 4))
    return box(b"trak", tkhd, box(b"mdia", mdhd, hdlr, box(b"minf", media_header, dinf, stbl)))


def init_segment(tracks: Sequence[Track]) -> bytes:
    """``ftyp`` + ``moov`` for ``tracks``; track IDs are their 1-based positions."""
    ftyp = box(b"ftyp", b"iso5", struct.pack(">I", 512), b"iso5iso6mp41")
    mvhd = full_box(b"mvhd", 0, 0, struct.pack(">IIIIIH10x", 0, 0, 1000, 0, 0x10000, 0x0100),
                    _MATRIX, b"\0" * 24, struct.pack(">I", len(tracks) + 1))
    traks = [_trak(i + 1, t) for i, t in enumerate(tracks)]
    trex = [full_box(b"trex", 0, 0, struct.pack(">5I", i + 1, 1, 0, 0, 0)) for i in range(len(tracks))]
    return ftyp + box(b"moov", mvhd, *traks, box(b"mvex", *trex))


@dataclass(slots=True)
class TrackRun:
    """The samples of one track in one fragment (parallel lists, decode order)."""

    track_id: int
    video: bool
    base_dts: int
    durations: list[int]
    cts_offsets: list[int]
    keyframes: list[bool]
    payloads: list[bytes]


_TRUN_VIDEO = 0x000001 | 0x000100 | 0x000200 | 0x000400 | 0x000800  # offset, dur, size, flags, cts
_TRUN_AUDIO = 0x000001 | 0x000100 | 0x000200
# traf header + tfhd + tfdt + trun header, packed at once (this runs for every fragment):
# traf(size) tfhd(16: default-base-is-moof, track) tfdt(20: version 1, 64-bit time) trun(size, flags, count, offset)
_TRAF_HEAD = struct.Struct(">I4s" + "I4sII" + "I4sIQ" + "I4sIIi")
_TRAF_HEAD_SIZE = _TRAF_HEAD.size  # 64 bytes


def _traf(run: TrackRun, data_offset: int) -> list[bytes]:
    count = len(run.payloads)
    if run.video:
        flat: list[int] = []
        for dur, data, key, cts in zip(run.durations, run.payloads, run.keyframes, run.cts_offsets):
            flat += (dur, len(data), SYNC_SAMPLE if key else NON_SYNC_SAMPLE, cts)
        entries = struct.pack(">" + "IIIi" * count, *flat)
        trun_flags = (1 << 24) | _TRUN_VIDEO  # version 1: signed composition offsets
    else:
        flat = []
        for dur, data in zip(run.durations, run.payloads):
            flat += (dur, len(data))
        entries = struct.pack(">" + "II" * count, *flat)
        trun_flags = _TRUN_AUDIO
    head = _TRAF_HEAD.pack(_TRAF_HEAD_SIZE + len(entries), b"traf",
                           16, b"tfhd", 0x020000, run.track_id,
                           20, b"tfdt", 1 << 24, run.base_dts,
                           20 + len(entries), b"trun", trun_flags, count, data_offset)
    return [head, entries]


def media_fragment(sequence: int, runs: Sequence[TrackRun]) -> bytes:
    """One ``moof`` + ``mdat`` holding ``runs`` (sequence numbers start at 1)."""
    sizes = [sum(map(len, run.payloads)) for run in runs]
    moof_size = 24 + sum(_TRAF_HEAD_SIZE + len(run.payloads) * (16 if run.video else 8) for run in runs)
    parts = [struct.pack(">I4sI4sII", moof_size, b"moof", 16, b"mfhd", 0, sequence)]
    offset = moof_size + 8  # sample data starts after the moof and the mdat header
    for run, size in zip(runs, sizes):
        parts += _traf(run, offset)
        offset += size
    parts.append(struct.pack(">I4s", 8 + sum(sizes), b"mdat"))
    for run in runs:
        parts += run.payloads
    return b"".join(parts)
