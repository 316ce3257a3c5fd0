"""RTSP pull: a camera on the service's own network, read by URL into its stream hub.

For cameras the service can reach (a LAN camera next to a self-hosted install, an NVR's
channels), rather than cameras that push from behind NAT. FFmpeg's RTSP client (through
PyAV) does RTSP, RTP depacketizing and jitter handling, over **TCP interleaved** or **UDP**
(``transport``); we only demux — no decoding — and hand each access unit to the hub:

* video H.264/H.265: Annex B → length-prefixed samples, parameter sets from the SDP's
  extradata or in-band, a change of them (new resolution) → a new track → a new init
  segment (:class:`~faoyam.media.annexb.AnnexBConverter`);
* audio AAC (``mpeg4-generic``) and G.711 A-law/µ-law, in the track's sample rate;
* timestamps converted to the track's timescale; missing ones repeat the previous value and
  the hub's muxer timeline repairs them, like backwards ones (:mod:`~faoyam.media.timeline`).

**One thread per pulled camera.** PyAV's demuxer blocks; a thread per camera keeps the event
loop free and is the simple, robust choice for the few cameras a site pulls (the push path
serves the many). Samples go to the loop with ``call_soon_threadsafe``, one call per video
access unit (with the audio that came before it), and the hub flushes after each, so a
viewer sees a frame one hop after FFmpeg returns it.

**Reconnects**: a failed open or a broken stream is retried with exponential backoff (1 s
doubling to 30 s, with jitter); the hub — and its viewers — stay, and the muxer keeps the
timeline monotonic across the gap. ``stop()`` ends the thread within the read timeout.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections.abc import Callable
from fractions import Fraction

from faoyam.media.annexb import AnnexBConverter
from faoyam.media.hub import StreamHub
from faoyam.media.tracks import VIDEO_TIMESCALE, CodecConfigError, Track, aac_track, g711_track

log = logging.getLogger(__name__)

AUDIO_CODECS = {"aac": "mp4a", "pcm_alaw": "alaw", "pcm_mulaw": "ulaw"}


class RtspPull:
    """Pulls ``url`` into ``hub`` until :meth:`stop`. Create and start it on the event loop."""

    def __init__(self, url: str, hub: StreamHub, *, transport: str = "tcp", open_timeout: float = 10.0,
                 read_timeout: float = 5.0, backoff: tuple[float, float] = (1.0, 30.0), audio: bool = True,
                 sleep: Callable[[float], None] | None = None):
        if transport not in ("tcp", "udp"):
            raise ValueError("transport must be tcp or udp")
        self.url, self.hub, self.transport = url, hub, transport
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.backoff = backoff
        self.audio = audio
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connects = 0
        self.video_packets = 0  # access units handed to the hub
        self.audio_packets = 0
        self.dropped = 0  # packets before the parameter sets were known, or unreadable
        self.last_error: str | None = None

    # -- control (event loop side) --
    def start(self) -> RtspPull:
        self._loop = asyncio.get_running_loop()
        self.hub.attach(self)
        self._thread = threading.Thread(target=self._run, name=f"rtsp-pull {self.hub.stream}", daemon=True)
        self._thread.start()
        return self

    def close(self, reason: str = "stopped") -> None:
        """The hub's :class:`~faoyam.media.hub.Publisher` interface: stop pulling."""
        log.info("rtsp pull %s: %s", self.hub.stream, reason)
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()

    async def wait_stopped(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
        self.hub.detach(self)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # -- the puller thread --
    def _run(self) -> None:
        delay = self.backoff[0]
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self._session()
            except Exception as exc:  # any failure: network, RTSP, a demuxer error
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("rtsp pull %s: %s", self.hub.stream, self.last_error)
            if self._stop.is_set():
                break
            if time.monotonic() - started > 30:  # it ran for a while: a fresh failure
                delay = self.backoff[0]
            self._stop.wait(delay * random.uniform(0.8, 1.2))
            delay = min(delay * 2, self.backoff[1])

    def _session(self) -> None:
        import av

        options = {"rtsp_transport": self.transport, "rtsp_flags": "prefer_tcp" if self.transport == "tcp" else "",
                   "max_delay": "500000",
                   # the SDP already says what the streams are: probing longer only delays the start
                   "analyzeduration": "500000"}
        options = {k: v for k, v in options.items() if v}
        with av.open(self.url, options=options, timeout=(self.open_timeout, self.read_timeout)) as container:
            self.connects += 1
            video = next((s for s in container.streams.video if s.codec_context.name in ("h264", "hevc")), None)
            if video is None:
                raise CodecConfigError("the camera offers no H.264/H.265 stream")
            converter = AnnexBConverter(video.codec_context.name, bytes(video.codec_context.extradata or b""))
            audio, audio_track = None, None
            if self.audio:
                audio = next((s for s in container.streams.audio if s.codec_context.name in AUDIO_CODECS), None)
                audio_track = _audio_track(audio) if audio is not None else None
                if audio_track is None:
                    audio = None
            streams = [video] + ([audio] if audio is not None else [])
            configured: tuple[Track, ...] = ()
            pending_audio: list[tuple[int, bytes]] = []
            last_dts = {video.index: 0}
            if audio is not None:
                last_dts[audio.index] = 0
            for packet in container.demux(*streams):
                if self._stop.is_set():
                    return
                if packet.size == 0:
                    continue
                stream = packet.stream
                if stream is audio:
                    dts = _ticks(packet.dts if packet.dts is not None else packet.pts, packet.time_base,
                                 audio_track.timescale, last_dts, stream.index)
                    pending_audio.append((dts, bytes(packet)))
                    continue
                converted = converter.convert(bytes(packet))
                if converted is None:
                    self.dropped += converter.track is None
                    continue
                sample, key = converted
                tracks = (converter.track,) + ((audio_track,) if audio_track else ())
                reconfigure = tracks if tracks != configured else None
                configured = tracks
                dts = _ticks(packet.dts if packet.dts is not None else packet.pts, packet.time_base,
                             VIDEO_TIMESCALE, last_dts, stream.index)
                pts = _ticks(packet.pts, packet.time_base, VIDEO_TIMESCALE, {}, 0) if packet.pts is not None else dts
                batch = (reconfigure, pending_audio, dts, max(pts - dts, 0), key, sample)
                pending_audio = []
                self._loop.call_soon_threadsafe(self._deliver, batch)
            raise ConnectionError("the camera ended the stream")

    # -- back on the event loop --
    def _deliver(self, batch) -> None:
        if self._stop.is_set():
            return
        reconfigure, audio, dts, cts, key, sample = batch
        hub = self.hub
        if reconfigure is not None:
            hub.configure(reconfigure)
        for audio_dts, data in audio:
            if len(hub.muxer.tracks) > 1:
                hub.add(1, audio_dts, 0, True, data)
                self.audio_packets += 1
        hub.add(0, dts, cts, key, sample)
        self.video_packets += 1
        hub.flush()


def _ticks(value: int | None, time_base: Fraction, scale: int, last: dict, key: int) -> int:
    """``value`` (in ``time_base``) in ``scale`` units; a missing value repeats the last one."""
    if value is None:
        return last.get(key, 0)
    ticks = int(value * time_base * scale)
    last[key] = ticks
    return ticks


def _audio_track(stream) -> Track | None:
    ctx = stream.codec_context
    kind = AUDIO_CODECS.get(ctx.name)
    try:
        if kind == "mp4a":
            return aac_track(bytes(ctx.extradata or b""))
        if kind in ("alaw", "ulaw"):
            return g711_track(kind, ctx.sample_rate or 8000)
    except CodecConfigError as exc:
        log.info("rtsp pull: audio ignored: %s", exc)
    return None
