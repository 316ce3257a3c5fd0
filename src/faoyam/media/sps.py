"""Picture size from an H.264 or H.265 sequence parameter set (SPS).

The picture size that goes into the MP4 init segment is read from the SPS the camera sends,
never from RTMP's ``onMetaData`` (which is optional and may lie). Only the fields up to the
size and cropping window are parsed; nothing is decoded.
"""

from __future__ import annotations


class BitstreamError(ValueError):
    """The parameter set is truncated or not what it claims to be."""


def unescape(nal: bytes) -> bytes:
    """Remove emulation-prevention bytes (``00 00 03`` → ``00 00``) from a NAL unit."""
    if b"\x00\x00\x03" not in nal:
        return nal
    out, zeros = bytearray(), 0
    for byte in nal:
        if zeros >= 2 and byte == 3:
            zeros = 0
            continue
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


class BitReader:
    """MSB-first bit reader with Exp-Golomb codes, as used by H.264/H.265 headers."""

    def __init__(self, data: bytes):
        self._value = int.from_bytes(data, "big")
        self._left = len(data) * 8

    def bits(self, count: int) -> int:
        if count > self._left:
            raise BitstreamError("parameter set ends too early")
        self._left -= count
        return (self._value >> self._left) & ((1 << count) - 1)

    def flag(self) -> bool:
        return bool(self.bits(1))

    def ue(self) -> int:
        zeros = 0
        while not self.bits(1):
            zeros += 1
            if zeros > 31:
                raise BitstreamError("Exp-Golomb code longer than 32 bits")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}


def _skip_scaling_list(reader: BitReader, size: int) -> None:
    last = next_scale = 8
    for _ in range(size):
        if next_scale:
            next_scale = (last + reader.se() + 256) % 256
        last = next_scale or last


def h264_size(sps: bytes) -> tuple[int, int]:
    """(width, height) in pixels of an H.264 SPS NAL unit (header byte included)."""
    if not sps or sps[0] & 0x1F != 7:
        raise BitstreamError("not an H.264 SPS")
    r = BitReader(unescape(sps[1:]))
    profile = r.bits(8)
    r.bits(16)  # constraint flags, level
    r.ue()  # seq_parameter_set_id
    chroma = 1
    if profile in _HIGH_PROFILES:
        chroma = r.ue()
        if chroma == 3:
            r.flag()  # separate_colour_plane_flag
        r.ue(), r.ue(), r.flag()  # bit depths, qpprime_y_zero_transform_bypass
        if r.flag():  # seq_scaling_matrix_present
            for i in range(12 if chroma == 3 else 8):
                if r.flag():
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    r.ue()  # log2_max_frame_num_minus4
    poc_type = r.ue()
    if poc_type == 0:
        r.ue()
    elif poc_type == 1:
        r.flag(), r.se(), r.se()
        for _ in range(r.ue()):
            r.se()
    r.ue(), r.flag()  # max_num_ref_frames, gaps_in_frame_num_allowed
    width_mbs, height_units = r.ue() + 1, r.ue() + 1
    frame_mbs_only = r.flag()
    if not frame_mbs_only:
        r.flag()  # mb_adaptive_frame_field
    r.flag()  # direct_8x8_inference
    left = right = top = bottom = 0
    if r.flag():
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
    field_factor = 2 - frame_mbs_only
    crop_x = 2 if chroma in (1, 2) else 1
    crop_y = (2 if chroma == 1 else 1) * field_factor
    return (width_mbs * 16 - crop_x * (left + right),
            field_factor * height_units * 16 - crop_y * (top + bottom))


def _skip_profile_tier_level(r: BitReader, max_sub_layers_minus1: int) -> None:
    r.bits(32), r.bits(32), r.bits(24), r.bits(8)  # general profile (88 bits) + level
    sub_profile, sub_level = [], []
    for _ in range(max_sub_layers_minus1):
        sub_profile.append(r.flag())
        sub_level.append(r.flag())
    if max_sub_layers_minus1:
        for _ in range(max_sub_layers_minus1, 8):
            r.bits(2)
    for has_profile, has_level in zip(sub_profile, sub_level):
        if has_profile:
            r.bits(32), r.bits(32), r.bits(24)
        if has_level:
            r.bits(8)


def h265_size(sps: bytes) -> tuple[int, int]:
    """(width, height) in pixels of an H.265 SPS NAL unit (2-byte header included)."""
    if len(sps) < 3 or (sps[0] >> 1) & 0x3F != 33:
        raise BitstreamError("not an H.265 SPS")
    r = BitReader(unescape(sps[2:]))
    r.bits(4)  # sps_video_parameter_set_id
    max_sub_layers_minus1 = r.bits(3)
    r.flag()  # temporal_id_nesting
    _skip_profile_tier_level(r, max_sub_layers_minus1)
    r.ue()  # sps_seq_parameter_set_id
    chroma = r.ue()
    if chroma == 3:
        r.flag()
    width, height = r.ue(), r.ue()
    if r.flag():  # conformance_window_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        sub_w = 2 if chroma in (1, 2) else 1
        sub_h = 2 if chroma == 1 else 1
        width -= sub_w * (left + right)
        height -= sub_h * (top + bottom)
    return width, height
