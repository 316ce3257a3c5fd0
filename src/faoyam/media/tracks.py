"""What a stream carries: one :class:`Track` per elementary stream, built from the codec's
own configuration record (the bytes a camera sends once before its first frame).

The same records are what MP4 stores in its sample entries — ``avcC`` for H.264, ``hvcC``
for H.265, the AAC ``AudioSpecificConfig`` inside ``esds`` — so the muxer copies them as they
are. Every constructor validates the record and raises :class:`CodecConfigError` if it does
not parse (a stream that *claims* H.264 but sends something else is refused here).
"""

from __future__ import annotations

from dataclasses import dataclass

from faoyam.media.sps import BitstreamError, h264_size, h265_size

VIDEO_TIMESCALE = 90_000  # the MP4 convention for video; RTMP milliseconds map exactly (×90)


class CodecConfigError(ValueError):
    """A codec configuration record that does not parse."""


@dataclass(frozen=True)
class Track:
    """One elementary stream of a live stream, as the MP4 init segment describes it.

    ``kind`` is ``"video"`` or ``"audio"``; ``codec`` is the MP4 sample-entry type
    (``avc1``, ``hvc1``, ``mp4a``, ``alaw``, ``ulaw``); ``config`` is the decoder
    configuration record (empty for G.711).
    """

    kind: str
    codec: str
    timescale: int
    config: bytes = b""
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0
    nal_length_size: int = 4

    @property
    def mime_codec(self) -> str:
        """The RFC 6381 ``codecs=`` string a browser's Media Source needs (``avc1.64001f``)."""
        if self.codec == "avc1":
            return "avc1." + self.config[1:4].hex()
        if self.codec == "hvc1":
            return _hevc_codec_string(self.config)
        if self.codec == "mp4a":
            return f"mp4a.40.{self.config[0] >> 3}"
        return self.codec


def _records(data: bytes, pos: int, count: int) -> tuple[list[bytes], int]:
    """``count`` length-prefixed (16-bit) NAL units starting at ``pos``."""
    units = []
    for _ in range(count):
        size = int.from_bytes(data[pos:pos + 2], "big")
        unit = data[pos + 2:pos + 2 + size]
        if len(unit) != size:
            raise CodecConfigError("configuration record truncated")
        units.append(unit)
        pos += 2 + size
    return units, pos


def h264_track(avcc: bytes) -> Track:
    """The video track of an ``AVCDecoderConfigurationRecord`` (ISO/IEC 14496-15 5.3.3)."""
    avcc = bytes(avcc)
    if len(avcc) < 7 or avcc[0] != 1:
        raise CodecConfigError("not an AVC decoder configuration record")
    sps_list, _ = _records(avcc, 6, avcc[5] & 0x1F)
    if not sps_list:
        raise CodecConfigError("AVC configuration without an SPS")
    try:
        width, height = h264_size(sps_list[0])
    except BitstreamError as exc:
        raise CodecConfigError(f"bad H.264 SPS: {exc}") from exc
    return Track("video", "avc1", VIDEO_TIMESCALE, avcc, width, height, nal_length_size=(avcc[4] & 3) + 1)


def h265_track(hvcc: bytes) -> Track:
    """The video track of an ``HEVCDecoderConfigurationRecord`` (ISO/IEC 14496-15 8.3.3)."""
    hvcc = bytes(hvcc)
    if len(hvcc) < 23 or hvcc[0] != 1:
        raise CodecConfigError("not an HEVC decoder configuration record")
    pos, sps = 23, None
    for _ in range(hvcc[22]):
        if pos + 3 > len(hvcc):
            raise CodecConfigError("configuration record truncated")
        nal_type, count = hvcc[pos] & 0x3F, int.from_bytes(hvcc[pos + 1:pos + 3], "big")
        units, pos = _records(hvcc, pos + 3, count)
        if nal_type == 33 and units and sps is None:
            sps = units[0]
    if sps is None:
        raise CodecConfigError("HEVC configuration without an SPS")
    try:
        width, height = h265_size(sps)
    except BitstreamError as exc:
        raise CodecConfigError(f"bad H.265 SPS: {exc}") from exc
    return Track("video", "hvc1", VIDEO_TIMESCALE, hvcc, width, height, nal_length_size=(hvcc[21] & 3) + 1)


AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


def aac_track(asc: bytes) -> Track:
    """The audio track of an AAC ``AudioSpecificConfig`` (ISO/IEC 14496-3 1.6.2.1)."""
    asc = bytes(asc)
    if len(asc) < 2:
        raise CodecConfigError("AAC AudioSpecificConfig too short")
    bits = int.from_bytes(asc[:2], "big")
    object_type, rate_index, channels = bits >> 11, (bits >> 7) & 0xF, (bits >> 3) & 0xF
    if object_type in (0, 31) or rate_index >= len(AAC_RATES):
        raise CodecConfigError("unsupported AAC configuration")
    rate = AAC_RATES[rate_index]
    return Track("audio", "mp4a", rate, asc, sample_rate=rate, channels=channels or 1)


def g711_track(law: str, sample_rate: int = 8000) -> Track:
    """A G.711 track (``law`` is ``"alaw"`` or ``"ulaw"``); these carry no configuration."""
    return Track("audio", law, sample_rate, sample_rate=sample_rate, channels=1)


def _hevc_codec_string(hvcc: bytes) -> str:
    space = "", "A", "B", "C"
    profile = hvcc[1]
    compat = int.from_bytes(hvcc[2:6], "big")
    reversed_compat = int(f"{compat:032b}"[::-1], 2)
    tier = "H" if profile & 0x20 else "L"
    constraints = hvcc[6:12].rstrip(b"\x00")
    parts = [f"hvc1.{space[profile >> 6]}{profile & 0x1F}", f"{reversed_compat:x}", f"{tier}{hvcc[12]}"]
    parts += [f"{b:02X}" for b in constraints] or ["B0"]
    return ".".join(parts)
