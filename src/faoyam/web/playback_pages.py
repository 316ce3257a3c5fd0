"""Playback of recorded video (B5): the page of one channel, its media URLs, and the timeline
API it draws from.

Authorization is the devices domain's: the owner, or an invitee whose accepted share has the
``playback`` permission on the channel (``devices.authz.require(…, "playback", channel)``);
a stranger gets 404, an invitee without ``playback`` 403 ``permission-missing``. Share links
grant live view only, so they have no playback routes. The bytes come from the media worker
(``media/playback.py``) under a signed, short-lived ``playback`` token
(:func:`faoyam.media.urls.playback_urls`).

* ``GET /devices/{id}/playback/{ch}`` — the page (``templates/devices/playback.html``,
  ``static/js/playback.js``);
* ``GET /devices/{id}/playback/{ch}/url`` → ``{"stream", "base", "expires_in"}``;
* ``GET /api/v1/devices/{id}/recordings/{ch}/timeline?from=&to=`` → intervals, gaps, event
  markers (``recordings/timeline.py``);
* ``GET /api/v1/devices/{id}/recordings/{ch}/days?from=YYYY-MM-DD&to=&tz=`` → the local days
  with recordings (the calendar).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Query, Request

from faoyam.accounts.deps import CurrentUser, current_user
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import BadRequest
from faoyam.core.http import CSP
from faoyam.devices import authz
from faoyam.devices import service as devices
from faoyam.media import urls
from faoyam.media.grants import user_grant
from faoyam.media.ids import ChannelId
from faoyam.recordings import timeline
from faoyam.web.device_pages import (ChannelIndex, DeviceId, StreamName, _common, _live_response, _no_store,
                                     channel_page_data, media_base_url)
from faoyam.web.deps import page_user
from faoyam.web.templating import render

router = APIRouter(include_in_schema=False)

MAX_RANGE = dt.timedelta(days=62)


def playback_csp(request: Request, ctx: Context) -> str:
    """The pages' policy plus the media worker: its WebSocket and HTTP origins in
    ``connect-src``, its HTTP origin for thumbnails (``img-src``), MSE from ``blob:``."""
    netloc = urlsplit(media_base_url(request, ctx)).netloc
    secure = urlsplit(media_base_url(request, ctx)).scheme in ("https", "wss")
    ws, http = f"{'wss' if secure else 'ws'}://{netloc}", f"{'https' if secure else 'http'}://{netloc}"
    return (CSP.replace("connect-src 'self'", f"connect-src 'self' {ws} {http}")
            .replace("img-src 'self'", f"img-src 'self' {http}") + "; media-src 'self' blob:")


def playback_url(request: Request, ctx: Context, channel: ChannelId, grant: str) -> dict[str, Any]:
    ttl = ctx.settings.media_token_seconds
    return {**urls.playback_urls(ctx.key, media_base_url(request, ctx), channel, grant, ttl), "expires_in": ttl}


def _instant(raw: str, name: str) -> dt.datetime:
    try:
        if raw.lstrip("-").isdigit():
            return dt.datetime.fromtimestamp(int(raw) / 1000, dt.UTC)
        value = dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except (ValueError, OverflowError, OSError):
        raise BadRequest(f"{name} must be unix milliseconds or ISO 8601", code="timeline-bad-instant") from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _zone(tz: str | None, device_tz: str | None) -> str:
    for name in (tz, device_tz, "UTC"):
        if name:
            try:
                zoneinfo.ZoneInfo(name)
                return name
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                if name is tz:
                    raise BadRequest("tz is not a known time zone", code="timeline-bad-tz") from None
    return "UTC"


@router.get("/devices/{device_id}/playback/{channel}")
async def playback_page(request: Request, device_id: str = DeviceId, channel: int = ChannelIndex,
                        stream: str = StreamName, user: CurrentUser = Depends(page_user),
                        ctx: Context = Depends(get_ctx)):
    found = await channel_page_data(request, ctx, user, device_id, channel, "playback")
    if not isinstance(found, tuple):
        return found
    device, ch = found
    many = len(device.channels) > 1
    name = device.name or device.model
    title = f"{name} · {ch.name}" if many and ch.name else name
    response = _live_response(request, ctx, render(
        request, "devices/playback.html", nav="home", device=device, channel=ch, stream=stream, title=title,
        tz=_zone(None, device.time_zone), live_href=f"/devices/{device_id}/live/{channel}"
        if "live" in device.permissions else None, back=f"/devices/{device_id}", **_common(ctx)))
    response.headers["Content-Security-Policy"] = playback_csp(request, ctx)
    return response


@router.get("/devices/{device_id}/playback/{channel}/url")
async def playback_urls(request: Request, device_id: str = DeviceId, channel: int = ChannelIndex,
                        stream: str = StreamName, user: CurrentUser = Depends(current_user),
                        ctx: Context = Depends(get_ctx)):
    """JSON ``{"stream", "base", "expires_in"}`` (see :func:`faoyam.media.urls.playback_urls`)."""
    await authz.require(ctx, user.id, device_id, "playback", channel)
    return _no_store(playback_url(request, ctx, ChannelId(device_id, channel, stream), user_grant(user.id)))


@router.get("/api/v1/devices/{device_id}/recordings/{channel}/timeline")
async def timeline_api(device_id: str = DeviceId, channel: int = ChannelIndex, stream: str = StreamName,
                       start: str = Query(..., alias="from", max_length=40), end: str = Query(..., alias="to", max_length=40),
                       user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Recorded intervals, gaps and event markers in ``[from, to)`` (at most 62 days)."""
    await authz.require(ctx, user.id, device_id, "playback", channel)
    a, b = _instant(start, "from"), _instant(end, "to")
    if b <= a:
        raise BadRequest("'to' must be after 'from'", code="timeline-empty-range")
    if b - a > MAX_RANGE:
        raise BadRequest("A timeline covers at most 62 days.", code="timeline-range-too-large")
    found = await timeline.timeline(ctx.db, device_id, channel, stream, a, b)
    return _no_store(found.as_json())


@router.get("/api/v1/devices/{device_id}/recordings/{channel}/days")
async def days_api(device_id: str = DeviceId, channel: int = ChannelIndex, stream: str = StreamName,
                   first: dt.date = Query(..., alias="from"), last: dt.date = Query(..., alias="to"),
                   tz: str | None = Query(None, max_length=64), user: CurrentUser = Depends(current_user),
                   ctx: Context = Depends(get_ctx)):
    """``{"days": ["2026-12-01", …], "tz"}``: local days in ``[from, to]`` with recordings."""
    acc = await authz.require(ctx, user.id, device_id, "playback", channel)
    if last < first or (last - first).days > 400:
        raise BadRequest("from..to must be 1 to 400 days", code="timeline-bad-days")
    device = await devices.get_device(ctx, user.id, acc.device_id)
    zone = _zone(tz, device.time_zone)
    days = await timeline.recorded_days(ctx.db, device_id, channel, stream, first, last, zone)
    return _no_store({"days": [d.isoformat() for d in days], "tz": zone})
