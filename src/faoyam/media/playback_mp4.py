"""Recorded fMP4 back out: split a segment's bytes into fragments as they stream from the
blob store, move their decode times onto one playback timeline, and describe an init.

Recorded segments are the hub's own bytes (``ftyp``+``moov``, then ``moof``+``mdat``
fragments; docs/recording.md). Playback and clips send those bytes on unchanged except for
each ``traf``'s ``tfdt`` (base decode time): rewritten so that the first frame sent is at 0 and
segment after segment follows without overlap or jump, whatever the camera's clock did
across a gap or a restart. ``mdat`` payloads are passed through as the store's chunks
(memoryview slices, no copy); only the small ``moof`` boxes are collected and patched.
"""

from __future__ import annotations

import struct

from faoyam.media.fmp4 import box, full_box
from faoyam.media.fmp4_parse import FragmentError, boxes, init_info  # noqa: F401 - init_info re-exported

MAX_BOX = 16 << 20  # a moof (or any box but mdat) larger than this is not ours


def mime(init: bytes, video_codec: str) -> str:
    """The Media Source type of a recorded init: the row's video codec string (``avc1.64001f``)
    and the init's audio codec."""
    codecs = [video_codec if t.kind == "video" else t.codec for t in init_info(init) if t.codec]
    return f'video/mp4; codecs="{",".join(codecs)}"'


def init_message_tracks(init: bytes, video_codec: str, width: int, height: int) -> list[dict]:
    return [{"kind": t.kind, "codec": video_codec if t.kind == "video" else t.codec,
             **({"width": width, "height": height} if t.kind == "video" else {})} for t in init_info(init)]


def with_duration(init: bytes, duration_ms: int) -> bytes:
    """The init with the clip's duration in ``mvhd`` and a ``mehd`` in ``mvex``: a fragmented
    file whose players show its length before reading its fragments (the moov is first)."""
    parts = []
    for kind, start, end in boxes(init):
        if kind != b"moov":
            parts.append(init[start - 8:end])
            continue
        children = []
        for sub, s, e in boxes(init, start, end):
            raw = bytearray(init[s - 8:e])
            if sub == b"mvhd":
                version = raw[8]
                if version == 0:
                    struct.pack_into(">I", raw, 8 + 16, min(duration_ms, 0xFFFFFFFF))
                else:
                    struct.pack_into(">Q", raw, 8 + 28, duration_ms)
                children.append(bytes(raw))
            elif sub == b"mvex":
                kept = [init[cs - 8:ce] for ck, cs, ce in boxes(init, s, e) if ck != b"mehd"]
                children.append(box(b"mvex", full_box(b"mehd", 1, 0, struct.pack(">Q", duration_ms)), *kept))
            else:
                children.append(bytes(raw))
        parts.append(box(b"moov", *children))
    return b"".join(parts)


class Splitter:
    """Cuts a byte stream of top-level boxes into ``("box", type, bytes)`` for every box but
    ``mdat``, and ``("mdat", header, payload size)`` followed by ``("data", slice, last)``
    pieces of its payload as they arrive (never collected)."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.need = 0  # bytes of the current non-mdat box (0: reading a header)
        self.kind = b""
        self.remaining = 0  # mdat payload bytes still to pass through

    def feed(self, chunk: bytes) -> list[tuple]:
        out: list[tuple] = []
        mv = memoryview(chunk)
        pos, n = 0, len(chunk)
        while pos < n:
            if self.remaining:
                take = min(self.remaining, n - pos)
                self.remaining -= take
                out.append(("data", mv[pos:pos + take], self.remaining == 0))
                pos += take
                continue
            if not self.need:
                want = 16 if len(self.buf) >= 8 and struct.unpack_from(">I", self.buf)[0] == 1 else 8
                take = min(want - len(self.buf), n - pos)
                self.buf += mv[pos:pos + take]
                pos += take
                if len(self.buf) < want:
                    continue
                size, kind = struct.unpack_from(">I4s", self.buf)
                if size == 1:
                    if want == 8:
                        continue  # read the 64-bit size next
                    size = struct.unpack_from(">Q", self.buf, 8)[0]
                if size < len(self.buf):
                    raise FragmentError(f"box {kind!r} of size {size}")
                if kind == b"mdat":
                    out.append(("mdat", bytes(self.buf), size - len(self.buf)))
                    self.remaining = size - len(self.buf)
                    self.buf = bytearray()
                    continue
                if size > MAX_BOX:
                    raise FragmentError(f"box {kind!r} too large ({size})")
                self.need, self.kind = size, kind
            take = min(self.need - len(self.buf), n - pos)
            self.buf += mv[pos:pos + take]
            pos += take
            if len(self.buf) == self.need:
                out.append(("box", self.kind, bytes(self.buf)))
                self.buf, self.need = bytearray(), 0
        return out


def moof_times(moof: bytes) -> dict[int, tuple[int, int]]:
    """``{track id: (tfdt offset in moof, base decode time)}`` of a ``moof`` box."""
    found = {}
    for kind, s, e in boxes(moof, 8):
        if kind != b"traf":
            continue
        track, at, value = 0, -1, 0
        for sub, ss, se in boxes(moof, s, e):
            if sub == b"tfhd":
                track = struct.unpack_from(">I", moof, ss + 4)[0]
            elif sub == b"tfdt":
                at = ss
                value = struct.unpack_from(">Q" if moof[ss] else ">I", moof, ss + 4)[0]
        if at >= 0:
            found[track] = (at, value)
    return found


def shift_moof(moof: bytes, times: dict[int, tuple[int, int]], shift_s: float,
               timescales: dict[int, int]) -> bytes:
    """The ``moof`` with every track's decode time moved by ``shift_s`` seconds (never below 0)."""
    out = bytearray(moof)
    for track, (at, value) in times.items():
        new = max(0, value + round(shift_s * timescales.get(track, 90000)))
        if out[at]:
            struct.pack_into(">Q", out, at + 4, new)
        else:
            struct.pack_into(">I", out, at + 4, new & 0xFFFFFFFF)
    return bytes(out)

