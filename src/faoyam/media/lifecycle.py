"""The media role's services: the stream hubs and the RTMP server devices push to.

Started by ``faoyam serve --role media`` (``roles.run_workers``) or, in one process with
every role (tests, ``create_app`` without roles), by the app's lifespan after the devices
domain. It composes the two domains: the hubs tell the devices domain's
:class:`~faoyam.devices.streaming.StreamDemand` when a stream is wanted or not any more,
and the RTMP server asks it whether a publisher's stream key is a valid publish token.

What a viewer-facing app needs is on the context: ``ctx.media_hubs`` (subscribe to a
``ChannelId``), ``ctx.rtmp_server`` (its bound ``port``) and ``ctx.stream_demand``.

A media-only process is not the gateway: it reaches devices through a gateway client
(commands over MQTT), which it starts itself when the context has none yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from faoyam.core import logging as flog
from faoyam.core.context import Context
from faoyam.devices import lifecycle as devices
from faoyam.devices import live_snapshots
from faoyam.devices.streaming import StreamDemand
from faoyam.media import motion_worker, recorder
from faoyam.media.grants import devices_revocation
from faoyam.media.hub import StreamHubs
from faoyam.media.ids import ChannelId
from faoyam.media.playback import PlaybackServer
from faoyam.media.rtmp_server import RtmpServer
from faoyam.media.talk import talk_server
from faoyam.media.viewer_http import ViewerHttp

log = logging.getLogger("faoyam.media")


def public_rtmp_url(ctx: Context, port: int) -> str:
    s = ctx.settings
    if s.media_rtmp_public_url:
        return s.media_rtmp_public_url.rstrip("/")
    host = "127.0.0.1" if s.media_rtmp_host in ("", "0.0.0.0", "::") else s.media_rtmp_host
    return f"rtmp://{host}:{port}/live"


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside a process that already has its own signal handling (the web app's
    uvicorn, or ``roles.run_workers``): it must not take SIGINT/SIGTERM for itself."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def _serve_viewers(ctx: Context, hubs: StreamHubs) -> tuple[ViewerHttp, _EmbeddedServer, asyncio.Task]:
    """The viewers' side of the media worker (:mod:`faoyam.media.viewer_http`): live
    WebSocket, LL-HLS and snapshots (docs/live-view.md) on ``media_http_host:media_http_port``,
    and the keeper of Home's card pictures. Port 0 (tests) binds a free port, written back
    to this process's settings so the pages it serves point at it."""
    s = ctx.settings

    async def store(stream: ChannelId, jpeg: bytes) -> bool:
        return await live_snapshots.store_snapshot(ctx, stream.device_id, stream.channel, jpeg)

    playback = PlaybackServer(ctx.db, ctx.blobs, ctx.key, revoked=devices_revocation(ctx),
                              session_idle=s.media_hls_idle_seconds, clip_max_s=s.media_clip_max_seconds)
    viewers = ViewerHttp(hubs, ctx.key, revoked=devices_revocation(ctx), hls_idle=s.media_hls_idle_seconds,
                         store=store, snapshot_interval=s.media_snapshot_seconds,
                         # talk-back (media/talk.py) and recorded video (media/playback.py) beside live view
                         endpoints=[talk_server(ctx), playback])
    server = _EmbeddedServer(uvicorn.Config(viewers.app, host=s.media_http_host, port=s.media_http_port,
                                            log_config=None, access_log=False, lifespan="on",
                                            # video does not compress: permessage-deflate (which
                                            # browsers offer) cost ~90 ms on a 1080p keyframe
                                            ws="websockets-sansio", ws_per_message_deflate=False))
    task = asyncio.create_task(server.serve(), name="media-http")
    while not server.started:
        if task.done():  # the port is taken, say: fail the start with uvicorn's reason
            await task
            raise RuntimeError(f"the media worker's HTTP server did not start on port {s.media_http_port}")
        await asyncio.sleep(0.02)
    if not s.media_http_port:
        s.media_http_port = server.servers[0].sockets[0].getsockname()[1]
    return viewers, server, task


_OWN_GATEWAY: set[int] = set()  # contexts whose gateway client this module started


async def start(ctx: Context) -> None:
    s = ctx.settings
    if ctx.gateway is None and s.mqtt_mode != "off":
        await devices.start(ctx)
        _OWN_GATEWAY.add(id(ctx))
    demand = StreamDemand(ctx, "", linger_s=s.media_stream_linger_seconds,
                          token_ttl_s=s.media_publish_token_seconds)
    hubs = StreamHubs(on_demand=demand.on_demand, on_idle=demand.on_idle)

    async def authorize(app: str, key: str) -> ChannelId | None:
        verdict = await demand.authorize(app, key)
        return ChannelId(*verdict) if verdict is not None else None

    server = await RtmpServer(hubs, authorize, read_interval=s.media_read_interval_seconds,
                              background_interval=s.media_background_read_interval_seconds,
                              ).start(s.media_rtmp_host, s.media_rtmp_port)
    demand.rtmp_url = public_rtmp_url(ctx, server.port)  # port 0 is known only once bound
    flog.own_url(demand.rtmp_url)  # where devices push is the service's address, not a person's
    ctx.media_hubs, ctx.rtmp_server, ctx.stream_demand = hubs, server, demand
    try:
        await recorder.start(ctx, hubs)  # repairs what a crash left, then records (docs/recording.md)
        await motion_worker.start(ctx, hubs)  # server-side motion detection (docs/motion-detection.md)
        ctx.live_server = await _serve_viewers(ctx, hubs)
    except BaseException:
        await stop(ctx)
        raise
    log.info("media engine started", extra={"rtmp_port": server.port, "rtmp_url": demand.rtmp_url})


async def stop(ctx: Context) -> None:
    await motion_worker.stop(ctx)  # an episode in progress is reported
    await recorder.stop(ctx)  # segments in progress are closed and stored
    viewers, ctx.live_server = ctx.live_server, None
    if viewers is not None:
        live, http, task = viewers
        await live.close()
        http.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)
    server, ctx.rtmp_server = ctx.rtmp_server, None
    demand, ctx.stream_demand = ctx.stream_demand, None
    ctx.media_hubs = None
    if demand is not None:
        await demand.close()
    if server is not None:
        await server.close()
    if id(ctx) in _OWN_GATEWAY:
        _OWN_GATEWAY.discard(id(ctx))
        await devices.stop(ctx)
