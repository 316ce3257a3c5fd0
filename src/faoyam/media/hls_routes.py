"""HTTP for LL-HLS and snapshots: Starlette routes the media worker's app mounts.

Every URL carries the viewer's signed token as its first path segment, so the playlist's
relative URIs (``init/1.mp4``, ``part/12.3.m4s``, ``segment/12.m4s``) carry it too and every
request is checked: ``verify(token)`` (sync or async) returns the stream the token grants,
or None. Issuing and binding those tokens is the live-view side's job; this module only
asks.

``hls_app(outputs, verify)`` serves, under ``/{token}/``:

* ``master.m3u8`` — one variant with ``CODECS``/``RESOLUTION``/``BANDWIDTH``;
* ``playlist.m3u8`` — the LL-HLS media playlist, with blocking reload
  (``?_HLS_msn=M[&_HLS_part=P]``);
* ``plain.m3u8`` — the same segments without part tags, for old clients;
* ``init/{n}.mp4``, ``segment/{msn}.m4s``, ``part/{msn}.{part}.m4s`` — a part or segment
  that is about to exist (the preload hint) is held until it does.

``snapshot_app(snapshots, verify)`` serves ``/{token}.jpg`` (``?width=`` optional).
Errors are RFC 9457 problem details.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Hashable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from faoyam.core.errors import BadRequest, Forbidden, NotFound, Problem, Unavailable, problem_response
from faoyam.media.hls import HlsOutputs, HlsSegmenter, HlsStream
from faoyam.media.snapshot import SnapshotError

Verify = Callable[[str], "Hashable | None | Awaitable[Hashable | None]"]

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
FIRST_SEGMENT_TIMEOUT = 15.0  # a stream that was not running needs the device to connect first


async def _verified(verify: Verify, token: str) -> Hashable:
    stream = verify(token)
    if inspect.isawaitable(stream):
        stream = await stream
    if stream is None:
        raise Forbidden("This media link is not valid (expired, revoked or for another stream).",
                        code="media-token-invalid")
    return stream


def _int_param(request: Request, name: str) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not raw.isdigit():
        raise BadRequest(f"{name} must be a non-negative integer", code="hls-bad-directive")
    return int(raw)


def _handle_problems(endpoint):
    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except Problem as problem:
            return problem_response(problem, request)
    return wrapped


def hls_app(outputs: HlsOutputs, verify: Verify) -> Starlette:
    """The LL-HLS routes as an ASGI app (mount it, e.g. at ``/media/hls``)."""

    def serving(endpoint):
        """Verify the token, find (or start) the stream's output, keep it in use meanwhile."""
        async def wrapped(request: Request) -> Response:
            out = outputs.get(await _verified(verify, request.path_params["token"]))
            with out.in_use():
                return await endpoint(request, out)
        return _handle_problems(wrapped)

    async def ready(out: HlsStream) -> HlsSegmenter:
        segmenter = out.segmenter
        # the first complete segment: clients that ignore parts (FFmpeg's, old players) cannot
        # start from a playlist without one. Costs at most a GOP, once per stream.
        if not await segmenter.wait(lambda: bool(segmenter.segments), FIRST_SEGMENT_TIMEOUT):
            raise Unavailable("The camera is not sending video yet.", code="stream-not-ready", retry_after=2)
        return segmenter

    async def master(request: Request, out: HlsStream) -> Response:
        seg = await ready(out)
        video = next((t for t in seg.tracks if t.kind == "video"), None)
        codecs = ",".join(t.mime_codec for t in seg.tracks)
        resolution = f",RESOLUTION={video.width}x{video.height}" if video else ""
        body = (f"#EXTM3U\n#EXT-X-VERSION:6\n#EXT-X-INDEPENDENT-SEGMENTS\n"
                f'#EXT-X-STREAM-INF:BANDWIDTH={seg.bandwidth()},CODECS="{codecs}"{resolution}\n'
                "playlist.m3u8\n")
        return Response(body, media_type=PLAYLIST_TYPE, headers={"Cache-Control": "no-cache"})

    async def playlist(request: Request, out: HlsStream) -> Response:
        msn, part = _int_param(request, "_HLS_msn"), _int_param(request, "_HLS_part")
        if part is not None and msn is None:
            raise BadRequest("_HLS_part needs _HLS_msn", code="hls-bad-directive")
        seg = await ready(out)
        if msn is not None:
            # RFC 8216bis 6.2.5.2: more than two segments ahead of the live edge is an error
            if msn > seg.last_msn + 2:
                raise BadRequest("_HLS_msn is too far ahead of the live edge", code="hls-msn-ahead")
            if not await seg.wait(lambda: seg.has_part(msn, part), 3 * seg.target_duration):
                raise Unavailable("The requested part did not arrive in time.", code="hls-part-late")
        headers = {"Cache-Control": "max-age=60" if msn is not None else "no-cache"}
        return Response(seg.render(), media_type=PLAYLIST_TYPE, headers=headers)

    async def plain(request: Request, out: HlsStream) -> Response:
        seg = await ready(out)
        return Response(seg.render(low_latency=False), media_type=PLAYLIST_TYPE,
                        headers={"Cache-Control": "no-cache"})

    async def init(request: Request, out: HlsStream) -> Response:
        data = out.segmenter.inits.get(request.path_params["n"])
        if data is None:
            raise NotFound("No such init segment.", code="hls-gone")
        return Response(data, media_type="video/mp4", headers={"Cache-Control": "max-age=3600"})

    async def segment(request: Request, out: HlsStream) -> Response:
        seg, msn = out.segmenter, request.path_params["msn"]
        if seg.current is not None and seg.current.msn == msn:
            await seg.wait(lambda: seg.has_part(msn, None), 3 * seg.target_duration)
        found = seg.segment(msn)
        if found is None or not found.complete:
            raise NotFound("No such segment (not yet, or no longer).", code="hls-gone")
        return Response(found.data, media_type="video/iso.segment", headers={"Cache-Control": "max-age=60"})

    async def part(request: Request, out: HlsStream) -> Response:
        seg, msn, index = out.segmenter, request.path_params["msn"], request.path_params["part"]

        def available() -> bool:
            found = seg.segment(msn)
            return found is not None and (len(found.parts) > index or found.complete)

        if msn <= seg.last_msn + 1:  # the hinted part, or the first of the next segment
            await seg.wait(available, 3 * seg.target_duration)
        found = seg.segment(msn)
        if found is None or index >= len(found.parts):
            raise NotFound("No such part (not yet, or no longer).", code="hls-gone")
        return Response(found.parts[index].data, media_type="video/iso.segment",
                        headers={"Cache-Control": "max-age=60"})

    routes = [
        Route("/{token}/master.m3u8", serving(master)),
        Route("/{token}/playlist.m3u8", serving(playlist)),
        Route("/{token}/plain.m3u8", serving(plain)),
        Route("/{token}/init/{n:int}.mp4", serving(init)),
        Route("/{token}/segment/{msn:int}.m4s", serving(segment)),
        Route("/{token}/part/{msn:int}.{part:int}.m4s", serving(part)),
    ]
    return Starlette(routes=routes)


def snapshot_app(snapshots, verify: Verify) -> Starlette:
    """``/{token}.jpg``: the stream's latest keyframe as JPEG (see :mod:`faoyam.media.snapshot`)."""

    async def snapshot(request: Request) -> Response:
        stream = await _verified(verify, request.path_params["token"])
        width = _int_param(request, "width")
        if width is not None and not 16 <= width <= 3840:
            raise BadRequest("width must be between 16 and 3840", code="snapshot-bad-width")
        try:
            jpeg = await snapshots.jpeg(stream, width=width)
        except SnapshotError:
            raise Unavailable("The camera's latest picture does not decode.", code="snapshot-undecodable",
                              retry_after=5) from None
        if jpeg is None:
            raise Unavailable("This stream is not running.", code="stream-not-ready", retry_after=5)
        return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=1"})

    return Starlette(routes=[Route("/{token}.jpg", _handle_problems(snapshot))])


__all__ = ["HlsSegmenter", "hls_app", "snapshot_app"]
