"""Reaching a device: through the gateway the MQTT side puts at ``ctx.extras["gateway"]``.

Without a gateway (``mqtt_mode = "off"``) or with the device not connected, the answer
is ``DeviceOffline`` at once rather than a timeout. Parameters may carry secrets (a
Wi-Fi password, a new device password): they are passed on and never logged.
"""

from __future__ import annotations

import logging
from typing import Any

from faoyam.core.context import Context
from faoyam.devices.ports import COMMANDS, DeviceOffline, Gateway

log = logging.getLogger(__name__)


def gateway(ctx: Context) -> Gateway | None:
    return ctx.extras.get("gateway")


async def send(ctx: Context, serial: str | None, name: str, params: dict[str, Any] | None = None,
               timeout: float = 10.0) -> dict:
    """Send one command and return the device's answer (a dict)."""
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}")
    gw = gateway(ctx)
    if gw is None or not serial or not gw.is_connected(serial):
        raise DeviceOffline("The device is not connected. Check its power and network, then try again.")
    result = await gw.command(serial, name, params or {}, timeout=timeout)
    return result if isinstance(result, dict) else {"result": result}


async def disconnect_quietly(ctx: Context, serials: list[str]) -> None:
    """Drop the broker connections of deleted devices; their credentials are already gone,
    so a failure here only delays what the next sign-in refuses anyway."""
    gw = gateway(ctx)
    if gw is None:
        return
    for serial in serials:
        try:
            await gw.disconnect(serial)
        except Exception:  # noqa: BLE001 - see docstring
            log.warning("devices.disconnect_failed", exc_info=True)
