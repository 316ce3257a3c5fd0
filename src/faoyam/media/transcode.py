"""H.265 → H.264 on demand, for browsers whose Media Source refuses HEVC (Chromium, FACTS.md).

The only place the media engine decodes and re-encodes video. A camera without an H.264
sub-stream gets, **only while someone needs it**, a second hub carrying H.264: a
:class:`Transcoder` subscribes to the H.265 hub, decodes each frame (PyAV's hevc decoder),
scales it to ``width`` (never up), encodes it with libx264 ``ultrafast``/``zerolatency``
(no B-frames, no look-ahead: a frame out for each frame in) and adds the result to the H.264
hub. The source's keyframes stay keyframes, so segments and late joiners line up with the
camera's GOP. Audio (AAC, G.711) is copied as it is.

:class:`Transcoders` owns the H.264 hubs. The first :meth:`~Transcoders.subscribe` to one
starts its transcoder (the hub's ``on_demand``); when its last subscriber leaves, the hub's
``on_idle`` stops it — and with it the subscription to the H.265 hub, so the device may stop
pushing too.

Decoding and encoding run in one worker thread per transcoder (PyAV releases the GIL; one
codec thread each keeps a 2-core host usable). The thread's input queue is bounded: if the
encoder cannot keep up, frames are dropped up to the next keyframe, never queued without end.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Hashable
from fractions import Fraction

from faoyam.media.annexb import AnnexBConverter
from faoyam.media.fmp4_parse import is_init, parse_fragment
from faoyam.media.hub import StreamHub, Subscription
from faoyam.media.ids import ChannelId
from faoyam.media.snapshot import DECODERS
from faoyam.media.tracks import VIDEO_TIMESCALE, Track

log = logging.getLogger(__name__)

DEFAULT_WIDTH = 640
QUEUE_FRAMES = 50  # ~2 s at 25 fps
_STOP = object()
_TIME_BASE = Fraction(1, VIDEO_TIMESCALE)


TRANSCODED_SUFFIX = ".h264"  # "main.h264": the H.264 version of the channel's main stream


def h264_stream_of(stream: Hashable) -> Hashable:
    """The id of the transcoded hub of ``stream`` (``ChannelId(d, c, "main")`` →
    ``ChannelId(d, c, "main.h264")``)."""
    if isinstance(stream, ChannelId):
        return ChannelId(stream.device_id, stream.channel, f"{stream.stream}{TRANSCODED_SUFFIX}")
    return (stream, "h264")


def transcoded_source(stream: ChannelId) -> ChannelId | None:
    """The camera stream a transcoded stream id is made from (``…/main.h264`` → ``…/main``),
    or None for a stream the camera pushes itself. A media token names the stream the viewer
    watches; this is how the live server knows to subscribe through :class:`Transcoders`."""
    name = stream.stream
    if not name.endswith(TRANSCODED_SUFFIX) or len(name) == len(TRANSCODED_SUFFIX):
        return None
    return ChannelId(stream.device_id, stream.channel, name[:-len(TRANSCODED_SUFFIX)])


class Transcoder:
    """Decodes ``source`` (H.265) and re-encodes into ``output`` (H.264) until :meth:`stop`."""

    def __init__(self, source: StreamHub, output: StreamHub, *, width: int = DEFAULT_WIDTH):
        self.source, self.output, self.width = source, output, width
        self._loop = asyncio.get_running_loop()
        self._queue: queue.Queue = queue.Queue(QUEUE_FRAMES)
        self._sub: Subscription | None = None
        self._reader: asyncio.Task | None = None
        self._thread: threading.Thread | None = None
        self._tracks: tuple[Track, ...] = ()
        self._skip_to_key = False
        self.frames_in = 0
        self.frames_out = 0
        self.dropped = 0

    def start(self) -> Transcoder:
        self._sub = self.source.subscribe()
        self._thread = threading.Thread(target=self._work, name=f"transcode {self.source.stream}", daemon=True)
        self._thread.start()
        self._reader = asyncio.create_task(self._read(), name=f"transcode {self.source.stream}")
        return self

    def stop(self) -> None:
        if self._sub is not None:
            self._sub.close("transcode no longer needed")
        if self._reader is not None:
            self._reader.cancel()
        self._put(_STOP, force=True)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    async def wait_stopped(self) -> None:
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)

    # -- event loop: source fragments → samples for the worker --
    async def _read(self) -> None:
        async for chunks in self._sub:
            for chunk in chunks:
                if is_init(chunk):
                    self._tracks = self._sub.tracks
                    self._put(("config", self._tracks), force=True)
                    continue
                for run in parse_fragment(chunk, self._tracks):
                    track = self._tracks[run.track_id - 1]
                    dts = run.base_dts
                    for duration, cts, key, payload in zip(run.durations, run.cts_offsets, run.keyframes,
                                                           run.payloads):
                        self._offer(run.track_id - 1, track, dts, cts, key, payload)
                        dts += duration

    def _offer(self, index: int, track: Track, dts: int, cts: int, key: bool, payload: bytes) -> None:
        if track.kind != "video":
            self._put(("audio", index, dts, payload))
            return
        if self._skip_to_key and not key:
            self.dropped += 1
            return
        self._skip_to_key = False
        if not self._put(("video", dts, cts, key, payload)):
            self.dropped += 1
            self._skip_to_key = True  # the encoder fell behind: resume at the next keyframe

    def _put(self, item, force: bool = False) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            if force:  # control items must get through: make room
                self._drain()
                self._queue.put_nowait(item)
                self._skip_to_key = True
            return False

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    # -- worker thread: decode, scale, encode --
    def _work(self) -> None:
        import av

        decoder = encoder = None
        converter = AnnexBConverter("h264")
        audio: tuple[Track, ...] = ()
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            try:
                if item[0] == "config":
                    video = next((t for t in item[1] if t.kind == "video"), None)
                    audio = tuple(t for t in item[1] if t.kind == "audio")
                    decoder = None
                    if video is not None and video.codec in DECODERS:
                        decoder = av.CodecContext.create(DECODERS[video.codec], "r")
                        decoder.extradata = video.config
                        decoder.thread_count = 1
                    encoder = None  # a new size may follow: a new encoder, a new SPS, a new init
                elif item[0] == "audio":
                    _, index, dts, payload = item
                    self._call(self._add_audio, index, dts, payload, audio)
                elif decoder is not None:
                    _, dts, cts, key, payload = item
                    self.frames_in += 1
                    packet = av.Packet(payload)
                    packet.dts, packet.pts, packet.time_base = dts, dts + cts, _TIME_BASE
                    for frame in decoder.decode(packet):
                        if encoder is None:
                            encoder = self._encoder(frame.width, frame.height)
                        out = frame.reformat(width=encoder.width, height=encoder.height, format="yuv420p")
                        out.pts, out.time_base = frame.pts, _TIME_BASE
                        if frame.key_frame:
                            out.pict_type = av.video.frame.PictureType.I
                        for encoded in encoder.encode(out):
                            converted = converter.convert(bytes(encoded))
                            if converted is None:
                                continue
                            sample, is_key = converted
                            track = converter.track if converter.changed else None
                            self._call(self._add_video, track, audio, encoded.dts, encoded.pts - encoded.dts,
                                       is_key, sample)
            except (av.error.FFmpegError, ValueError) as exc:  # a corrupt frame: skip it, keep going
                log.info("transcode %s: %s", self.source.stream, exc)

    def _encoder(self, width: int, height: int):
        import av

        out_width = min(self.width, width)
        out_height = max(2, round(height * out_width / width / 2) * 2)
        encoder = av.CodecContext.create("libx264", "w")
        encoder.width, encoder.height, encoder.pix_fmt = out_width, out_height, "yuv420p"
        encoder.time_base = _TIME_BASE
        encoder.thread_count = 1
        encoder.options = {"preset": "ultrafast", "tune": "zerolatency",
                           "forced-idr": "1",
                           "x264-params": "keyint=250:min-keyint=250:scenecut=0:repeat-headers=1"}
        encoder.open()
        return encoder

    def _call(self, fn: Callable, *args) -> None:
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop closed under us: the process is ending
            pass

    # -- back on the event loop: into the H.264 hub --
    def _add_video(self, track: Track | None, audio: tuple[Track, ...], dts: int, cts: int, key: bool,
                   sample: bytes) -> None:
        if self._sub is None or self._sub.closed_reason is not None:
            return
        if track is not None:
            self.output.configure((track, *audio))
        if not self.output.muxer.tracks:
            return
        self.output.add(0, dts, cts, key, sample)
        self.output.flush()
        self.frames_out += 1

    def _add_audio(self, index: int, dts: int, payload: bytes, audio: tuple[Track, ...]) -> None:
        # the output's audio track i+1 is the source's i-th audio track
        out_index = 1 + sum(1 for t in self._tracks[:index] if t.kind == "audio")
        if len(self.output.muxer.tracks) > out_index and self.output.muxer.tracks[out_index] in audio:
            self.output.add(out_index, dts, 0, True, payload)


class Transcoders:
    """The on-demand H.264 versions of H.265 streams. ``hub_for(stream)`` gives a source hub."""

    def __init__(self, hub_for: Callable[[Hashable], StreamHub], *, width: int = DEFAULT_WIDTH, **hub_options):
        self.hub_for = hub_for
        self.width = width
        self.hub_options = hub_options
        self.outputs: dict[Hashable, StreamHub] = {}
        self.running: dict[Hashable, Transcoder] = {}

    def subscribe(self, stream: Hashable, **options) -> Subscription:
        """A subscription to the H.264 version of ``stream``, starting its transcoder if needed."""
        out_id = h264_stream_of(stream)
        hub = self.outputs.get(out_id)
        if hub is None:
            hub = self.outputs[out_id] = StreamHub(
                out_id, on_demand=lambda h: self._start(stream, h), on_idle=lambda h: self._stop(stream),
                **self.hub_options)
        return hub.subscribe(**options)

    def _start(self, stream: Hashable, output: StreamHub) -> None:
        log.info("transcode %s: first H.264 viewer, starting", stream)
        self.running[stream] = Transcoder(self.hub_for(stream), output, width=self.width).start()

    def _stop(self, stream: Hashable) -> None:
        transcoder = self.running.pop(stream, None)
        if transcoder is not None:
            log.info("transcode %s: last H.264 viewer left, stopping", stream)
            transcoder.stop()
        # the next viewer starts from a fresh init segment and GOP
        self.outputs.pop(h264_stream_of(stream), None)

    async def close(self) -> None:
        for stream in list(self.running):
            transcoder = self.running[stream]
            self._stop(stream)
            await transcoder.wait_stopped()
