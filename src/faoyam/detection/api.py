"""Detection routes under /api/v1: a channel's server-side motion detection settings.

``GET`` / ``PUT /api/v1/devices/{device_id}/channels/{index}/detection`` — the owner's
(``manage``); a stranger gets 404, a shared user 403 ``owner-only``, bad values 422 problem
details (``invalid-detection-settings``). ``PUT`` replaces the settings: a field left out
takes its default. The media worker picks a change up within ``SYNC_SECONDS``.
"""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from faoyam.accounts.deps import CurrentUser, current_user
from faoyam.core.context import Context, get_ctx
from faoyam.detection import service
from faoyam.media.motion import ALL_CELLS, ZONE_COLS, ZONE_ROWS

router = APIRouter(prefix="/api/v1", tags=["detection"])

DeviceId = Path(..., max_length=64, description="the device id from the device list")
ChannelIndex = Path(..., ge=0, le=255)


class DetectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    sensitivity: int = Field(50, description="1 (only large changes) to 100 (the smallest)")
    zones: list[int] | None = Field(None, max_length=ZONE_ROWS, description=(
        f"{ZONE_ROWS} row masks, top row first, of {ZONE_COLS} cells each (bit c = column c from the left, "
        f"{ALL_CELLS} = the whole row); null: the whole picture"))
    stream: str = Field("main", description="main: its keyframes are analysed; sub: 5 pictures a second of it")


class DetectionOut(DetectionIn):
    grid: dict = Field(default_factory=lambda: {"rows": ZONE_ROWS, "cols": ZONE_COLS})


@router.get("/devices/{device_id}/channels/{index}/detection", response_model=DetectionOut)
async def get_detection(device_id: str = DeviceId, index: int = ChannelIndex, user: CurrentUser = Depends(current_user),
                        ctx: Context = Depends(get_ctx)):
    return DetectionOut(**asdict(await service.get_detection(ctx, user.id, device_id, index)))


@router.put("/devices/{device_id}/channels/{index}/detection", response_model=DetectionOut)
async def put_detection(body: DetectionIn, device_id: str = DeviceId, index: int = ChannelIndex,
                        user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Turn server-side motion detection on or off and tune it (docs/motion-detection.md)."""
    new = service.ChannelDetection(**body.model_dump())
    return DetectionOut(**asdict(await service.set_detection(ctx, user.id, device_id, index, new)))
