"""One channel's recording at a glance — settings, the recorder's status, what is stored —
as the API answers it and the recording page shows it."""

from __future__ import annotations

import datetime as dt
from typing import Any

from faoyam.core.context import Context
from faoyam.core.errors import NotFound
from faoyam.devices import authz
from faoyam.devices import service as devices
from faoyam.recordings import service


def status_of(cs: service.ChannelSettings, configured: bool, recorder_says: str | None,
              at: dt.datetime | None, local_now: dt.datetime) -> dict[str, Any]:
    """What the page shows: ``state`` is recording | armed | paused | waiting | off, and
    ``detail`` the recorder's own words (why it is paused)."""
    if not configured or cs.mode == "off":
        return {"state": "off", "detail": "recording is off", "at": at}
    if not cs.scheduled(local_now):
        return {"state": "off", "detail": "not scheduled now", "at": at}
    said = recorder_says or "starting"
    if said == "recording":
        state = "recording"
    elif said.startswith("armed"):
        state = "armed"
    elif said.startswith("paused"):
        state = "paused"
    else:
        state = "waiting"
    return {"state": state, "detail": said, "at": at}


async def channel_of(ctx: Context, user, device_id: str, channel: int, permission: authz.Permission):
    """The device (as ``user`` sees it) if they may ``permission`` on its ``channel``."""
    device = await devices.get_device(ctx, user.id, device_id, permission)
    if not any(c.index == channel for c in device.channels):
        raise NotFound("There is no such channel on this device.", code="channel-not-found")
    return device


async def recording_view(ctx: Context, device, channel: int) -> dict[str, Any]:
    """The settings, status and stored totals of one channel (the API's and the page's)."""
    stored_settings = await service.stored_channel_settings(ctx.db, device.id, channel)
    configured = stored_settings is not None
    cs = stored_settings or service.ChannelSettings()
    said, at = await service.channel_status(ctx.db, device.id, channel)
    local_now = service.local_time(service.now(), device.time_zone)
    summary = await service.channel_summary(ctx.db, device.id, channel)
    return {"device_id": device.id, "channel": channel, "configured": configured,
            "time_zone": device.time_zone or "UTC",
            "settings": service.settings_dict(cs),
            "status": status_of(cs, configured, said, at, local_now),
            "stored": {"segments": summary.segments, "bytes": summary.bytes, "first": summary.first,
                       "last": summary.last}}


