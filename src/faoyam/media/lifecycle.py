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

import logging

from faoyam.core.context import Context
from faoyam.devices import lifecycle as devices
from faoyam.devices.streaming import StreamDemand
from faoyam.media.hub import StreamHubs
from faoyam.media.ids import ChannelId
from faoyam.media.rtmp_server import RtmpServer

log = logging.getLogger("faoyam.media")


def public_rtmp_url(ctx: Context, port: int) -> str:
    s = ctx.settings
    if s.media_rtmp_public_url:
        return s.media_rtmp_public_url.rstrip("/")
    host = "127.0.0.1" if s.media_rtmp_host in ("", "0.0.0.0", "::") else s.media_rtmp_host
    return f"rtmp://{host}:{port}/live"


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

    server = await RtmpServer(hubs, authorize).start(s.media_rtmp_host, s.media_rtmp_port)
    demand.rtmp_url = public_rtmp_url(ctx, server.port)  # port 0 is known only once bound
    ctx.media_hubs, ctx.rtmp_server, ctx.stream_demand = hubs, server, demand
    log.info("media engine started", extra={"rtmp_port": server.port, "rtmp_url": demand.rtmp_url})


async def stop(ctx: Context) -> None:
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
