"""Recording routes under /api/v1: a channel's recording settings and status, and the
user deleting recordings (R3 "videos").

* ``GET  /devices/{id}/channels/{ch}/recording``: the settings (defaults when the channel
  has none yet, ``configured: false``), the recorder's status and what is stored;
* ``PUT  /devices/{id}/channels/{ch}/recording``: new settings (owner only, ``manage``);
  bad values answer 422 problem details naming the fields;
* ``GET  /devices/{id}/channels/{ch}/recordings``: the newest segments (``playback``);
* ``DELETE /devices/{id}/channels/{ch}/recordings[?start=&end=]``: all of the channel's
  recordings, or those overlapping the range (``manage``);
* ``DELETE /devices/{id}/channels/{ch}/recordings/{segment}``: one recording (``manage``).

Deleting goes through ``recordings.service``: rows and blob tombstones in one transaction,
the blobs deleted right after (or by the sweep).
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from faoyam.accounts.deps import CurrentUser, current_user
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import Invalid, NotFound
from faoyam.recordings import service
from faoyam.recordings.overview import channel_of, recording_view

router = APIRouter(prefix="/api/v1", tags=["recordings"])

DeviceId = Path(..., max_length=64)
ChannelIndex = Path(..., ge=0, le=255)
SegmentId = Path(..., max_length=32)
_PRIVATE = {"Cache-Control": "private, no-store"}


class RecordingSettingsIn(BaseModel):
    mode: Literal["continuous", "event", "off"] = "continuous"
    schedule: list[int] | None = Field(None, description="seven 24-bit hour masks, Monday first; null: always")
    streams: list[Literal["main", "sub"]] = ["main"]
    destination: Literal["local", "cloud", "both"] = "local"
    retention_days: int = 7
    quota_bytes: int | None = None
    pre_roll_s: int = 5
    post_roll_s: int = 10


@router.get("/devices/{device_id}/channels/{index}/recording")
async def get_recording(device_id: str = DeviceId, index: int = ChannelIndex,
                        user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """The channel's recording settings, the recorder's status, and what is stored."""
    channel = index
    device = await channel_of(ctx, user, device_id, channel, "playback")
    return _no_store(await recording_view(ctx, device, channel))


@router.put("/devices/{device_id}/channels/{index}/recording")
async def put_recording(body: RecordingSettingsIn, device_id: str = DeviceId, index: int = ChannelIndex,
                        user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Set how the channel records (owner only). The media worker applies it within 15 s."""
    channel = index
    device = await channel_of(ctx, user, device_id, channel, "manage")
    await service.set_channel_settings(ctx.db, device_id, channel, service.ChannelSettings(**body.model_dump()))
    return _no_store(await recording_view(ctx, device, channel))


@router.get("/devices/{device_id}/channels/{index}/recordings")
async def list_recordings(device_id: str = DeviceId, index: int = ChannelIndex,
                          limit: int = Query(50, ge=1, le=200), before: dt.datetime | None = None,
                          user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """The channel's newest recordings (segments), newest first."""
    channel = index
    await channel_of(ctx, user, device_id, channel, "playback")
    rows = await service.recent_segments(ctx.db, device_id, channel, limit, before)
    return _no_store([{"id": r.id, "stream": r.stream, "start": r.start, "end": r.end,
                       "duration_ms": r.duration_ms, "size": r.size, "events": r.events, "keep": r.keep,
                       "state": r.state} for r in rows])


@router.delete("/devices/{device_id}/channels/{index}/recordings")
async def delete_recordings(device_id: str = DeviceId, index: int = ChannelIndex,
                            start: dt.datetime | None = None, end: dt.datetime | None = None,
                            user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Delete every recording of the channel, or those overlapping ``[start, end)`` (R3).
    The segment being written now is left to finish."""
    channel = index
    await channel_of(ctx, user, device_id, channel, "manage")
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise Invalid(name, "Give the time with its UTC offset (ISO 8601).", code="naive-time")
    if start is not None and end is not None and end <= start:
        raise Invalid("end", "The end is after the start.", code="empty-range")
    n = await service.delete_recordings(ctx.db, ctx.blobs, device_id, channel, start=start, end=end)
    return _no_store({"deleted": n})


@router.delete("/devices/{device_id}/channels/{index}/recordings/{segment_id}", status_code=204)
async def delete_recording(device_id: str = DeviceId, index: int = ChannelIndex, segment_id: str = SegmentId,
                           user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Delete one recording of the channel (R3)."""
    channel = index
    await channel_of(ctx, user, device_id, channel, "manage")
    if not await service.delete_recording(ctx.db, ctx.blobs, device_id, channel, segment_id):
        raise NotFound("There is no such recording on this channel.", code="recording-not-found")
    return Response(status_code=204)


def _no_store(body) -> JSONResponse:
    return JSONResponse(jsonable_encoder(body), headers=_PRIVATE)
