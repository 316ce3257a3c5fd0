"""The motion-detection settings page of a channel (owner only): server-side detection for
cameras that cannot detect motion themselves. The page only reads; the form saves through
``PUT /api/v1/devices/{id}/channels/{index}/detection`` (``detection/api.py``)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request

from faoyam.accounts.deps import CurrentUser
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import Forbidden, NotFound
from faoyam.detection import service as detection
from faoyam.media.motion import ZONE_COLS, ZONE_ROWS
from faoyam.web.deps import page_user
from faoyam.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/devices/{device_id}/detection/{channel}")
async def detection_page(request: Request, device_id: str = Path(..., max_length=64),
                         channel: int = Path(..., ge=0, le=255), user: CurrentUser = Depends(page_user),
                         ctx: Context = Depends(get_ctx)):
    try:
        settings = await detection.get_detection(ctx, user.id, device_id, channel)
    except (NotFound, Forbidden):  # a stranger, an invitee, or no such channel: nothing to see here
        return render(request, "not_found.html", status_code=404, nav="home")
    zones = settings.zones
    cells = [[zones is None or bool(zones[r] >> c & 1) for c in range(ZONE_COLS)] for r in range(ZONE_ROWS)]
    return render(request, "devices/detection.html", nav="home", device_id=device_id, channel=channel,
                  settings=settings, cells=cells)
