"""Alarm routes under /api/v1 (B11, R7): a device's alarms and snapshots, the message
center, live updates (server-sent events), Web Push subscriptions, preferences, quiet
hours and consent, the Imou-style message callback, arming schedules and detection.

Who may do what is decided in the service (``devices.authz.require``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field

from faoyam.accounts.deps import CurrentUser, current_user
from faoyam.alarms import links, live, push
from faoyam.alarms import service as alarms
from faoyam.core.context import Context, get_ctx
from faoyam.core.errors import Invalid, NotFound

router = APIRouter(prefix="/api/v1", tags=["alarms"])

DeviceId = Path(..., max_length=64, description="the device id from the device list")
_PRIVATE = {"Cache-Control": "private, no-store"}
KEEPALIVE_SECONDS = 15.0


def _aware(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        raise Invalid(field, "Give the time with its offset (for example 2026-01-01T00:00:00Z).", code="invalid")
    return value


# A device's alarms ------------------------------------------------------------------------


@router.get("/devices/{device_id}/alarms")
async def list_device_alarms(device_id: str = DeviceId, limit: int = Query(50, ge=1, le=200),
                             before: dt.datetime | None = None, user: CurrentUser = Depends(current_user),
                             ctx: Context = Depends(get_ctx)):
    rows = await alarms.list_device_alarms(ctx, user.id, device_id, limit, _aware(before, "before"))
    return [r.as_json() for r in rows]


@router.get("/devices/{device_id}/alarms/{alarm_id}/snapshot")
async def device_alarm_snapshot(device_id: str = DeviceId, alarm_id: str = Path(..., max_length=64),
                                user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return Response(await alarms.alarm_snapshot(ctx, user.id, alarm_id, device_id), media_type="image/jpeg",
                    headers=_PRIVATE)


@router.get("/alarms/{alarm_id}/snapshot")
async def signed_snapshot(alarm_id: str = Path(..., max_length=32), u: str = Query(..., max_length=32),
                          exp: int = Query(...), sig: str = Query(..., max_length=64),
                          ctx: Context = Depends(get_ctx)):
    """The link a push, an email or a callback carries: no session, a signature that
    expires, and the reader must still be allowed to see the device's alarms."""
    if not links.check_snapshot_link(ctx.key, alarm_id, u, exp, sig):
        raise NotFound("This link has expired.", code="link-expired")
    return Response(await alarms.alarm_snapshot(ctx, u, alarm_id), media_type="image/jpeg", headers=_PRIVATE)


class ArmingIn(BaseModel):
    windows: list[dict] | None = Field(None, max_length=28, description="None: always armed")
    time_zone: str | None = Field(None, max_length=64)


class DetectionIn(BaseModel):
    enabled: bool


@router.get("/devices/{device_id}/alarm-settings")
async def alarm_settings(device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                         ctx: Context = Depends(get_ctx)):
    return await alarms.get_schedules(ctx, user.id, device_id)


