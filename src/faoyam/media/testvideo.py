"""Test video for the simulator, tests and benchmarks: real H.264/H.265, encoded once.

:func:`make_clip` encodes a short clip with PyAV (libx264 / libx265, both in PyAV's wheel)
into an MP4 file; :func:`load_clip` demuxes it into packets already in MP4/FLV sample form
(length-prefixed NAL units) plus the decoder configuration record. A simulated camera then
*loops* those packets with rewritten timestamps — no encoder runs per camera, so hundreds of
cameras cost only their network writes. The MP4 file itself also feeds third-party pushers
(``ffmpeg -re -i clip.mp4 -c copy -f flv rtmp://…``).

The picture: a static textured scene with a little sensor noise (so the encoder spends bits
on every frame, like a real camera), a bright box that moves **only during the motion
intervals** (``motion``, seconds within the loop — the ground truth for motion detection),
and the frame number as a 16-bit bar code in the bottom-left corner (for frame identity and
latency measurements).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

DEFAULT_MOTION = ((2.0, 4.0), (6.0, 7.0))
BARCODE_BITS = 16
CLIP_VERSION = 2  # bump when the picture or the encoder settings change: old cached clips are stale
NOISE = 3  # ± luma levels of per-frame noise: what makes P-frames cost bits, as on a real sensor


@dataclass(frozen=True, slots=True)
class Packet:
    """One access unit: decode time and composition offset in milliseconds."""

    dts: int
    cts: int
    keyframe: bool
    data: bytes


@dataclass
class Clip:
    """Packets of one encoded clip, ready to loop."""

    codec: str  # "avc1" or "hvc1"
    config: bytes  # avcC / hvcC
    width: int
    height: int
    fps: int
    packets: list[Packet]
    duration_ms: int
    motion: tuple[tuple[float, float], ...]
    path: Path
    audio_config: bytes = b""  # AAC AudioSpecificConfig, empty without audio
    audio_rate: int = 0
    audio_packets: list[Packet] = field(default_factory=list)

    @property
    def bitrate(self) -> float:
        """Video bits per second."""
        return sum(len(p.data) for p in self.packets) * 8000 / self.duration_ms

    def loop(self, loops: int | None = None) -> Iterator[tuple[str, Packet]]:
        """``("video"|"audio", packet)`` in send order, looping forever (or ``loops`` times),
        timestamps continuing across loops."""
        merged = sorted([("video", p) for p in self.packets] + [("audio", p) for p in self.audio_packets],
                        key=lambda item: (item[1].dts, item[0] == "video"))
        n = 0
        while loops is None or n < loops:
            shift = n * self.duration_ms
            for kind, p in merged:
                yield kind, Packet(p.dts + shift, p.cts, p.keyframe, p.data)
            n += 1


def _cache_dir() -> Path:
    base = os.environ.get("FAOYAM_MEDIA_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "faoyam", "media")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _frame_luma(index: int, fps: int, width: int, height: int, texture: np.ndarray,
                motion: Sequence[tuple[float, float]], rng: np.random.Generator) -> np.ndarray:
    y = texture.copy()
    y += rng.integers(-NOISE, NOISE + 1, size=y.shape, dtype=np.int16)  # sensor noise
    t = index / fps
    for start, end in motion:
        if start <= t < end:
            progress = (t - start) / max(end - start, 1e-6)
            box = max(height // 4, 16)
            x0 = int(progress * (width - box))
            y0 = (height - box) // 2
            y[y0:y0 + box, x0:x0 + box] = 235
    cell = max(width // 64, 4)
    for bit in range(BARCODE_BITS):
        value = 235 if (index >> bit) & 1 else 16
        y[height - cell:height, bit * cell:(bit + 1) * cell] = value
    return np.clip(y, 0, 255).astype(np.uint8)


def read_barcode(luma: np.ndarray) -> int:
    """The frame number drawn by :func:`make_clip` into a decoded frame's luma plane."""
    height, width = luma.shape
    cell = max(width // 64, 4)
    row = luma[height - cell // 2 - 1]
    return sum(1 << bit for bit in range(BARCODE_BITS) if row[bit * cell + cell // 2] > 128)


def make_clip(path: Path, *, codec: str = "h264", width: int = 320, height: int = 240, fps: int = 25,
              seconds: float = 4.0, gop_seconds: float = 2.0, bitrate: int = 500_000, bframes: int = 0,
              motion: Sequence[tuple[float, float]] = DEFAULT_MOTION, audio: bool = False,
              preset: str = "veryfast") -> Path:
    """Encode the test picture into an MP4 file at ``path`` (closed GOPs of ``gop_seconds``)."""
    import av

    frames = int(round(seconds * fps))
    gop = max(1, int(round(gop_seconds * fps)))
    rng = np.random.default_rng(7)
    texture = rng.integers(40, 200, size=(height, width), dtype=np.int16)
    texture = ((texture + np.roll(texture, 1, 0) + np.roll(texture, 1, 1)) // 3).astype(np.int16)
    chroma = np.full((height // 2, width), 128, dtype=np.uint8)
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w", format="mp4") as out:
        # Like a camera: constant GOP, and a rate buffer of half a second (so an I-frame is
        # not most of the GOP's bits, as unconstrained ABR would make it)
        rate = f"vbv-maxrate={bitrate // 1000}:vbv-bufsize={bitrate // 2000}"
        common = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}:{rate}"
        if codec == "h264":
            stream = out.add_stream("libx264", rate=fps, options={"preset": preset, "x264-params": common})
        elif codec == "h265":
            stream = out.add_stream("libx265", rate=fps, options={
                "preset": preset, "x265-params": f"{common}:log-level=error"})
            stream.codec_tag = "hvc1"
        else:
            raise ValueError(f"unknown codec {codec}")
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.bit_rate = bitrate
        stream.time_base = Fraction(1, fps * 512)
        audio_stream = None
        if audio:
            audio_stream = out.add_stream("aac", rate=16000, layout="mono")
        for index in range(frames):
            luma = _frame_luma(index, fps, width, height, texture, motion, rng)
            frame = av.VideoFrame.from_ndarray(np.concatenate([luma, chroma]), format="yuv420p")
            frame.pts, frame.time_base = index, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio_stream is not None:
            samples_per_frame, rate = 1024, 16000
            total = int(seconds * rate)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(total) / rate)).astype(np.float32)
            for start in range(0, total - samples_per_frame + 1, samples_per_frame):
                frame = av.AudioFrame.from_ndarray(tone[None, start:start + samples_per_frame], format="flt",
                                                   layout="mono")
                frame.sample_rate, frame.pts = rate, start
                out.mux(audio_stream.encode(frame))
            out.mux(audio_stream.encode(None))
    tmp.replace(path)
    return path


def load_clip(path: Path, motion: Sequence[tuple[float, float]] = DEFAULT_MOTION) -> Clip:
    """Demux an MP4 made by :func:`make_clip` (or any MP4 with H.264/H.265) into packets."""
    import av

    video, audio, audio_config, audio_rate = [], [], b"", 0
    with av.open(str(path)) as container:
        vs = container.streams.video[0]
        codec = {"h264": "avc1", "hevc": "hvc1"}[vs.codec_context.name]
        config, width, height = bytes(vs.codec_context.extradata), vs.width, vs.height
        fps = int(round(vs.average_rate or 25))
        streams = [vs]
        if container.streams.audio:
            aus = container.streams.audio[0]
            audio_config, audio_rate = bytes(aus.codec_context.extradata or b""), aus.sample_rate
            streams.append(aus)
        for packet in container.demux(*streams):
            if packet.dts is None or packet.size == 0:
                continue
            tb = packet.time_base
            dts = int(round(packet.dts * tb * 1000))
            cts = int(round((packet.pts - packet.dts) * tb * 1000)) if packet.pts is not None else 0
            target = video if packet.stream is vs else audio
            target.append(Packet(dts, cts, bool(packet.is_keyframe), bytes(packet)))
    start = video[0].dts
    video = [Packet(p.dts - start, p.cts, p.keyframe, p.data) for p in video]
    audio = [Packet(p.dts - start, 0, True, p.data) for p in audio if p.dts >= start]
    step = video[1].dts - video[0].dts if len(video) > 1 else 40
    duration = video[-1].dts + step
    return Clip(codec, config, width, height, fps, video, duration, tuple(motion), Path(path),
                audio_config, audio_rate, audio)


def cached_clip(**params) -> Clip:
    """:func:`make_clip` once per parameter set (kept in ``$FAOYAM_MEDIA_CACHE`` or
    ``~/.cache/faoyam/media``), then :func:`load_clip`."""
    params.setdefault("motion", DEFAULT_MOTION)
    params["motion"] = tuple(tuple(m) for m in params["motion"])
    key = hashlib.sha256(repr((CLIP_VERSION, sorted(params.items()))).encode()).hexdigest()[:16]
    path = _cache_dir() / f"clip-{params.get('codec', 'h264')}-{key}.mp4"
    if not path.exists():
        make_clip(path, **params)
    return load_clip(path, params["motion"])
