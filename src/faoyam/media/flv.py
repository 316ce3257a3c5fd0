"""FLV audio and video tag bodies, the payload of RTMP audio/video messages.

An FLV video tag carries H.264 in AVCC form (length-prefixed NAL units) — the MP4 sample
format — so a frame goes from RTMP to fMP4 without touching a NAL unit. Supported:

* legacy video tags: codec id 7 (H.264) and 12 (H.265, the widespread Chinese extension),
  with an AVC packet type (0 configuration, 1 frames, 2 end of sequence) and a signed 24-bit
  composition time offset;
* Enhanced RTMP (veovera.org, 2023) video tags: ``IsExHeader`` bit, a FourCC (``avc1``,
  ``hvc1``) and packet types SequenceStart / CodedFrames / CodedFramesX / SequenceEnd;
* audio: AAC (sound format 10, configuration + raw frames), G.711 A-law (7) and µ-law (8).

Anything else raises :class:`FlvError`, which closes the publishing connection with a log
line: a stream we cannot carry should fail loudly, not play black.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONFIG, FRAME, END = "config", "frame", "end"


class FlvError(ValueError):
    """A tag body that is truncated or carries a codec this service does not take."""


@dataclass(frozen=True, slots=True)
class VideoTag:
    kind: str  # CONFIG, FRAME or END
    codec: str  # "avc1" or "hvc1"
    keyframe: bool
    cts: int  # composition offset in milliseconds (pts - dts)
    data: memoryview  # decoder configuration record, or the frame's NAL units (AVCC)


@dataclass(frozen=True, slots=True)
class AudioTag:
    kind: str  # CONFIG or FRAME
    codec: str  # "mp4a", "alaw" or "ulaw"
    data: memoryview


_LEGACY_VIDEO = {7: "avc1", 12: "hvc1"}
_FOURCC = {b"avc1": "avc1", b"hvc1": "hvc1"}
_EX_SEQUENCE_START, _EX_CODED_FRAMES, _EX_SEQUENCE_END, _EX_CODED_FRAMES_X = 0, 1, 2, 3
_EX_METADATA, _EX_MPEG2TS_START = 4, 5
_VIDEO_INFO_FRAME = 5


def _si24(body: bytes, pos: int) -> int:
    value = (body[pos] << 16) | (body[pos + 1] << 8) | body[pos + 2]
    return value - (1 << 24) if value & 0x800000 else value


def parse_video(body: bytes) -> VideoTag | None:
    """The tag, or None for tags that carry no picture (info frames, metadata)."""
    if not body:
        raise FlvError("empty video tag")
    body = memoryview(body)  # slices below share the message's bytes instead of copying them
    head = body[0]
    frame_type = (head >> 4) & 0x7
    if frame_type == _VIDEO_INFO_FRAME:
        return None
    keyframe = frame_type == 1
    if head & 0x80:  # Enhanced RTMP
        if len(body) < 5:
            raise FlvError("truncated enhanced video tag")
        packet_type = head & 0x0F
        codec = _FOURCC.get(body[1:5].tobytes())
        if packet_type == _EX_METADATA:
            return None
        if codec is None:
            raise FlvError(f"unsupported enhanced-RTMP video codec {body[1:5].tobytes()!r} (packet type {packet_type})")
        if packet_type == _EX_SEQUENCE_START:
            return VideoTag(CONFIG, codec, keyframe, 0, body[5:])
        if packet_type == _EX_CODED_FRAMES:
            if len(body) < 8:
                raise FlvError("truncated enhanced video frame")
            return VideoTag(FRAME, codec, keyframe, _si24(body, 5), body[8:])
        if packet_type == _EX_CODED_FRAMES_X:
            return VideoTag(FRAME, codec, keyframe, 0, body[5:])
        if packet_type == _EX_SEQUENCE_END:
            return VideoTag(END, codec, False, 0, b"")
        raise FlvError(f"unsupported enhanced-RTMP video packet type {packet_type}")
    codec = _LEGACY_VIDEO.get(head & 0x0F)
    if codec is None:
        raise FlvError(f"unsupported FLV video codec id {head & 0x0F} (H.264 or H.265 only)")
    if len(body) < 5:
        raise FlvError("truncated video tag")
    packet_type = body[1]
    if packet_type == 0:
        return VideoTag(CONFIG, codec, keyframe, 0, body[5:])
    if packet_type == 1:
        return VideoTag(FRAME, codec, keyframe, _si24(body, 2), body[5:])
    if packet_type == 2:
        return VideoTag(END, codec, False, 0, b"")
    raise FlvError(f"bad AVC packet type {packet_type}")


_AUDIO_FORMATS = {10: "mp4a", 7: "alaw", 8: "ulaw"}


def parse_audio(body: bytes) -> AudioTag:
    if not body:
        raise FlvError("empty audio tag")
    codec = _AUDIO_FORMATS.get(body[0] >> 4)
    if codec is None:
        raise FlvError(f"unsupported FLV audio format {body[0] >> 4} (AAC or G.711 only)")
    body = memoryview(body)
    if codec != "mp4a":
        return AudioTag(FRAME, codec, body[1:])
    if len(body) < 2:
        raise FlvError("truncated AAC tag")
    return AudioTag(CONFIG if body[1] == 0 else FRAME, codec, body[2:])


# -- writing (used by our publisher; cameras and encoders bring their own) --

def video_tag(codec: str, kind: str, keyframe: bool = False, cts: int = 0, data: bytes = b"") -> bytes:
    """A video tag body: legacy form for H.264 (every RTMP server reads it), Enhanced RTMP
    for H.265 (the standard way; the legacy codec id 12 is not)."""
    frame_type = 1 if keyframe or kind == CONFIG else 2
    if codec == "avc1":
        packet_type = {CONFIG: 0, FRAME: 1, END: 2}[kind]
        return bytes(((frame_type << 4) | 7, packet_type)) + struct.pack(">i", cts)[1:] + data
    packet_type = {CONFIG: _EX_SEQUENCE_START, FRAME: _EX_CODED_FRAMES, END: _EX_SEQUENCE_END}[kind]
    head = bytes((0x80 | (frame_type << 4) | packet_type,)) + codec.encode()
    return head + (struct.pack(">i", cts)[1:] if kind == FRAME else b"") + data


def aac_tag(kind: str, data: bytes) -> bytes:
    """An AAC audio tag body (the header byte says 44 kHz stereo 16-bit, as FLV requires)."""
    return bytes((0xAF, 0 if kind == CONFIG else 1)) + data
