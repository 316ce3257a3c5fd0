"""Device pages: the list on Home, adding a device, device settings, sharing,
invitations, the public page of a share link, and live view (one channel, or a grid).

They read through the devices domain's public service functions; every change goes
through ``/api/v1/devices…`` from the browser, as with the account pages.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from functools import lru_cache
from types import SimpleNamespace
from urllib.parse import urlsplit
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from faoyam.accounts.deps import CurrentUser, current_user, optional_user
from faoyam.accounts.validation import countries
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import Gone, NotFound, Problem
from faoyam.core.http import CSP
from faoyam.alarms import service as alarms
from faoyam.devices import authz
from faoyam.devices import service as devices
from faoyam.devices.channel_streams import channel_streams
from faoyam.devices.control import PTZ_ABILITIES
from faoyam.devices.links import live_link
from faoyam.devices.talkback import can_talk, require_talk
from faoyam.media import urls as media_urls
from faoyam.media.grants import link_grant, user_grant
from faoyam.media.ids import ChannelId
from faoyam.media.stream_choice import browser_stream
from faoyam.web.deps import page_user
from faoyam.web.templating import page_language, render

router = APIRouter(include_in_schema=False)

DeviceId = Path(..., max_length=64)
ChannelIndex = Path(..., ge=0, le=255)
StreamName = Query("main", pattern="^(main|sub)$")
LinkToken = Path(..., max_length=128)
# What the player says about itself (live-player.js): it plays HEVC; it could not play what
# it was sent (the device's report of its codecs was wrong or missing).
PlaysHevc = Query(False)
Fallback = Query(False)


@lru_cache(maxsize=1)
def time_zones() -> list[str]:
    return sorted(z for z in zoneinfo.available_timezones() if "/" in z and not z.startswith(("Etc/", "SystemV/", "posix/", "right/")))


KIND_ICONS = {"camera": "camera", "doorbell": "doorbell", "nvr": "storage", "chime": "bell"}
PERMISSIONS = ("live", "playback", "alarms", "control")


def _common(ctx: Context) -> dict[str, Any]:
    return {"kind_icons": KIND_ICONS, "permissions": PERMISSIONS,
            "phone_share_countries": ctx.settings.phone_share_countries}


async def home_data(ctx: Context, user: CurrentUser) -> dict[str, Any]:
    """Home: the account's devices and those shared with it, and invitations waiting."""
    mine = await devices.list_devices(ctx, user.id)
    incoming = await devices.incoming_shares(ctx, user.id)
    pending = sum(1 for i in incoming if i.status == "pending")
    return {"devices": mine, "pending_invites": pending, **_common(ctx)}


KINDS_FILTER = ("videoMotion", "human", "doorbell", "alarmLocal", "tamper", "offline", "online")


async def messages_data(ctx: Context, user: CurrentUser, *, device_id: str | None = None, kind: str | None = None,
                        day: dt.date | None = None, limit: int = 50) -> dict[str, Any]:
    """Messages: the account's alarm messages (kept seven days) — of its own devices and of
    shared ones whose share grants alarms — newest first, filtered by device, type, day."""
    since = until = None
    if day is not None:
        since = dt.datetime.combine(day, dt.time(), dt.UTC)
        until = since + dt.timedelta(days=1)
    found = await alarms.list_messages(ctx, user.id, device_id=device_id or None, kind=kind or None,
                                       since=since, until=until, limit=limit)
    sources = [d for d in await devices.list_devices(ctx, user.id) if "alarms" in d.permissions and d.kind != "chime"]
    return {"messages": found, "sources": sources, "kinds": KINDS_FILTER,
            "filters": {"device_id": device_id or "", "kind": kind or "", "day": day.isoformat() if day else ""},
            "unread": await alarms.unread_count(ctx, user.id), **_common(ctx)}


def _not_found(request: Request, problem: Problem | None = None):
    status = problem.status if problem is not None and problem.status in (404, 410) else 404
    return render(request, "not_found.html", status_code=status, nav="home")


