"""The recording page of one channel: how it records (mode, schedule, streams, where, how
long), what the recorder says now, and the user deleting recordings (R3 "videos").

Owner only (``manage``), like the device's other settings. The page reads through the
recordings domain's overview; every change goes through ``/api/v1/devices/…/recording``
and ``…/recordings`` from the browser (static/js/recording.js).
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request

from faoyam.accounts.deps import CurrentUser
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import Problem
from faoyam.recordings import service as recordings
from faoyam.recordings.overview import channel_of, recording_view
from faoyam.web.deps import page_user
from faoyam.web.templating import render

router = APIRouter(include_in_schema=False)

DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@router.get("/devices/{device_id}/recording/{channel}")
async def recording_page(request: Request, device_id: str = Path(..., max_length=64),
                         channel: int = Path(..., ge=0, le=255), user: CurrentUser = Depends(page_user),
                         ctx: Context = Depends(get_ctx)):
    try:
        device = await channel_of(ctx, user, device_id, channel, "manage")
    except Problem as exc:
        return render(request, "not_found.html", status_code=exc.status, nav="home")
    view = await recording_view(ctx, device, channel)
    chan = next(c for c in device.channels if c.index == channel)
    schedule = view["settings"]["schedule"]
    grid = [[schedule is None or bool(schedule[d] >> h & 1) for h in range(24)] for d in range(7)]
    segments = await recordings.recent_segments(ctx.db, device_id, channel, limit=50)
    return render(request, "devices/recording.html", nav="home", device=device, channel=chan, view=view,
                  grid=grid, days=DAYS, segments=segments)
