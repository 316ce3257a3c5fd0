"""Devices routes under /api/v1: adding, listing, naming, covers, commands, sharing.

Routes only translate HTTP to service calls; who may do what is decided in the service
(``authz.require``). A device id that is not yours answers 404, whatever it is.
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from faoyam.accounts.deps import CurrentUser, current_user
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import Invalid
from faoyam.core.http import JsonOut, read_image
from faoyam.devices import service
from faoyam.devices.schemas import (
    AddDeviceIn,
    ChannelIn,
    ChannelPatchIn,
    ConfigIn,
    DeviceOut,
    DevicePatchIn,
    IncomingShareOut,
    PasswordIn,
    PtzLocateIn,
    PtzMoveIn,
    ShareIn,
    ShareOut,
    SharePatchIn,
    WifiIn,
)

router = APIRouter(prefix="/api/v1", tags=["devices"])

DeviceId = Path(..., max_length=64, description="the device id from the device list")
ChannelIndex = Path(..., ge=0, le=255)
_PRIVATE = {"Cache-Control": "private, no-store"}
# The hot read paths answer pre-serialised JSON (see ``JsonOut``).
_DEVICES, _DEVICE = JsonOut(list[DeviceOut]), JsonOut(DeviceOut)


# Devices (B3, B6, B7) --------------------------------------------------------------------


@router.post("/devices", status_code=201, response_model=DeviceOut)
async def add_device(body: AddDeviceIn, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Add a device with the serial number and safety code on its label (B3)."""
    return await service.add_device(ctx, user.id, body)


