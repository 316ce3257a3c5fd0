"""Where a device agent's pictures (and later its video) come from.

``MediaSource`` is the seam: the simulator uses ``SyntheticSource`` (frames drawn with
NumPy/Pillow, encoded to JPEG, or to H.264 with PyAV's libx264), the RTSP bridge uses
``AvSource`` (PyAV pulling an ``rtsp://`` or file URL).

Video goes up through :class:`StreamPusher` (on ``start_stream``): it takes the source's
:meth:`MediaSource.clip` — packets already in MP4/FLV sample form with their decoder
configuration — and pushes them over RTMP at real-time rate, looping, reconnecting with
backoff until ``stop_stream``. Nothing is encoded per push: the simulator's clips are
pre-encoded once (``media.testvideo``), the bridge copies the camera's packets.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import math
import contextlib
import random
import threading
import time
from pathlib import Path
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image, ImageDraw

from faoyam.media.annexb import AnnexBConverter
from faoyam.media.rtmp_publisher import PublishError, RtmpPublisher
from faoyam.media.testvideo import Clip, cached_clip, load_clip
from faoyam.media.testvideo import Packet as Packet_

log = logging.getLogger("faoyam.agent.media")
PUSH_TICK_S = 0.1  # one wake-up per tick per push: frames are sent in small batches


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

    async def clip(self, channel: int = 0, stream: int = 0) -> Clip:
        """What ``start_stream`` pushes for this channel stream, looped."""
        raise NotImplementedError

    def has_stream(self, stream: int) -> bool:
        """Whether the device has this stream (0 main, 1 sub): ``start_stream`` for one it
        lacks is refused."""
        return True

    def stream_config(self) -> dict:
        """What the device reports about its streams in its configuration
        (``mainStream``/``subStream``: codec and resolution; docs/device-protocol.md), or
        ``{}`` when it cannot tell before streaming."""
        return {}

    async def push(self, publisher: RtmpPublisher, channel: int, stream: int, stop: asyncio.Event) -> int:
        """Feed one connected publisher until ``stop`` (or ``ConnectionError``); returns the
        packets sent. Default: :meth:`clip` looped at real-time rate."""
        return await push_clip(publisher, await self.clip(channel, stream), stop)

    async def close(self) -> None:  # noqa: B027 - optional
        pass


def _jpeg(img: Image.Image, quality: int = 80) -> bytes:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, "JPEG", quality=quality)
    return buf.getvalue()


SAME = "same"  # SyntheticSource(sub_codec=SAME): the sub-stream in the main stream's codec
STREAM_SIZES = {0: (320, 240), 1: (160, 128)}  # of the pushed clips: main, sub


class SyntheticSource(MediaSource):
    """A moving test picture per channel, with the channel name and the time on it.

    ``codec``: the main stream's, ``"h264"`` or ``"h265"``; ``sub_codec``: the sub-stream's
    (default: the same), or None for a camera without one. The variants real cameras come
    in::

        SyntheticSource(codec="h264")                   # H.264 main and sub
        SyntheticSource(codec="h265", sub_codec="h264")  # H.265 main, H.264 sub-stream
        SyntheticSource(codec="h265", sub_codec=None)    # H.265 only
    """

    def __init__(self, width: int = 640, height: int = 360, names: list[str] | None = None, fps: int = 15,
                 codec: str = "h264", sub_codec: str | None = SAME):
        self.width, self.height, self.fps = width, height, fps
        self.names = names or []
        self.codec = codec  # of the pushed main stream: "h264" or "h265"
        self.sub_codec = codec if sub_codec == SAME else sub_codec
        self._clips: dict[int, Clip] = {}

    def has_stream(self, stream: int) -> bool:
        return stream == 0 or (stream == 1 and self.sub_codec is not None)

    def stream_config(self) -> dict:
        def entry(codec: str, stream: int) -> dict:
            width, height = STREAM_SIZES[stream]
            return {"codec": codec, "resolution": f"{width}x{height}"}

        config = {"mainStream": entry(self.codec, 0)}
        if self.sub_codec is not None:
            config["subStream"] = entry(self.sub_codec, 1)
        return config

    async def clip(self, channel: int = 0, stream: int = 0) -> Clip:
        """The pre-encoded test clip (moving box in known motion intervals, frame-number
        bar code), encoded once per machine and cached; the sub-stream is smaller."""
        if stream not in self._clips:
            if not self.has_stream(stream):
                raise ValueError(f"this camera has no stream {stream}")
            width, height = STREAM_SIZES[stream]
            codec = self.codec if stream == 0 else self.sub_codec
            self._clips[stream] = await asyncio.to_thread(cached_clip, codec=codec, seconds=4.0, width=width,
                                                          height=height)
        return self._clips[stream]

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

    def __init__(self, url: str | list[str], *, timeout_s: float = 10.0, transport: str = "tcp",
                 clip_seconds: float = 10.0):
        self.urls = [url] if isinstance(url, str) else list(url)
        self.timeout_s = timeout_s
        self.transport = transport
        self.clip_seconds = clip_seconds

    async def clip(self, channel: int = 0, stream: int = 0) -> Clip:
        """The camera's own packets (codec copy): ``clip_seconds`` of its stream, recorded
        through PyAV into MP4 (which puts H.264/H.265 in the sample form RTMP carries), then
        read back as a clip. A push reconnect takes a fresh recording."""
        import tempfile

        def record() -> Clip:
            import av

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "camera.mp4"
                with self._open(channel) as src, av.open(str(path), "w", format="mp4") as out:
                    vin = src.streams.video[0]
                    vout = out.add_stream_from_template(vin)
                    if vin.codec_context.name == "hevc":
                        vout.codec_tag = "hvc1"
                    first = None
                    for pkt in src.demux(vin):
                        if pkt.dts is None or pkt.size == 0:
                            continue
                        if first is None:
                            if not pkt.is_keyframe:
                                continue
                            first = pkt.dts
                        if (pkt.dts - first) * pkt.time_base > self.clip_seconds:
                            break
                        pkt.stream = vout
                        out.mux(pkt)
                clip = load_clip(path)
            # The MP4 muxer keeps only the keyframe flags RTP depacketizing set, which may be
            # none: a sample is a keyframe when it holds an IDR/IRAP NAL unit.
            cleaned = [(p, *_clean_sample(clip.codec, p.data)) for p in clip.packets]
            clip.packets = [Packet_(p.dts, p.cts, p.keyframe or irap, data) for p, data, irap in cleaned if data]
            return clip

        return await asyncio.wait_for(asyncio.to_thread(record), self.timeout_s + self.clip_seconds + 5)

    async def push(self, publisher: RtmpPublisher, channel: int, stream: int, stop: asyncio.Event) -> int:
        """Relay the camera live: PyAV demuxes it in a thread, each H.264 or H.265 packet
        goes out as it arrives (Annex-B start codes rewritten to length prefixes, codec copy;
        H.265 in Enhanced RTMP form, as :mod:`~faoyam.media.rtmp_publisher` sends it). New
        parameter sets mid-stream (the camera changed resolution) are sent as a new sequence
        header first. A camera in another codec is pushed as a looped recording (:meth:`clip`)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue(maxsize=200)
        halt = threading.Event()

        def put(item) -> None:
            if halt.is_set():
                return
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result(self.timeout_s)

        def relay() -> None:
            try:
                with self._open(channel) as src:
                    vs = src.streams.video[0]
                    if vs.codec_context.name not in ("h264", "hevc"):
                        put(("other", vs.codec_context.name))
                        return
                    extradata = bytes(vs.codec_context.extradata or b"")
                    put(("config", vs.codec_context.name, extradata, int(round(vs.average_rate or 25))))
                    first = None
                    for pkt in src.demux(vs):
                        if halt.is_set():
                            return
                        if pkt.dts is None or pkt.size == 0:
                            continue
                        first = pkt.dts if first is None else first
                        tb = pkt.time_base
                        dts = int((pkt.dts - first) * tb * 1000)
                        cts = int((pkt.pts - pkt.dts) * tb * 1000) if pkt.pts is not None else 0
                        put(("packet", dts, cts, bytes(pkt)))
            except Exception as exc:  # noqa: BLE001 - handed to the pushing side
                put(("error", exc))
            finally:
                with contextlib.suppress(Exception):
                    put(("end",))

        thread = threading.Thread(target=relay, name=f"relay-{channel}", daemon=True)
        thread.start()
        sent, configured, converter, fps = 0, False, None, 25
        try:
            while not stop.is_set():
                if publisher.closed:
                    raise ConnectionError("the media server closed the connection")
                try:
                    item = await asyncio.wait_for(queue.get(), PUSH_TICK_S * 5)
                except TimeoutError:
                    continue
                kind = item[0]
                if kind == "other":
                    return await push_clip(publisher, await self.clip(channel, stream), stop)
                if kind == "error":
                    raise ConnectionError(f"camera: {item[1]}")
                if kind == "end":
                    raise ConnectionError("the camera's stream ended")
                if kind == "config":
                    _, codec, extradata, fps = item
                    # parameter sets from the SDP (extradata) or, without them, in-band
                    converter = AnnexBConverter(codec, extradata)
                    continue
                _, dts, cts, data = item
                if converter is None:
                    continue
                converted = converter.convert(data)
                if converted is None:
                    continue  # parameter sets or SEI alone, or before the first parameter sets
                sample, keyframe = converted
                configured = configured and not converter.changed  # new parameter sets: a new header
                if not configured:
                    if not keyframe:
                        continue  # start (again) at a keyframe with its parameter sets
                    track = converter.track
                    publisher.send_configs(Clip(track.codec, track.config, track.width, track.height, fps,
                                                [], 0, (), Path()))
                    configured = True
                publisher.send_video(converter.track.codec, Packet_(dts, cts, keyframe, sample))
                sent += 1
                if queue.empty():
                    await publisher.drain()
        finally:
            halt.set()
            while not queue.empty():  # unblock the thread's last put
                queue.get_nowait()
        return sent

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


