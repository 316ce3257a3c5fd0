"""Where a device agent's pictures (and later its video) come from.

``MediaSource`` is the seam: the simulator uses ``SyntheticSource`` (frames drawn with
NumPy/Pillow, encoded to JPEG, or to H.264 with PyAV's libx264), the RTSP bridge uses
``AvSource`` (PyAV pulling an ``rtsp://`` or file URL). The media work plugs its uplink
into ``packets``: a source yields encoded H.264 packets without decoding them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Packet:
    data: bytes
    pts: int | None
    keyframe: bool
    time_base: float


class MediaSource(ABC):
    @abstractmethod
    async def snapshot(self, channel: int = 0) -> bytes:
        """A JPEG of what the channel sees now."""

    def packets(self, channel: int = 0, seconds: float | None = None) -> Iterator[Packet]:
        """Encoded H.264 packets of the channel's stream (blocking; run in a thread)."""
        raise NotImplementedError

    async def close(self) -> None:  # noqa: B027 - optional
        pass


def _jpeg(img: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class SyntheticSource(MediaSource):
    """A moving test picture per channel, with the channel name and the time on it."""

    def __init__(self, width: int = 640, height: int = 360, names: list[str] | None = None, fps: int = 15):
        self.width, self.height, self.fps = width, height, fps
        self.names = names or []

    def frame(self, channel: int = 0, t: float | None = None) -> np.ndarray:
        t = time.time() if t is None else t
        w, h = self.width, self.height
        x = np.linspace(0, 1, w, dtype=np.float32)[None, :]
        y = np.linspace(0, 1, h, dtype=np.float32)[:, None]
        phase = t * 0.7 + channel * 1.3
        r = (0.5 + 0.5 * np.sin(2 * math.pi * (x + phase * 0.1))) * 200
        g = (0.5 + 0.5 * np.sin(2 * math.pi * (y * 1.5 + phase * 0.07))) * 180 + 0 * x
        b = np.full((h, w), 90 + 40 * channel % 160, dtype=np.float32)
        rgb = np.stack([r + 0 * y, g, b], axis=-1).astype(np.uint8)
        # a "person" walking across the scene
        cx = int((0.1 + 0.8 * (0.5 + 0.5 * math.sin(phase))) * w)
        rgb[int(h * 0.45):int(h * 0.9), max(0, cx - 15):cx + 15] = (240, 240, 230)
        return rgb

    def image(self, channel: int = 0, t: float | None = None) -> Image.Image:
        img = Image.fromarray(self.frame(channel, t))
        d = ImageDraw.Draw(img)
        name = self.names[channel] if channel < len(self.names) else f"CH{channel + 1}"
        stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        d.rectangle((0, 0, self.width, 18), fill=(0, 0, 0))
        d.text((6, 3), f"{name}  {stamp}", fill=(255, 255, 255))
        return img

    async def snapshot(self, channel: int = 0) -> bytes:
        return await asyncio.to_thread(lambda: _jpeg(self.image(channel)))

    def packets(self, channel: int = 0, seconds: float | None = 2.0) -> Iterator[Packet]:
        """H.264 (libx264, baseline-ish, one keyframe a second) of the synthetic picture."""
        import av

        enc = av.CodecContext.create("libx264", "w")
        enc.width, enc.height, enc.pix_fmt = self.width, self.height, "yuv420p"
        enc.time_base = Fraction(1, self.fps)
        enc.framerate = self.fps
        enc.gop_size = self.fps
        enc.options = {"preset": "ultrafast", "tune": "zerolatency", "bf": "0", "repeat-headers": "1"}
        n = 0
        total = None if seconds is None else int(seconds * self.fps)
        t0 = time.time()
        while total is None or n < total:
            vf = av.VideoFrame.from_ndarray(self.frame(channel, t0 + n / self.fps), format="rgb24").reformat(format="yuv420p")
            vf.pts = n
            for pkt in enc.encode(vf):
                yield Packet(bytes(pkt), pkt.pts, bool(pkt.is_keyframe), 1 / self.fps)
            n += 1
        for pkt in enc.encode(None):
            yield Packet(bytes(pkt), pkt.pts, bool(pkt.is_keyframe), 1 / self.fps)


class AvSource(MediaSource):
    """A real camera (``rtsp://…``) or any URL/file FFmpeg opens, through PyAV.

    A snapshot opens the stream, decodes until the first complete video frame and encodes
    it as JPEG; nothing is kept. ``packets`` copies the encoded stream (no transcoding).
    """

    def __init__(self, url: str | list[str], *, timeout_s: float = 10.0, transport: str = "tcp"):
        self.urls = [url] if isinstance(url, str) else list(url)
        self.timeout_s = timeout_s
        self.transport = transport

    def _open(self, channel: int):
        import av

        url = self.urls[channel] if channel < len(self.urls) else self.urls[0]
        opts = {}
        if url.startswith("rtsp"):
            opts = {"rtsp_transport": self.transport, "timeout": str(int(self.timeout_s * 1_000_000)),
                    "analyzeduration": "1000000", "probesize": "200000"}
        return av.open(url, options=opts, timeout=self.timeout_s)

    def _grab(self, channel: int) -> bytes:
        with self._open(channel) as c:
            stream = c.streams.video[0]
            for frame in c.decode(stream):
                return _jpeg(frame.to_image(), 85)
        raise TimeoutError("no video frame from the source")

    async def snapshot(self, channel: int = 0) -> bytes:
        return await asyncio.wait_for(asyncio.to_thread(self._grab, channel), self.timeout_s + 5)

    def packets(self, channel: int = 0, seconds: float | None = None) -> Iterator[Packet]:
        with self._open(channel) as c:
            stream = c.streams.video[0]
            tb = float(stream.time_base or 0)
            t0 = time.monotonic()
            for pkt in c.demux(stream):
                if pkt.size == 0:
                    continue
                yield Packet(bytes(pkt), pkt.pts, bool(pkt.is_keyframe), tb)
                if seconds is not None and time.monotonic() - t0 > seconds:
                    return