@router.put("/devices/{device_id}/channels/{index}/arming")
async def set_arming(body: ArmingIn, device_id: str = DeviceId, index: int = Path(..., ge=0, le=255),
                     user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await alarms.set_schedule(ctx, user.id, device_id, index, body.windows, body.time_zone)


@router.put("/devices/{device_id}/detection")
async def set_detection(body: DetectionIn, device_id: str = DeviceId, user: CurrentUser = Depends(current_user),
                        ctx: Context = Depends(get_ctx)):
    return await alarms.set_detection(ctx, user.id, device_id, body.enabled)


# The message center -----------------------------------------------------------------------


@router.get("/alarms/messages")
async def list_messages(device_id: str | None = Query(None, max_length=64), kind: str | None = Query(None, max_length=40),
                        since: dt.datetime | None = None, until: dt.datetime | None = None,
                        unread: bool | None = None, before: dt.datetime | None = None,
                        limit: int = Query(50, ge=1, le=200),
                        user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    rows = await alarms.list_messages(ctx, user.id, device_id=device_id, kind=kind, since=_aware(since, "since"),
                                      until=_aware(until, "until"), unread=unread, before=_aware(before, "before"),
                                      limit=limit)
    return {"messages": [m.as_json() for m in rows], "unread": await alarms.unread_count(ctx, user.id)}


class MessageIdsIn(BaseModel):
    ids: list[str] | None = Field(None, max_length=500, description="None: all messages")


@router.post("/alarms/messages/read")
async def mark_read(body: MessageIdsIn, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return {"changed": await alarms.mark_read(ctx, user.id, body.ids)}


@router.delete("/alarms/messages/{message_id}", status_code=204)
async def delete_message(message_id: str = Path(..., max_length=32), user: CurrentUser = Depends(current_user),
                         ctx: Context = Depends(get_ctx)):
    if not await alarms.delete_messages(ctx, user.id, [message_id]):
        raise NotFound("There is no such message.", code="message-not-found")
    return Response(status_code=204)


@router.delete("/alarms/messages")
async def delete_all_messages(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return {"deleted": await alarms.delete_messages(ctx, user.id, None)}


@router.get("/alarms/stream")
async def stream(request: Request, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    """Server-sent events: one ``alarm`` event (a message, as in the list) per new alarm."""
    q = live.subscribe(ctx, user.id)

    async def events():
        try:
            yield ": connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(q.get(), KEEPALIVE_SECONDS)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield ": keep-alive\n\n"
                    continue
                view = await alarms.message_for_alarm(ctx, user.id, event["alarm_id"])
                if view is not None:
                    yield f"event: alarm\ndata: {json.dumps(view.as_json())}\n\n"
        finally:
            live.unsubscribe(ctx, user.id, q)

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# Web Push ----------------------------------------------------------------------------------


class PushKeys(BaseModel):
    p256dh: str = Field(..., max_length=200)
    auth: str = Field(..., max_length=64)


class PushSubscriptionIn(BaseModel):
    endpoint: str = Field(..., max_length=1000)
    keys: PushKeys


class EndpointIn(BaseModel):
    endpoint: str = Field(..., max_length=1000)


@router.get("/alarms/push/key")
async def push_key(ctx: Context = Depends(get_ctx)):
    """The VAPID public key a browser subscribes with (``applicationServerKey``)."""
    return {"key": push.application_server_key(push.vapid_key(ctx.settings.data_dir / "vapid.pem"))}


@router.post("/alarms/push/subscriptions", status_code=201)
async def subscribe_push(body: PushSubscriptionIn, user: CurrentUser = Depends(current_user),
                         ctx: Context = Depends(get_ctx)):
    return {"id": await alarms.add_push_subscription(ctx, user.id, body.endpoint, body.keys.p256dh, body.keys.auth)}


@router.delete("/alarms/push/subscriptions")
async def unsubscribe_push(body: EndpointIn, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return {"removed": await alarms.remove_push_subscription(ctx, user.id, body.endpoint)}


# Preferences, quiet hours, consent (R7) ------------------------------------------------------


class PreferenceIn(BaseModel):
    device_id: str = Field("*", max_length=64)
    kind: str = Field("*", max_length=40)
    enabled: bool


class UserSettingsIn(BaseModel):
    email: bool | None = None
    quiet_start: str | None = Field(None, max_length=5)
    quiet_end: str | None = Field(None, max_length=5)
    time_zone: str | None = Field(None, max_length=64)
    clear_quiet: bool = False


@router.get("/alarms/preferences")
async def preferences(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await alarms.list_preferences(ctx, user.id)


@router.put("/alarms/preferences")
async def set_preference(body: PreferenceIn, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await alarms.set_preference(ctx, user.id, device_id=body.device_id, kind=body.kind, enabled=body.enabled)


@router.get("/alarms/settings")
async def user_settings(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await alarms.get_user_settings(ctx, user.id)


@router.put("/alarms/settings")
async def set_user_settings(body: UserSettingsIn, user: CurrentUser = Depends(current_user),
                            ctx: Context = Depends(get_ctx)):
    return await alarms.set_user_settings(ctx, user.id, **body.model_dump())


@router.get("/alarms/consent")
async def consent(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await alarms.consent_history(ctx, user.id)


# The message callback (Imou setMessageCallback / getMessageCallback) --------------------------


class CallbackIn(BaseModel):
    callbackFlag: str = Field("alarm,deviceStatus", max_length=40)  # noqa: N815 - Imou's names
    callbackUrl: str = Field(..., max_length=500)  # noqa: N815
    status: Literal["on", "off"] = "on"


@router.get("/alarms/callback")
async def get_callback(user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await alarms.get_message_callback(ctx, user.id)


@router.put("/alarms/callback")
async def set_callback(body: CallbackIn, user: CurrentUser = Depends(current_user), ctx: Context = Depends(get_ctx)):
    return await alarms.set_message_callback(ctx, user.id, callback_url=body.callbackUrl,
                                             callback_flag=body.callbackFlag, status=body.status)