async def channel_page_data(request: Request, ctx: Context, user: CurrentUser, device_id: str, channel: int,
                            permission: authz.Permission):
    """``(device, channel)`` for a channel's page that needs ``permission``, or the 404 page to
    answer instead: a stranger, a share without the permission and a channel the share does
    not cover look alike. One statement: ``get_device`` decides the access and lists only the
    channels the caller sees."""
    try:
        device = await devices.get_device(ctx, user.id, device_id, permission)
    except Problem as exc:
        return _not_found(request, exc)
    ch = next((c for c in device.channels if c.index == channel), None)
    return (device, ch) if ch is not None else _not_found(request)


@router.get("/devices/add")
async def add_device_page(request: Request, user: CurrentUser = Depends(page_user),
                          ctx: Context = Depends(get_ctx)):
    lang = page_language(request, user)
    return render(request, "devices/add.html", nav="home", time_zones=time_zones(),
                  default_tz="Asia/Bangkok" if lang == "th" else "", **_common(ctx))


@router.get("/devices/invitations")
async def invitations_page(request: Request, user: CurrentUser = Depends(page_user),
                           ctx: Context = Depends(get_ctx)):
    incoming = await devices.incoming_shares(ctx, user.id)
    return render(request, "devices/invitations.html", nav="home", incoming=incoming, **_common(ctx))


@router.get("/devices/{device_id}")
async def device_page(request: Request, device_id: str = DeviceId, user: CurrentUser = Depends(page_user),
                      ctx: Context = Depends(get_ctx)):
    try:
        device = await devices.get_device(ctx, user.id, device_id)
    except NotFound as exc:
        return _not_found(request, exc)
    share = None
    if device.role == "shared":
        share = next((i for i in await devices.incoming_shares(ctx, user.id) if i.device_id == device_id), None)
    return render(request, "devices/device.html", nav="home", device=device, share=share, time_zones=time_zones(),
                  **_common(ctx))


@router.get("/devices/{device_id}/sharing")
async def sharing_page(request: Request, device_id: str = DeviceId, user: CurrentUser = Depends(page_user),
                       ctx: Context = Depends(get_ctx)):
    try:
        device = await devices.get_device(ctx, user.id, device_id)
        if device.role != "owner":
            return _not_found(request)
        shares = await devices.list_shares(ctx, user.id, device_id)
        links = await devices.list_links(ctx, user.id, device_id)
    except NotFound as exc:
        return _not_found(request, exc)
    names = dict(countries(page_language(request, user)))
    phone_countries = [names.get(c, c) for c in ctx.settings.phone_share_countries]
    return render(request, "devices/sharing.html", nav="home", device=device, shares=shares, links=links,
                  phone_countries=phone_countries, **_common(ctx))


@router.get("/s/{token}")
async def share_link_page(request: Request, token: str = Path(..., max_length=128),
                          user: CurrentUser | None = Depends(optional_user), ctx: Context = Depends(get_ctx)):
    """Public: what the holder of a share link may see (live view of some channels)."""
    try:
        view = await devices.view_link(ctx, token)
    except (NotFound, Gone) as exc:
        return render(request, "devices/link.html", status_code=exc.status, view=None, expired=isinstance(exc, Gone),
                      **_common(ctx))
    response = render(request, "devices/link.html", view=view, expired=False, token=token, **_common(ctx))
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response


# Live view (B4) -------------------------------------------------------------------------
#
# The page decides nothing about video: it asks the devices domain whether this viewer may
# watch (owner, a share with "live", a share link), mints a signed one-use media URL for
# the media worker, and hands it to static/js/live-player.js. The player asks the ``…/url``
# route for a fresh URL whenever it reconnects, which checks authorization again.
#
# The URL also decides *which* stream the viewer gets (media.stream_choice): an H.265 camera
# is sent as it is only to a browser that said it plays HEVC (``hevc=1``); others get the
# camera's H.264 sub-stream, or the media worker's on-demand transcode. The page's first URL
# assumes no HEVC (it works everywhere); an HEVC browser asks again when it mattered
# (``data-hevc-choice``).

