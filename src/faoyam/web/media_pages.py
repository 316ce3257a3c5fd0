"""Media URLs beyond the WebSocket player: LL-HLS, snapshots, and Home's card pictures (B4).

Authorization is the devices domain's, exactly as for the live URL routes
(``device_pages.live_url``): the owner, an invitee whose share has ``live`` on the channel,
or a share link naming it. What a route hands out is a signed, short-lived media URL
(:mod:`faoyam.media.urls`); the media worker checks it on its own. Refusals are problem
details (404 for a device the viewer may not know about, 403 for a missing permission,
410 for an expired link).

* ``GET /devices/{id}/live/{ch}/hls`` → ``{"url", "plain_url", "expires_in"}``: the
  master playlist (LL-HLS) and the plain playlist, one token (``…/s/{link}/live/{ch}/hls``
  for a share link);
* ``GET /devices/{id}/live/{ch}/snapshot/url`` → ``{"url", "expires_in"}``: the stream's
  latest keyframe as JPEG, from the media worker;
* ``GET /devices/{id}/live/{ch}/last.jpg``: the last picture the media worker kept for the
  channel (the card on Home), from the blob store — never a public address.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from faoyam.accounts.deps import CurrentUser, current_user
from faoyam.core.context import Context, get_ctx
from faoyam.devices import authz
from faoyam.devices import live_snapshots
from faoyam.devices.links import live_link
from faoyam.media import urls
from faoyam.media.grants import link_grant, user_grant
from faoyam.media.ids import ChannelId
from faoyam.web.device_pages import ChannelIndex, DeviceId, LinkToken, StreamName, _no_store, media_base_url

router = APIRouter(include_in_schema=False)

CARD_CACHE = {"Cache-Control": "private, max-age=600"}  # the URL carries the picture's version


def hls_url(request: Request, ctx: Context, channel: ChannelId, grant: str) -> dict[str, Any]:
    """HLS URLs for ``grant`` on ``channel`` as the route answers them."""
    ttl = ctx.settings.media_token_seconds
    return {**urls.hls_urls(ctx.key, media_base_url(request, ctx), channel, grant, ttl), "expires_in": ttl}


def snapshot_url(request: Request, ctx: Context, channel: ChannelId, grant: str) -> dict[str, Any]:
    ttl = ctx.settings.media_token_seconds
    return {"url": urls.snapshot_url(ctx.key, media_base_url(request, ctx), channel, grant, ttl), "expires_in": ttl}


@router.get("/devices/{device_id}/live/{channel}/hls")
async def device_hls(request: Request, device_id: str = DeviceId, channel: int = ChannelIndex,
                     stream: str = StreamName, user: CurrentUser = Depends(current_user),
                     ctx: Context = Depends(get_ctx)):
    await authz.require(ctx, user.id, device_id, "live", channel)
    return _no_store(hls_url(request, ctx, ChannelId(device_id, channel, stream), user_grant(user.id)))


@router.get("/devices/{device_id}/live/{channel}/snapshot/url")
async def device_snapshot_url(request: Request, device_id: str = DeviceId, channel: int = ChannelIndex,
                              stream: str = StreamName, user: CurrentUser = Depends(current_user),
                              ctx: Context = Depends(get_ctx)):
    await authz.require(ctx, user.id, device_id, "live", channel)
    return _no_store(snapshot_url(request, ctx, ChannelId(device_id, channel, stream), user_grant(user.id)))


@router.get("/devices/{device_id}/live/{channel}/last.jpg")
async def device_last_snapshot(device_id: str = DeviceId, channel: int = ChannelIndex,
                               user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    jpeg, _ = await live_snapshots.last_snapshot(ctx, user.id, device_id, channel)
    return Response(jpeg, media_type="image/jpeg", headers=CARD_CACHE)


@router.get("/s/{token}/live/{channel}/hls")
async def link_hls(request: Request, token: str = LinkToken, channel: int = ChannelIndex,
                   stream: str = StreamName, ctx: Context = Depends(get_ctx)):
    link_id, device_id = await live_link(ctx, token, channel)
    return _no_store(hls_url(request, ctx, ChannelId(device_id, channel, stream), link_grant(link_id)))


@router.get("/s/{token}/live/{channel}/snapshot/url")
async def link_snapshot_url(request: Request, token: str = LinkToken, channel: int = ChannelIndex,
                            stream: str = StreamName, ctx: Context = Depends(get_ctx)):
    link_id, device_id = await live_link(ctx, token, channel)
    return _no_store(snapshot_url(request, ctx, ChannelId(device_id, channel, stream), link_grant(link_id)))


@router.get("/s/{token}/live/{channel}/last.jpg")
async def link_last_snapshot(token: str = LinkToken, channel: int = ChannelIndex, ctx: Context = Depends(get_ctx)):
    jpeg, _ = await live_snapshots.link_last_snapshot(ctx, token, channel)
    return Response(jpeg, media_type="image/jpeg", headers={**CARD_CACHE, "Referrer-Policy": "no-referrer"})
