"""H.264/H.265 elementary streams in Annex B form (start codes) → MP4 form (length prefixes).

RTSP cameras (through FFmpeg's RTP depacketizers) and the libx264 encoder hand out access
units as Annex B byte streams, with the parameter sets (VPS/SPS/PPS) either in the codec's
extradata (from the SDP's ``sprop-*``) or in-band before keyframes. MP4 — and so the hub —
wants length-prefixed NAL units and the parameter sets in a decoder configuration record
(``avcC``/``hvcC``, ISO/IEC 14496-15). :class:`AnnexBConverter` does that per stream,
noticing when the parameter sets change (a new resolution: a new record, so a new init
segment).
"""

from __future__ import annotations

import struct

from faoyam.media.sps import BitReader, BitstreamError, _skip_profile_tier_level, unescape
from faoyam.media.tracks import CodecConfigError, Track, h264_track, h265_track

H264_SPS, H264_PPS, H264_IDR, H264_AUD = 7, 8, 5, 9
HEVC_VPS, HEVC_SPS, HEVC_PPS, HEVC_AUD = 32, 33, 34, 35


def is_annexb(data: bytes) -> bool:
    return data[:3] == b"\x00\x00\x01" or data[:4] == b"\x00\x00\x00\x01"


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B byte stream, without start codes."""
    units, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        pos = data.find(b"\x00\x00\x01", start)
        unit = data[start:pos if pos >= 0 else len(data)]
        if pos >= 0:
            unit = unit.rstrip(b"\x00")  # the next start code's leading zero, trailing_zero_8bits
        if unit:
            units.append(unit)
    return units


def length_prefixed(units: list[bytes]) -> bytes:
    return b"".join(struct.pack(">I", len(u)) + u for u in units)


def split_length_prefixed(data: bytes, size: int = 4) -> list[bytes]:
    units, pos = [], 0
    while pos + size <= len(data):
        n = int.from_bytes(data[pos:pos + size], "big")
        units.append(data[pos + size:pos + size + n])
        pos += size + n
    return units


def avcc_record(sps: list[bytes], pps: list[bytes]) -> bytes:
    """An ``AVCDecoderConfigurationRecord`` with 4-byte NAL lengths."""
    first = sps[0]
    out = bytearray((1, first[1], first[2], first[3], 0xFC | 3, 0xE0 | len(sps)))
    for unit in sps:
        out += struct.pack(">H", len(unit)) + unit
    out.append(len(pps))
    for unit in pps:
        out += struct.pack(">H", len(unit)) + unit
    return bytes(out)


def _hevc_sps_fields(sps: bytes) -> tuple[int, int, int, int]:
    """(max_sub_layers_minus1, temporal_id_nesting, chroma_format_idc, bit depth luma/chroma
    minus 8 packed as luma << 4 | chroma) of an H.265 SPS."""
    r = BitReader(unescape(sps[2:]))
    r.bits(4)
    sub_layers = r.bits(3)
    nesting = r.bits(1)
    _skip_profile_tier_level(r, sub_layers)
    r.ue()
    chroma = r.ue()
    if chroma == 3:
        r.bits(1)
    r.ue(), r.ue()
    if r.bits(1):
        r.ue(), r.ue(), r.ue(), r.ue()
    luma_depth, chroma_depth = r.ue(), r.ue()
    return sub_layers, nesting, chroma, (luma_depth << 4) | chroma_depth


def hvcc_record(vps: list[bytes], sps: list[bytes], pps: list[bytes]) -> bytes:
    """An ``HEVCDecoderConfigurationRecord`` with 4-byte NAL lengths, the profile, tier and
    level copied from the SPS's general profile_tier_level."""
    raw = unescape(sps[0])
    if len(raw) < 15:
        raise CodecConfigError("H.265 SPS too short")
    ptl = raw[3:15]  # space/tier/profile, 32 compatibility flags, 48 constraint bits, level
    try:
        sub_layers, nesting, chroma, depths = _hevc_sps_fields(sps[0])
    except BitstreamError as exc:
        raise CodecConfigError(f"bad H.265 SPS: {exc}") from exc
    out = bytearray((1,)) + ptl
    out += struct.pack(">HBBBBH", 0xF000, 0xFC, 0xFC | chroma, 0xF8 | (depths >> 4), 0xF8 | (depths & 7), 0)
    out.append(((sub_layers + 1) << 3) | (nesting << 2) | 3)
    arrays = [(HEVC_VPS, vps), (HEVC_SPS, sps), (HEVC_PPS, pps)]
    out.append(len(arrays))
    for nal_type, units in arrays:
        out += struct.pack(">BH", 0x80 | nal_type, len(units))
        for unit in units:
            out += struct.pack(">H", len(unit)) + unit
    return bytes(out)