def media_base_url(request: Request, ctx: Context) -> str:
    """Where browsers reach the media worker: the setting, else the page's host name on the
    media port (ws:// for an http page, wss:// for https)."""
    if ctx.settings.media_public_url:
        return ctx.settings.media_public_url.rstrip("/")
    scheme = "wss" if request.url.scheme == "https" else "ws"
    return f"{scheme}://{request.url.hostname}:{ctx.settings.media_http_port}"


def live_csp(request: Request, ctx: Context) -> str:
    """The pages' Content-Security-Policy, plus what a live player needs: the media worker's
    WebSocket origin (``connect-src``) and MediaSource playback from ``blob:`` (``media-src``)."""
    parts = urlsplit(media_base_url(request, ctx))
    origin = f"{parts.scheme}://{parts.netloc}"
    return CSP.replace("connect-src 'self'", f"connect-src 'self' {origin}") + "; media-src 'self' blob:"


def _live_response(request: Request, ctx: Context, response):
    response.headers["Content-Security-Policy"] = live_csp(request, ctx)
    response.headers["Cache-Control"] = "no-store"  # the page holds media URLs
    return response


def media_url(request: Request, ctx: Context, channel: ChannelId, grant: str) -> dict[str, Any]:
    ttl = ctx.settings.media_token_seconds
    return {"url": media_urls.live_url(ctx.key, media_base_url(request, ctx), channel, grant, ttl), "expires_in": ttl,
            "stream": channel.stream}


async def chosen_stream(ctx: Context, device_id: str, channel: int, stream: str, *, hevc: bool = False,
                        fallback: bool = False) -> tuple[ChannelId, bool]:
    """The stream to mint for (after authorization), and whether the browser's HEVC support
    changed the choice (then an HEVC browser should ask with ``hevc=1``)."""
    codecs = await channel_streams(ctx, device_id, channel)
    name = browser_stream(stream, codecs, hevc=hevc, fallback=fallback)
    return ChannelId(device_id, channel, name), (name != stream and not fallback)


def _no_store(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


def _tile(device, channel, url_endpoint: str, initial: dict[str, Any], stream: str,
          hevc_choice: bool = False) -> dict[str, Any]:
    many = len(device.channels) > 1
    name = device.name or device.model
    return {"device": device, "channel": channel, "url_endpoint": url_endpoint, "initial_url": initial["url"],
            "stream": stream, "title": f"{name} · {channel.name}" if many and channel.name else name,
            "channel_label": channel.name if many else None, "hevc_choice": hevc_choice}


async def _user_tile(request: Request, ctx: Context, user: CurrentUser, device, channel, stream: str) -> dict[str, Any]:
    chosen, hevc_choice = await chosen_stream(ctx, device.id, channel.index, stream)
    initial = media_url(request, ctx, chosen, user_grant(user.id))
    return _tile(device, channel, f"/devices/{device.id}/live/{channel.index}/url", initial, stream, hevc_choice)


@router.get("/live")
async def live_grid_page(request: Request, user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx),
                         stream: str = StreamName):
    """Every camera the user may watch — their own and those shared with live view —
    one tile per channel (an NVR's channels each get one)."""
    tiles = []
    for device in await devices.list_devices(ctx, user.id):
        if "live" in device.permissions and device.kind != "chime":
            for channel in device.channels:
                tiles.append(await _user_tile(request, ctx, user, device, channel, stream))
    return _live_response(request, ctx, render(request, "devices/live_grid.html", nav="home", tiles=tiles,
                                                **_common(ctx)))


@router.get("/devices/{device_id}/live/{channel}")
async def live_page(request: Request, device_id: str = DeviceId, channel: int = ChannelIndex,
                    stream: str = StreamName, user: CurrentUser = Depends(page_user), ctx: Context = Depends(get_ctx)):
    found = await channel_page_data(request, ctx, user, device_id, channel, "live")
    if not isinstance(found, tuple):
        return found
    device, ch = found
    tile = await _user_tile(request, ctx, user, device, ch, stream)
    return _live_response(request, ctx, render(request, "devices/live.html", nav="home", tile=tile,
                                                controls=device_controls(device, ch),
                                                back=f"/devices/{device_id}", **_common(ctx)))


