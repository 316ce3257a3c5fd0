"""Share-link routes (B9): the owner makes, lists and revokes links; anyone holding a link
opens it without an account and sees only live view of the channels it names.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from faoyam.accounts.deps import CurrentUser, current_user
from faoyam.core.context import Context, get_ctx
from faoyam.devices import service
from faoyam.devices.api import DeviceId
from faoyam.devices.schemas import PublicLinkOut, ShareLinkCreated, ShareLinkIn, ShareLinkOut

router = APIRouter(prefix="/api/v1", tags=["share links"])


@router.post("/devices/{device_id}/share-links", status_code=201, response_model=ShareLinkCreated)
async def create_link(body: ShareLinkIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                      ctx: Context = Depends(get_ctx)):
    """A live-view link for someone without an account. The token is shown only now."""
    return await service.create_link(ctx, user.id, device_id, body)


@router.get("/devices/{device_id}/share-links", response_model=list[ShareLinkOut])
async def list_links(device_id: str = DeviceId, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await service.list_links(ctx, user.id, device_id)


@router.delete("/devices/{device_id}/share-links/{link_id}", status_code=204)
async def revoke_link(device_id: str = DeviceId, link_id: str = Path(..., max_length=64),
                      user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    await service.revoke_link(ctx, user.id, device_id, link_id)


@router.get("/share-links/{token}", response_model=PublicLinkOut)
async def view_link(token: str = Path(..., max_length=128), ctx: Context = Depends(get_ctx)):
    """Public: what a link's holder may see (no sign-in)."""
    return await service.view_link(ctx, token)
