"""Device pages: the list on Home, adding a device, device settings, sharing,
invitations, and the public page of a share link.

They read through the devices domain's public service functions; every change goes
through ``/api/v1/devices…`` from the browser, as with the account pages.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Depends, Path, Request

from faoyam.accounts.deps import CurrentUser, optional_user
from faoyam.accounts.validation import countries
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import Gone, NotFound, Problem
from faoyam.devices import service as devices
from faoyam.devices.schemas import AlarmOut, DeviceOut
from faoyam.web.deps import page_user
from faoyam.web.templating import page_language, render

router = APIRouter(include_in_schema=False)

DeviceId = Path(..., max_length=64)


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


@dataclass(frozen=True)
class AlarmMessage:
    """One line of the Messages tab: an alarm and the device (and channel) it came from."""

    alarm: AlarmOut
    device: DeviceOut

    @property
    def channel_name(self) -> str | None:
        if len(self.device.channels) < 2:
            return None
        return next((c.name for c in self.device.channels if c.index == self.alarm.channel), None) \
            or f"#{self.alarm.channel + 1}"


async def messages_data(ctx: Context, user: CurrentUser, limit: int = 50) -> dict[str, Any]:
    """Messages: the alarms (kept seven days) of every device whose alarms the account may
    see — its own, and shared ones with the alarms permission — newest first."""
    found: list[AlarmMessage] = []
    for d in await devices.list_devices(ctx, user.id):
        if d.kind == "chime" or "alarms" not in d.permissions:
            continue
        found += [AlarmMessage(a, d) for a in await devices.list_alarms(ctx, user.id, d.id, limit)]
    found.sort(key=lambda m: m.alarm.at, reverse=True)
    return {"alarms": found[:limit], **_common(ctx)}


def _not_found(request: Request, problem: Problem | None = None):
    status = problem.status if problem is not None and problem.status in (404, 410) else 404
    return render(request, "not_found.html", status_code=status, nav="home")


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
    response = render(request, "devices/link.html", view=view, expired=False, **_common(ctx))
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the address
    return response