def _nal_units(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (``00 00 01`` / ``00 00 00 01`` start codes) or,
    when it does not start with one, of a 4-byte length-prefixed sample."""
    if not (data.startswith(b"\x00\x00\x01") or data.startswith(b"\x00\x00\x00\x01")):
        out, pos = [], 0
        while pos + 4 <= len(data):
            size = int.from_bytes(data[pos:pos + 4], "big")
            out.append(data[pos + 4:pos + 4 + size])
            pos += 4 + size
        return [n for n in out if n]
    out, pos = [], data.find(b"\x00\x00\x01")
    while pos >= 0:
        start = pos + 3
        nxt = data.find(b"\x00\x00\x01", start)
        end = len(data) if nxt < 0 else nxt
        out.append(data[start:end].rstrip(b"\x00") if nxt >= 0 else data[start:end])
        pos = nxt
    return [n for n in out if n]


def annexb_to_avcc(data: bytes) -> bytes:
    """A sample in MP4/FLV form: every NAL unit prefixed by its 4-byte length."""
    return b"".join(len(n).to_bytes(4, "big") + n for n in _nal_units(data))


def avcc_config(data: bytes) -> bytes | None:
    """An AVCDecoderConfigurationRecord from parameter sets in ``data`` (an ``avcC`` as is;
    Annex-B or length-prefixed NAL units holding an SPS and a PPS), or None without them."""
    if data[:1] == b"\x01" and len(data) > 7:
        return data
    nals = _nal_units(data)
    sps = [n for n in nals if n[0] & 0x1F == 7]
    pps = [n for n in nals if n[0] & 0x1F == 8]
    if not sps or not pps or len(sps[0]) < 4:
        return None
    record = bytes([1, sps[0][1], sps[0][2], sps[0][3], 0xFF, 0xE1]) + len(sps[0]).to_bytes(2, "big") + sps[0]
    return record + bytes([len(pps)]) + b"".join(len(n).to_bytes(2, "big") + n for n in pps)


def _clean_sample(codec: str, sample: bytes) -> tuple[bytes, bool]:
    """An AVCC/HVCC sample (4-byte length-prefixed NAL units) without empty NAL units
    (RTP depacketizing of some cameras leaves them, and decoders reject them), and whether
    it starts a GOP (holds an IDR / IRAP NAL unit)."""
    pos, keep, irap = 0, [], False
    while pos + 4 <= len(sample):
        size = int.from_bytes(sample[pos:pos + 4], "big")
        if size:
            header = sample[pos + 4]
            irap = irap or (header & 0x1F == 5 if codec == "avc1" else 16 <= (header >> 1) & 0x3F <= 21)
            keep.append(sample[pos:pos + 4 + size])
        pos += 4 + size
    return b"".join(keep), irap


async def push_clip(publisher: RtmpPublisher, clip: Clip, stop: asyncio.Event, *,
                    tick: float = PUSH_TICK_S) -> int:
    """Send ``clip`` looped at real-time rate until ``stop`` is set or the connection ends
    (then ``ConnectionError``). Returns the packets sent."""
    publisher.send_configs(clip)
    feed = clip.loop()
    head = next(feed)
    start = time.monotonic()
    sent = 0
    while not stop.is_set():
        if publisher.closed:
            raise ConnectionError("the media server closed the connection")
        elapsed_ms = (time.monotonic() - start) * 1000
        while head[1].dts <= elapsed_ms:
            kind, packet = head
            if kind == "video":
                publisher.send_video(clip.codec, packet)
            else:
                publisher.send_audio(packet)
            sent += 1
            head = next(feed)
        await publisher.drain()
        try:
            await asyncio.wait_for(stop.wait(), tick)
        except TimeoutError:
            pass
    return sent


class StreamPusher:
    """One channel stream pushed to an RTMP URL until :meth:`stop`; reconnects with
    exponential backoff (0.5 s doubling to 30 s, jittered) when the connection fails or
    drops, as a camera must (the hub keeps its viewers meanwhile)."""

    def __init__(self, source: MediaSource, channel: int, stream: int, url: str):
        self.source, self.channel, self.stream, self.url = source, channel, stream, url
        self.connects = 0
        self.sent = 0
        self.last_error: str | None = None
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> StreamPusher:
        self._task = asyncio.create_task(self._run(), name=f"push-{self.channel}-{self.stream}")
        return self

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        """Ask the push to end, give it 5 s, then cancel it. ``asyncio.wait`` rather than
        ``wait_for`` catching ``CancelledError``: that swallowed the *caller's* cancel (the
        agent stopping while a ``stop_stream`` was in here), and the agent never ended."""
        self._stop.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=5)
            if not done:
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=5)

    async def _run(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            publisher = RtmpPublisher(self.url)
            try:
                await publisher.connect()
                self.connects += 1
                backoff = 0.5
                self.sent += await self.source.push(publisher, self.channel, self.stream, self._stop)
            except (OSError, PublishError, TimeoutError, ConnectionError, EOFError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("push %s/%s: %s; again in %.1f s", self.channel, self.stream, self.last_error, backoff)
            finally:
                await publisher.close()
            if self._stop.is_set():
                break
            try:
                await asyncio.wait_for(self._stop.wait(), backoff * random.uniform(0.5, 1.5))
            except TimeoutError:
                pass
            backoff = min(backoff * 2, 30.0)
