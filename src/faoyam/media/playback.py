"""Playback of recorded video in the media worker (B5): a stream for the MSE player, HLS VOD
playlists, thumbnails and clip downloads, all read from the segment index and the blob store.

Routes (mounted by :class:`~faoyam.media.viewer_http.ViewerHttp` beside live view), every one
under a signed token of permission ``playback`` (minted by the web app after
``devices.authz.require(…, "playback", channel)``, see :func:`faoyam.media.urls.playback_urls`)::

    ws  /media/playback/{token}/stream?at=<unix ms>   fMP4 for the live player's MSE code
    GET /media/playback/{token}/vod.m3u8?from=&to=     HLS VOD over the segments (byte ranges)
    GET /media/playback/{token}/seg/{segment id}.mp4   a segment's bytes (Range requests)
    GET /media/playback/{token}/thumb.jpg?at=&width=   the keyframe at or before an instant
    GET /media/playback/{token}/clip.mp4?from=&to=     one MP4 of a range, streamed

Tokens are checked like HLS tokens (:class:`~faoyam.media.hls_access.MediaAccess`): first used
within ``media_token_seconds``, then valid while used (a page seeks, scrubs thumbnails and
downloads with one URL), and the ``playback`` permission re-checked with the devices domain
(0.5 s cache): a revoked share gets 403 on its next request, and an open stream is closed
(4403) within about a second. The token names the channel stream; a segment id of another
channel is 404.

**The stream** (docs/playback.md): text ``{"type": "init", "mime", "tracks"}`` + binary init, as
live; then ``{"type": "piece", "t": s, "wall": unix ms}`` where a recorded stretch begins
(``t`` on the player's timeline, ``wall`` the instant it shows) and binary fragments, from the
keyframe at or before ``at``; the decode times are rewritten to one timeline starting at 0
(:mod:`faoyam.media.playback_mp4`), gaps skipped. The player controls the speed
(``playbackRate``) and reports ``{"type": "position", "t", "speed"}``; the worker keeps
``lead_s × max(1, speed)`` seconds of media ahead of that position, no more (flow control, so
a paused player costs nothing). ``{"type": "end"}`` when the recordings run out.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import io
import json
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import av
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from faoyam.core.database import Database
from faoyam.core.errors import BadRequest, NotFound, Problem, TooLarge, problem_response
from faoyam.core.storage import BlobNotFound, BlobStore
from faoyam.media.hls_access import PLAYBACK, MediaAccess
from faoyam.media.ids import ChannelId
from faoyam.media.live_http import Close, Revoked
from faoyam.media.playback_mp4 import (Splitter, init_info, init_message_tracks, mime, moof_times, shift_moof,
                                       with_duration)
from faoyam.recordings import timeline
from faoyam.recordings.service import keyframe_at, unpack_keyframes

log = logging.getLogger(__name__)

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
DEFAULT_LEAD_S = 6.0
DEFAULT_CLIP_MAX_S = 6 * 3600
VOD_MAX = dt.timedelta(days=1)
THUMB_CACHE = 512
CLIP_WRITE = 256 << 10


def _ms(delta: dt.timedelta) -> int:
    return int(delta.total_seconds() * 1000)


def _instant(request_params, name: str, default: dt.datetime | None = None) -> dt.datetime:
    """``name`` as unix milliseconds or ISO 8601."""
    raw = request_params.get(name)
    if raw is None:
        if default is not None:
            return default
        raise BadRequest(f"{name} is required (unix milliseconds or ISO 8601)", code="playback-bad-instant")
    try:
        if raw.lstrip("-").isdigit():
            return dt.datetime.fromtimestamp(int(raw) / 1000, dt.UTC)
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"{name} is not an instant (unix milliseconds or ISO 8601)",
                         code="playback-bad-instant") from None


@dataclass
class Fragment:
    t: float  # seconds on the playback timeline
    parts: list = field(default_factory=list)


async def _read(blobs: BlobStore, key: str, start: int, end: int) -> bytes:
    return b"".join([bytes(c) async for c in blobs.read_stream(key, start, end)])


async def fragments(blobs: BlobStore, segments: AsyncIterator, at: dt.datetime, until: dt.datetime | None = None,
                    *, one_init: bool = False) -> AsyncIterator[tuple]:
    """``("init", bytes, segment)``, ``("piece", t, wall)``, ``("fragment", Fragment)`` events of
    the recordings from the keyframe at or before ``at`` to ``until`` (the first fragment at or
    after it is not sent). ``one_init``: stop at a codec or resolution change (a clip is one
    file with one init)."""
    pb = 0.0
    prev_init = None
    first = True
    async for seg in segments:
        if first:
            rel = max(0, _ms(at - seg.start))
            first_ms, offset = keyframe_at(seg.keyframes, rel) or (0, seg.init_size)
        else:
            first_ms, offset = 0, seg.init_size
        init = await _read(blobs, seg.storage_key, 0, seg.init_size)
        if init != prev_init:
            if one_init and prev_init is not None:
                return
            yield ("init", init, seg)
            prev_init = init
        tracks = {t.track_id: t for t in init_info(init)}
        video = next((t.track_id for t in tracks.values() if t.kind == "video"), next(iter(tracks), 1))
        scales = {t.track_id: t.timescale for t in tracks.values()}
        stop_ms = _ms(until - seg.start) if until is not None and until < seg.end else None
        yield ("piece", pb, seg.start + dt.timedelta(milliseconds=first_ms))
        first = False
        splitter, origin, shift, current, stopped = Splitter(), None, 0.0, None, False
        async for chunk in blobs.read_stream(seg.storage_key, offset, seg.size):
            for ev in splitter.feed(chunk):
                kind = ev[0]
                if kind == "box":
                    if ev[1] != b"moof":
                        continue
                    times = moof_times(ev[2])
                    ref = times.get(video) or next(iter(times.values()), (0, 0))
                    vt = ref[1] / scales.get(video, 90000)
                    if origin is None:
                        origin, shift = vt, pb - vt
                    if stop_ms is not None and first_ms + (vt - origin) * 1000 >= stop_ms:
                        stopped = True
                        break
                    current = Fragment(pb + vt - origin, [shift_moof(ev[2], times, shift, scales)])
                elif current is not None:
                    if kind == "mdat":
                        current.parts.append(ev[1])
                        if ev[2] == 0:
                            yield ("fragment", current)
                            current = None
                    else:
                        current.parts.append(ev[1])
                        if ev[2]:
                            yield ("fragment", current)
                            current = None
            if stopped:
                break
        end_ms = stop_ms if stop_ms is not None else seg.duration_ms
        pb += max(0, end_ms - first_ms) / 1000
        if stopped:
            return


async def _paged(db: Database, channel: ChannelId, at: dt.datetime, until: dt.datetime | None,
                 first: list | None = None) -> AsyncIterator:
    """The channel's segments from ``at`` on, 50 at a time (a stream can play for hours)."""
    batch = first if first is not None else await timeline.segments_from(
        db, channel.device_id, channel.channel, channel.stream, at, until)
    while batch:
        for seg in batch:
            yield seg
        last_end = batch[-1].end
        batch = [s for s in await timeline.segments_from(db, channel.device_id, channel.channel, channel.stream,
                                                          last_end, until) if s.start >= last_end]


