"""Reaching a device: through ``ctx.gateway`` (the gateway, or on a web node a client of
the gateway nodes; see ``devices.lifecycle``).

Without a gateway (``mqtt_mode = "off"``) or with the device not connected, the answer
is ``DeviceOffline`` at once rather than a timeout. Parameters may carry secrets (a
Wi-Fi password, a new device password): they are passed on and never logged.
"""

from __future__ import annotations

import logging
from typing import Any

from faoyam.core.context import Context
from faoyam.devices.models import Device
from faoyam.devices.ports import COMMANDS, DeviceOffline, Gateway
from faoyam.privacy.subjects import remove_rows

log = logging.getLogger(__name__)


def gateway(ctx: Context) -> Gateway | None:
    return ctx.gateway


async def is_online(ctx: Context, serial: str | None) -> bool:
    """Whether the device is connected, as every node sees it."""
    gw = ctx.gateway
    return gw is not None and bool(serial) and await gw.is_online(serial)


async def send(ctx: Context, serial: str | None, name: str, params: dict[str, Any] | None = None,
               timeout: float = 10.0) -> dict:
    """Send one command and return the device's answer (a dict)."""
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}")
    gw = ctx.gateway
    if gw is None or not serial or not await gw.is_online(serial):
        raise DeviceOffline("The device is not connected. Check its power and network, then try again.")
    result = await gw.command(serial, name, params or {}, timeout=timeout)
    return result if isinstance(result, dict) else {"result": result}


async def disconnect_quietly(ctx: Context, serials: list[str]) -> None:
    """Drop the broker connections of deleted devices; their credentials are already gone,
    so a failure here only delays what the next sign-in refuses anyway."""
    gw = ctx.gateway
    if gw is None:
        return
    for serial in serials:
        try:
            await gw.disconnect(serial)
        except Exception:  # noqa: BLE001 - see docstring
            log.warning("devices.disconnect_failed", exc_info=True)


async def released(ctx: Context, device_ids: list[str], serials: list[str]) -> None:
    """After an erasure of bindings committed (a deleted device, an erased account): drop
    the devices' connections, then erase once more what a report in flight wrote.

    A report that reads the device row after the erasure committed finds the unit
    released and writes nothing (``registry.released``). One that had locked the row
    before commits first, and on PostgreSQL its child rows (an address, an alarm) can
    land after the erasure's own delete of them; this second pass, over units that are
    still unbound, removes them. Nothing can come after it: the credentials are gone."""
    await disconnect_quietly(ctx, serials)
    if not device_ids:
        return
    t = Device.__table__
    try:
        await remove_rows(ctx.db, ctx.blobs, "devices", t.c.id.in_(device_ids) & t.c.owner_id.is_(None),
                          reason="device_released")
    except Exception:  # noqa: BLE001 - the erasure itself committed; this pass is repeated by the next
        log.exception("devices.release_pass_failed")