@router.get("/devices", response_model=list[DeviceOut])
async def list_devices(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Your devices and the devices shared with you (``shared: true``)."""
    return _DEVICES(await service.list_devices(ctx, user.id))


@router.get("/devices/{device_id}", response_model=DeviceOut)
async def get_device(device_id: str = DeviceId, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return _DEVICE(await service.get_device(ctx, user.id, device_id))


@router.patch("/devices/{device_id}", response_model=DeviceOut)
async def update_device(body: DevicePatchIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                        ctx: Context = Depends(get_ctx)):
    """Rename (B7), or set the time zone and daylight saving (B3)."""
    return await service.update_device(ctx, user.id, device_id, body)


@router.delete("/devices/{device_id}", status_code=204)
async def delete_device(device_id: str = DeviceId, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Remove the device and its paired accessories from your account; its data is erased (B10)."""
    await service.delete_device(ctx, user.id, device_id)


@router.patch("/devices/{device_id}/channels/{index}", response_model=DeviceOut)
async def rename_channel(body: ChannelPatchIn, device_id: str = DeviceId, index: int = ChannelIndex,
                         user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await service.rename_channel(ctx, user.id, device_id, index, body.name)


# Covers (B7) -----------------------------------------------------------------------------


@router.put("/devices/{device_id}/cover", status_code=204)
async def put_cover(request: Request, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                    ctx: Context = Depends(get_ctx)):
    await service.set_cover(ctx, user.id, device_id, await read_image(request, ctx.settings.max_photo_bytes))


@router.get("/devices/{device_id}/cover")
async def get_cover(device_id: str = DeviceId, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return Response(await service.get_cover(ctx, user.id, device_id), media_type="image/jpeg", headers=_PRIVATE)


@router.delete("/devices/{device_id}/cover", status_code=204)
async def delete_cover(device_id: str = DeviceId, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    await service.delete_cover(ctx, user.id, device_id)


@router.put("/devices/{device_id}/channels/{index}/cover", status_code=204)
async def put_channel_cover(request: Request, device_id: str = DeviceId, index: int = ChannelIndex,
                            user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    await service.set_cover(ctx, user.id, device_id, await read_image(request, ctx.settings.max_photo_bytes), index)


@router.get("/devices/{device_id}/channels/{index}/cover")
async def get_channel_cover(device_id: str = DeviceId, index: int = ChannelIndex, user: CurrentUser = Depends(current_user),
                            ctx: Context = Depends(get_ctx)):
    return Response(await service.get_cover(ctx, user.id, device_id, index), media_type="image/jpeg", headers=_PRIVATE)


@router.delete("/devices/{device_id}/channels/{index}/cover", status_code=204)
async def delete_channel_cover(device_id: str = DeviceId, index: int = ChannelIndex,
                               user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    await service.delete_cover(ctx, user.id, device_id, index)


# Owner actions through the device (B3, B8) -------------------------------------------------


@router.put("/devices/{device_id}/password", status_code=204)
async def set_password(body: PasswordIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                       ctx: Context = Depends(get_ctx)):
    """Protect the device with a new password (B8); kept encrypted, never shown again."""
    await service.set_password(ctx, user.id, device_id, body.password.get_secret_value())


@router.post("/devices/{device_id}/password/reset", status_code=204)
async def reset_password(device_id: str = DeviceId, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Reset the device's password (B8)."""
    await service.reset_password(ctx, user.id, device_id)


@router.put("/devices/{device_id}/wifi", status_code=204)
async def provision_wifi(body: WifiIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                         ctx: Context = Depends(get_ctx)):
    """Move the device to a Wi-Fi network; the password goes to the device, never into storage."""
    pw = body.password.get_secret_value() if body.password is not None else None
    await service.provision_wifi(ctx, user.id, device_id, body.ssid, pw)


# Commands ("control") ------------------------------------------------------------------------


@router.post("/devices/{device_id}/reboot")
async def reboot(device_id: str = DeviceId, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await service.reboot(ctx, user.id, device_id)


@router.post("/devices/{device_id}/snapshot")
async def snapshot(body: ChannelIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                   ctx: Context = Depends(get_ctx)):
    return await service.snapshot(ctx, user.id, device_id, body.channel)


@router.post("/devices/{device_id}/ptz/move")
async def ptz_move(body: PtzMoveIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                   ctx: Context = Depends(get_ctx)):
    """Move a PTZ camera: speeds for ``duration_ms``, or an ``operation`` (``up`` … ``stop``)."""
    return await service.ptz_move(ctx, user.id, device_id, body.channel, body.pan, body.tilt, body.zoom, body.duration_ms,
                                  body.operation)


@router.get("/devices/{device_id}/ptz")
async def ptz_position(device_id: str = DeviceId, channel: int = Query(0, ge=0, le=255),
                       user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Where a PTZ camera points: ``h``, ``v`` in −1..1, ``z`` in 0..1 (asks the device)."""
    return await service.ptz_position(ctx, user.id, device_id, channel)


@router.post("/devices/{device_id}/ptz/locate")
async def ptz_locate(body: PtzLocateIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                     ctx: Context = Depends(get_ctx)):
    return await service.ptz_locate(ctx, user.id, device_id, body.channel, body.x, body.y, body.zoom)


@router.put("/devices/{device_id}/config")
async def set_config(body: ConfigIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                     ctx: Context = Depends(get_ctx)):
    return await service.set_config(ctx, user.id, device_id, body.config)


# Sharing (B9): the owner's side ---------------------------------------------------------------


@router.post("/devices/{device_id}/shares", status_code=201, response_model=ShareOut)
async def share_device(body: ShareIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                       ctx: Context = Depends(get_ctx)):
    """Invite an account (by email, or by phone where offered) with some permissions."""
    return await service.share_device(ctx, user.id, device_id, body)


@router.get("/devices/{device_id}/shares", response_model=list[ShareOut])
async def list_shares(device_id: str = DeviceId, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await service.list_shares(ctx, user.id, device_id)


@router.patch("/devices/{device_id}/shares/{share_id}", response_model=ShareOut)
async def update_share(body: SharePatchIn, device_id: str = DeviceId, share_id: str = Path(..., max_length=64),
                       user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await service.update_share(ctx, user.id, device_id, share_id, body)


@router.delete("/devices/{device_id}/shares/{share_id}", status_code=204)
async def revoke_share(device_id: str = DeviceId, share_id: str = Path(..., max_length=64),
                       user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    await service.revoke_share(ctx, user.id, device_id, share_id)


# Sharing (B9): the invitee's side -------------------------------------------------------------


@router.get("/device-shares", response_model=list[IncomingShareOut])
async def incoming_shares(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Invitations waiting for your answer, and devices shared with you."""
    return await service.incoming_shares(ctx, user.id)


@router.post("/device-shares/{share_id}/accept", response_model=IncomingShareOut)
async def accept_share(share_id: str = Path(..., max_length=64), user: CurrentUser = Depends(current_user),
                       ctx: Context = Depends(get_ctx)):
    return await service.accept_share(ctx, user.id, share_id)


@router.post("/device-shares/{share_id}/decline", status_code=204)
async def decline_share(share_id: str = Path(..., max_length=64), user: CurrentUser = Depends(current_user),
                        ctx: Context = Depends(get_ctx)):
    await service.decline_share(ctx, user.id, share_id)


@router.delete("/device-shares/{share_id}", status_code=204)
async def leave_share(share_id: str = Path(..., max_length=64), user: CurrentUser = Depends(current_user),
                      ctx: Context = Depends(get_ctx)):
    """Stop seeing a device someone shared with you."""
    await service.leave_share(ctx, user.id, share_id)