def device_controls(device, channel) -> dict[str, Any]:
    """The controls the live page offers for what the device reports and the viewer may do:
    PTZ buttons where the device or channel reports ``PTZ`` (zoom too) or ``PT`` (no zoom),
    talk-back on a doorbell that reports ``AudioTalk`` — both for the owner or a share with
    ``control``. The service checks the same again on every command."""
    if "control" not in device.permissions:
        return {"ptz": False, "zoom": False, "talk": False}
    abilities = set(device.abilities) | set(channel.abilities)
    return {"ptz": bool(PTZ_ABILITIES & abilities), "zoom": "PTZ" in abilities,
            "talk": can_talk(device.kind, abilities),
            "talk_url": f"/devices/{device.id}/talk/{channel.index}/url"}


@router.get("/devices/{device_id}/talk/{channel}/url")
async def talk_url(request: Request, device_id: str = DeviceId, channel: int = ChannelIndex,
                   user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """JSON ``{"url", "expires_in"}``: a one-use media URL to talk through a doorbell
    (``/media/talk/{token}``, permission ``talk``); 404/403/422 problem details otherwise."""
    await require_talk(ctx, user.id, device_id, channel)
    ttl = ctx.settings.media_token_seconds
    url = media_urls.talk_url(ctx.key, media_base_url(request, ctx), ChannelId(device_id, channel, "main"),
                              user_grant(user.id), ttl)
    return _no_store({"url": url, "expires_in": ttl})


@router.get("/devices/{device_id}/live/{channel}/url")
async def live_url(request: Request, device_id: str = DeviceId, channel: int = ChannelIndex, stream: str = StreamName,
                   hevc: bool = PlaysHevc, fallback: bool = Fallback,
                   user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """A fresh media URL for the player (JSON: ``url``, ``expires_in``, and the ``stream`` it
    opens); 404/403 problem details when not allowed."""
    await authz.require(ctx, user.id, device_id, "live", channel)
    chosen, _ = await chosen_stream(ctx, device_id, channel, stream, hevc=hevc, fallback=fallback)
    return _no_store(media_url(request, ctx, chosen, user_grant(user.id)))


@router.get("/s/{token}/live/{channel}")
async def link_live_page(request: Request, token: str = LinkToken, channel: int = ChannelIndex,
                         stream: str = StreamName, ctx: Context = Depends(get_ctx)):
    """Live view through a share link: no account needed, this link's channels only."""
    try:
        link_id, device_id = await live_link(ctx, token, channel)
        view = await devices.view_link(ctx, token)
    except (NotFound, Gone) as exc:
        return render(request, "devices/link.html", status_code=exc.status, view=None, expired=isinstance(exc, Gone),
                      **_common(ctx))
    ch = next((c for c in view.channels if c.index == channel), None)
    if ch is None:  # named by the link, but no longer on the device
        return render(request, "devices/link.html", status_code=404, view=None, expired=False, **_common(ctx))
    chosen, hevc_choice = await chosen_stream(ctx, device_id, channel, stream)
    initial = media_url(request, ctx, chosen, link_grant(link_id))
    device = {"id": device_id, "name": view.device_name, "model": "", "channels": view.channels, "kind": view.kind}
    tile = _tile(SimpleNamespace(**device), ch, f"/s/{token}/live/{channel}/url", initial, stream, hevc_choice)
    response = render(request, "devices/live.html", tile=tile, back=f"/s/{token}", **_common(ctx))
    response.headers["Referrer-Policy"] = "no-referrer"  # the link token is in the address
    return _live_response(request, ctx, response)


@router.get("/s/{token}/live/{channel}/url")
async def link_live_url(request: Request, token: str = LinkToken, channel: int = ChannelIndex,
                        stream: str = StreamName, hevc: bool = PlaysHevc, fallback: bool = Fallback,
                        ctx: Context = Depends(get_ctx)):
    link_id, device_id = await live_link(ctx, token, channel)
    chosen, _ = await chosen_stream(ctx, device_id, channel, stream, hevc=hevc, fallback=fallback)
    return _no_store(media_url(request, ctx, chosen, link_grant(link_id)))