class PlaybackServer:
    """The playback endpoints of one media worker (``routes``; ``close()`` ends streams)."""

    def __init__(self, db: Database, blobs: BlobStore, secret_key: bytes, *, revoked: Revoked | None = None,
                 session_idle: float = 30.0, lead_s: float = DEFAULT_LEAD_S, clip_max_s: float = DEFAULT_CLIP_MAX_S,
                 clock: Callable[[], float] = time.time):
        self.db, self.blobs = db, blobs
        self.access = MediaAccess(secret_key, revoked=revoked, session_idle=session_idle, clock=clock,
                                  revoke_as=None)
        self.lead_s = lead_s
        self.clip_max_s = clip_max_s
        self.streams: set[asyncio.Task] = set()
        self.thumbs: OrderedDict[tuple, bytes] = OrderedDict()
        self.stats = {"streams": 0, "thumbs_made": 0, "thumb_hits": 0}
        p = "/media/playback/{token}"
        self.routes = [
            WebSocketRoute(p + "/stream", self._stream),
            Route(p + "/vod.m3u8", self._problems(self._vod)),
            Route(p + "/seg/{segment_id}.mp4", self._problems(self._segment)),
            Route(p + "/thumb.jpg", self._problems(self._thumb)),
            Route(p + "/clip.mp4", self._problems(self._clip)),
        ]

    async def close(self) -> None:
        for task in list(self.streams):
            task.cancel()

    @staticmethod
    def _problems(endpoint: Callable[[Request], Awaitable[Response]]):
        async def wrapped(request: Request) -> Response:
            try:
                response = await endpoint(request)
            except Problem as problem:
                response = problem_response(problem, request)
            response.headers["Access-Control-Allow-Origin"] = "*"  # the token is the authorization
            return response
        return wrapped

    async def check(self, token: str) -> ChannelId:
        return await self.access.check(token, PLAYBACK)

    # -- the MSE stream --
    async def _stream(self, ws: WebSocket) -> None:
        await ws.accept()
        try:
            channel = await self.check(ws.path_params["token"])
            at = _instant(ws.query_params, "at")
        except Problem as problem:
            code = {401: Close.BAD_TOKEN, 403: Close.FORBIDDEN, 410: Close.EXPIRED}.get(problem.status, 4400)
            with contextlib.suppress(Exception):
                await ws.close(code, problem.code[:120])
            return
        self.stats["streams"] += 1
        state = {"position": 0.0, "speed": 1.0, "wake": asyncio.Event()}
        task = asyncio.current_task()
        self.streams.add(task)
        receiver = asyncio.create_task(self._positions(ws, state))
        pump = asyncio.create_task(self._pump(ws, channel, at, state))
        code, reason = 1000, "end of recordings"
        try:
            done, _ = await asyncio.wait({pump, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done:
                exc = pump.exception()
                if isinstance(exc, Problem):
                    code, reason = Close.FORBIDDEN if exc.status == 403 else Close.EXPIRED, exc.code
                elif exc is not None and not isinstance(exc, (WebSocketDisconnect, RuntimeError, OSError)):
                    log.warning("playback: stream of %s failed", channel, exc_info=exc)
                    code, reason = 1011, "playback error"
            else:
                return  # the viewer left
        except asyncio.CancelledError:
            code, reason = Close.GOING_AWAY, "the media worker is shutting down"
        finally:
            receiver.cancel()
            pump.cancel()
            self.streams.discard(task)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ws.close(code, reason[:120]), 2.0)

    async def _positions(self, ws: WebSocket, state: dict) -> None:
        with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    return
                with contextlib.suppress(ValueError, TypeError, KeyError):
                    body = json.loads(msg.get("text") or "{}")
                    if body.get("type") == "position":
                        state["position"] = float(body["t"])
                        state["speed"] = min(16.0, max(0.25, float(body.get("speed", 1))))
                        state["wake"].set()

    async def _pump(self, ws: WebSocket, channel: ChannelId, at: dt.datetime, state: dict) -> None:
        token = ws.path_params["token"]
        checked = time.monotonic()
        async for ev in fragments(self.blobs, _paged(self.db, channel, at, None), at):
            if ev[0] == "init":
                init, seg = ev[1], ev[2]
                await ws.send_text(json.dumps({"type": "init", "mime": mime(init, seg.codec),
                                               "tracks": init_message_tracks(init, seg.codec, seg.width, seg.height)}))
                await ws.send_bytes(init)
            elif ev[0] == "piece":
                await ws.send_text(json.dumps({"type": "piece", "t": round(ev[1], 3),
                                               "wall": int(ev[2].timestamp() * 1000)}))
            else:
                frag = ev[1]
                # flow control: no more than the lead ahead of what the player shows
                while frag.t > state["position"] + self.lead_s * max(1.0, state["speed"]):
                    state["wake"].clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(state["wake"].wait(), 1.0)
                    checked = await self._recheck(token, checked)
                await ws.send_bytes(b"".join(frag.parts))
                checked = await self._recheck(token, checked)
        await ws.send_text(json.dumps({"type": "end"}))

    async def _recheck(self, token: str, checked: float) -> float:
        """Revocation (and the session) once a second while a stream runs."""
        now = time.monotonic()
        if now - checked < 1.0:
            return checked
        await self.check(token)
        return now

    # -- HLS VOD --
    async def _vod(self, request: Request) -> Response:
        channel = await self.check(request.path_params["token"])
        start = _instant(request.query_params, "from")
        end = _instant(request.query_params, "to", start + VOD_MAX)
        if end <= start:
            raise BadRequest("'to' must be after 'from'", code="playback-empty-range")
        if end - start > VOD_MAX:
            raise TooLarge("A playlist covers at most a day.", code="playback-range-too-large")
        segs = await timeline.segments_from(self.db, channel.device_id, channel.channel, channel.stream, start, end,
                                            limit=5000)
        if not segs:
            raise NotFound("Nothing was recorded in this range.", code="playback-nothing-recorded")
        lines, longest, prev = [], 1.0, None
        for seg in segs:
            points = unpack_keyframes(seg.keyframes) or [(0, seg.init_size)]
            if prev is not None and (seg.start != prev.end or (seg.codec, seg.width, seg.height) !=
                                     (prev.codec, prev.width, prev.height)):
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(f'#EXT-X-MAP:URI="seg/{seg.id}.mp4",BYTERANGE="{seg.init_size}@0"')
            for i, (ms, offset) in enumerate(points):
                next_ms, next_off = points[i + 1] if i + 1 < len(points) else (seg.duration_ms, seg.size)
                wall = seg.start + dt.timedelta(milliseconds=ms)
                if wall + dt.timedelta(milliseconds=next_ms - ms) <= start or wall >= end:
                    continue
                duration = max(0.001, (next_ms - ms) / 1000)
                longest = max(longest, duration)
                lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{wall.isoformat(timespec='milliseconds')}")
                lines.append(f"#EXTINF:{duration:.3f},")
                lines.append(f"#EXT-X-BYTERANGE:{next_off - offset}@{offset}")
                lines.append(f"seg/{seg.id}.mp4")
            prev = seg
        head = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-PLAYLIST-TYPE:VOD", "#EXT-X-INDEPENDENT-SEGMENTS",
                f"#EXT-X-TARGETDURATION:{int(longest + 0.999)}", "#EXT-X-MEDIA-SEQUENCE:0"]
        body = "\n".join(head + lines + ["#EXT-X-ENDLIST", ""])
        return Response(body, media_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-store"})

    async def _segment(self, request: Request) -> Response:
        channel = await self.check(request.path_params["token"])
        seg = await timeline.segment_by_id(self.db, request.path_params["segment_id"])
        if seg is None or seg.state == "writing" or ChannelId(seg.device_id, seg.channel, seg.stream) != channel:
            raise NotFound("No such recording.", code="playback-no-segment")
        start, end = 0, seg.size
        status, headers = 200, {"Accept-Ranges": "bytes", "Cache-Control": "private, max-age=3600"}
        rng = request.headers.get("range")
        if rng:
            try:
                unit, _, spec = rng.partition("=")
                a, _, b = spec.split(",")[0].strip().partition("-")
                if unit.strip() != "bytes":
                    raise ValueError
                if a:
                    start, end = int(a), min(seg.size, int(b) + 1 if b else seg.size)
                else:
                    start, end = max(0, seg.size - int(b)), seg.size
                if start >= end:
                    raise ValueError
            except ValueError:
                return Response(status_code=416, headers={"Content-Range": f"bytes */{seg.size}"})
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{seg.size}"
        headers["Content-Length"] = str(end - start)
        return StreamingResponse(self.blobs.read_stream(seg.storage_key, start, end), status_code=status,
                                 media_type="video/mp4", headers=headers)

    # -- thumbnails --
    async def _thumb(self, request: Request) -> Response:
        channel = await self.check(request.path_params["token"])
        at = _instant(request.query_params, "at")
        width = request.query_params.get("width", "160")
        if not width.isdigit() or not 16 <= int(width) <= 1920:
            raise BadRequest("width must be between 16 and 1920", code="playback-bad-width")
        segs = await timeline.segments_from(self.db, channel.device_id, channel.channel, channel.stream, at,
                                            at + dt.timedelta(hours=1), limit=1)
        if not segs:
            raise NotFound("Nothing was recorded at or after this instant.", code="playback-nothing-recorded")
        seg = segs[0]
        points = unpack_keyframes(seg.keyframes) or [(0, seg.init_size)]
        rel = max(0, _ms(at - seg.start))
        index = max([i for i, (ms, _) in enumerate(points) if ms <= rel] or [0])
        key = (seg.id, index, int(width))
        jpeg = self.thumbs.get(key)
        if jpeg is not None:
            self.thumbs.move_to_end(key)
            self.stats["thumb_hits"] += 1
        else:
            offset = points[index][1]
            end = points[index + 1][1] if index + 1 < len(points) else seg.size
            try:
                init = await _read(self.blobs, seg.storage_key, 0, seg.init_size)
                body = await _read(self.blobs, seg.storage_key, offset, end)
            except BlobNotFound:
                raise NotFound("This recording is gone.", code="playback-no-segment") from None
            jpeg = await asyncio.to_thread(keyframe_jpeg, init + body, int(width))
            self.thumbs[key] = jpeg
            self.stats["thumbs_made"] += 1
            while len(self.thumbs) > THUMB_CACHE:
                self.thumbs.popitem(last=False)
        shown = seg.start + dt.timedelta(milliseconds=points[index][0])
        return Response(jpeg, media_type="image/jpeg", headers={
            "Cache-Control": "private, max-age=3600", "X-Picture-Time": shown.isoformat(timespec="milliseconds")})

    # -- clips --
    async def _clip(self, request: Request) -> Response:
        channel = await self.check(request.path_params["token"])
        start = _instant(request.query_params, "from")
        end = _instant(request.query_params, "to")
        if end <= start:
            raise BadRequest("The range is empty: 'to' must be after 'from'.", code="clip-empty-range")
        if (end - start).total_seconds() > self.clip_max_s:
            raise TooLarge(f"A clip is at most {self.clip_max_s / 3600:g} h long; choose a shorter range.",
                           code="clip-too-long", max_seconds=self.clip_max_s)
        first = await timeline.segments_from(self.db, channel.device_id, channel.channel, channel.stream, start, end)
        if not first:
            raise NotFound("Nothing was recorded in this range.", code="clip-nothing-recorded")
        events = fragments(self.blobs, _paged(self.db, channel, start, end, first), start, end, one_init=True)
        ev = await anext(events)  # the first init: its segment says how long the clip can be
        init, seg0 = ev[1], ev[2]
        kf_ms = (keyframe_at(seg0.keyframes, max(0, _ms(start - seg0.start))) or (0, 0))[0]
        clip_start = seg0.start + dt.timedelta(milliseconds=kf_ms)
        duration_ms = await self._clip_duration(channel, clip_start, end, first)
        name = f"{channel.device_id[:8]}-ch{channel.channel}-{clip_start.strftime('%Y%m%d-%H%M%S')}.mp4"

        async def body() -> AsyncIterator[bytes]:
            # whole fragments gathered into writes of ~256 KiB: one socket write per fragment
            # piece would cost more than the copy
            out, size = [with_duration(init, duration_ms)], 0
            async for item in events:
                if item[0] == "fragment":
                    out += item[1].parts
                    size += sum(len(p) for p in item[1].parts)
                    if size >= CLIP_WRITE:
                        yield b"".join(out)
                        out, size = [], 0
            if out:
                yield b"".join(out)
        return StreamingResponse(body(), media_type="video/mp4", headers={
            "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
            "X-Clip-Start": clip_start.isoformat(timespec="milliseconds")})

    async def _clip_duration(self, channel: ChannelId, clip_start: dt.datetime, end: dt.datetime, first: list) -> int:
        """Recorded milliseconds from the clip's keyframe to ``end`` (gaps left out), up to the
        first codec or resolution change (where the clip stops)."""
        total, fmt = 0, None
        async for seg in _paged(self.db, channel, clip_start, end, first):
            if fmt is not None and (seg.codec, seg.width, seg.height) != fmt:
                break
            fmt = (seg.codec, seg.width, seg.height)
            a, b = max(seg.start, clip_start), min(seg.end, end)
            total += max(0, _ms(b - a))
        return total


def keyframe_jpeg(data: bytes, width: int, quality: int = 75) -> bytes:
    """The first picture of ``init + fragment`` as JPEG, ``width`` wide (aspect kept)."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        for frame in container.decode(stream):
            w = min(width, frame.width)
            h = max(2, round(frame.height * w / frame.width / 2) * 2)
            image = frame.reformat(width=w, height=h, format="rgb24").to_image()
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=quality)
            return out.getvalue()
    raise NotFound("The keyframe does not decode.", code="playback-undecodable")