class AnnexBConverter:
    """One video stream's access units → (MP4 sample, keyframe) plus its current track.

    ``codec`` is ``"h264"`` or ``"hevc"``. ``extradata`` may be Annex B parameter sets, a
    configuration record, or empty (parameter sets then come in-band). After :meth:`convert`,
    ``changed`` says the track changed (configure the hub again before adding the sample).
    """

    def __init__(self, codec: str, extradata: bytes = b""):
        if codec not in ("h264", "hevc"):
            raise CodecConfigError(f"unsupported video codec {codec}")
        self.codec = codec
        self.track: Track | None = None
        self.changed = False
        self._sets: dict[int, bytes] = {}
        self._held: list[bytes] = []  # parameter sets that came alone, for the next access unit
        extradata = bytes(extradata or b"")
        if extradata and extradata[0] == 1:  # already a configuration record
            self.track = (h264_track if codec == "h264" else h265_track)(extradata)
        elif extradata:
            self._learn(split_annexb(extradata))
            self._rebuild()

    def _type(self, unit: bytes) -> int:
        return unit[0] & 0x1F if self.codec == "h264" else (unit[0] >> 1) & 0x3F

    def _learn(self, units: list[bytes]) -> bool:
        wanted = (H264_SPS, H264_PPS) if self.codec == "h264" else (HEVC_VPS, HEVC_SPS, HEVC_PPS)
        changed = False
        for unit in units:
            kind = self._type(unit)
            if kind in wanted and self._sets.get(kind) != unit:
                self._sets[kind] = unit
                changed = True
        return changed

    def _rebuild(self) -> bool:
        s = self._sets
        try:
            if self.codec == "h264" and H264_SPS in s and H264_PPS in s:
                track = h264_track(avcc_record([s[H264_SPS]], [s[H264_PPS]]))
            elif self.codec == "hevc" and all(k in s for k in (HEVC_VPS, HEVC_SPS, HEVC_PPS)):
                track = h265_track(hvcc_record([s[HEVC_VPS]], [s[HEVC_SPS]], [s[HEVC_PPS]]))
            else:
                return False
        except CodecConfigError:
            return False
        if track != self.track:
            self.track = track
            return True
        return False

    def convert(self, data: bytes) -> tuple[bytes, bool] | None:
        """(length-prefixed sample, keyframe) of one access unit; None for a packet without
        a picture (its parameter sets and SEI go with the next one) and while the stream's
        parameter sets are still unknown (nothing can be decoded before them)."""
        self.changed = False
        if is_annexb(data):
            units = split_annexb(data)
        else:
            units = split_length_prefixed(data, self.track.nal_length_size if self.track else 4)
        aud = H264_AUD if self.codec == "h264" else HEVC_AUD
        units = [u for u in units if u and self._type(u) != aud]
        if self._learn(units):
            self.changed = self._rebuild()
        if self.codec == "h264":
            pictures = [u for u in units if 1 <= self._type(u) <= 5]
            key = any(self._type(u) == H264_IDR for u in pictures)
        else:
            pictures = [u for u in units if self._type(u) < 32]
            key = any(16 <= self._type(u) <= 21 for u in pictures)
        if not pictures:  # parameter sets or SEI on their own (RTP depacketizers do this)
            self._held += units
            return None
        units, self._held = self._held + units, []
        if self.track is None:
            return None
        return length_prefixed(units), key
