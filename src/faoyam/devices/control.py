"""Commands to a device through the gateway: reboot, snapshot, PTZ, configuration (the
"control" permission), and the owner's password and Wi-Fi actions (B3, B8).

PTZ commands are sent only to a channel that reports ``PTZ``/``PT`` and are rate-limited
per account and device (``PTZ_PER_MINUTE``): the live page's pad repeats a move while a
button is held (docs/device-protocol.md, *PTZ*).

What must be true on the device is sent first and stored only once the device said
yes, so a refused or unanswered command leaves the stored state as it was.
"""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from faoyam.core.context import Context
from faoyam.core.errors import Invalid, NotFound
from faoyam.devices import authz, commands
from faoyam.devices import validation as v
from faoyam.devices.models import Channel, Device
from faoyam.devices.gateway.protocol import PTZ_OPERATIONS
from faoyam.devices.ports import NotSupported

log = logging.getLogger(__name__)

PTZ_ABILITIES = {"PTZ", "PT"}


def password_context(device_id: str) -> str:
    """Associated data of a device password's ciphertext: it cannot be moved to another row."""
    return f"device-password:{device_id}"


# Control ------------------------------------------------------------------------------


async def reboot(ctx: Context, user_id: str, device_id: str) -> dict:
    acc = await authz.require(ctx, user_id, device_id, "control")
    return await commands.send(ctx, acc.serial, "reboot", {})


async def snapshot(ctx: Context, user_id: str, device_id: str, channel: int) -> dict:
    acc = await authz.require(ctx, user_id, device_id, "control", channel=channel)
    await _abilities(ctx, device_id, channel)
    return await commands.send(ctx, acc.serial, "snapshot", {"channel": channel})


async def _abilities(ctx: Context, device_id: str, channel: int) -> set[str]:
    """The device's and the channel's abilities; 404 for a channel the device lacks."""
    async with ctx.db.session() as s:
        dev = set(await s.scalar(select(Device.abilities).where(Device.id == device_id)) or [])
        ch = (await s.execute(select(Channel.abilities).where(Channel.device_id == device_id,
                                                             Channel.index == channel))).first()
    if ch is None:
        raise NotFound("There is no such channel on this device.", code="channel-not-found")
    return dev | set(ch.abilities or [])


async def _require_ptz(ctx: Context, device_id: str, channel: int) -> None:
    if not PTZ_ABILITIES & await _abilities(ctx, device_id, channel):
        raise NotSupported("This camera cannot pan or tilt.")


# A person holding a PTZ button sends a move about three times a second (the live page
# repeats it while the button is held, then sends "stop"). Twice that per account and
# device leaves room for two people and fast taps, and still stops a script from flooding
# the device's command topic (each command is an MQTT message the device must answer).
PTZ_PER_MINUTE = 360
_MINUTE = dt.timedelta(minutes=1)


async def _ptz_allowed(ctx: Context, user_id: str, device_id: str, channel: int) -> authz.Access:
    """Who may move a camera: the owner, or a share with ``control`` on that channel; the
    channel must report PTZ; and the caller is within ``PTZ_PER_MINUTE`` (429 otherwise)."""
    acc = await authz.require(ctx, user_id, device_id, "control", channel=channel)
    await _require_ptz(ctx, device_id, channel)
    await ctx.limiter.hit("device-ptz", (user_id, device_id), PTZ_PER_MINUTE, _MINUTE,
                          "Too many camera moves. Wait a moment and try again.")
    return acc


async def ptz_move(ctx: Context, user_id: str, device_id: str, channel: int, pan: float, tilt: float,
                   zoom: float, duration_ms: int, operation: str | None = None) -> dict:
    """Move for ``duration_ms``: at the given speeds (−1..1), or by an Imou operation
    (``up`` … ``zoom_out``, ``stop`` — ``controlMovePTZ``'s eleven codes, by name)."""
    acc = await _ptz_allowed(ctx, user_id, device_id, channel)
    if operation is not None:
        if operation not in PTZ_OPERATIONS:
            raise Invalid("operation", "Unknown PTZ operation.", code="invalid-operation")
        params = {"channel": channel, "operation": operation, "duration_ms": duration_ms}
    else:
        params = {"channel": channel, "pan": pan, "tilt": tilt, "zoom": zoom, "duration_ms": duration_ms}
    return await commands.send(ctx, acc.serial, "ptz_move", params)


async def ptz_locate(ctx: Context, user_id: str, device_id: str, channel: int, x: float, y: float, zoom: float) -> dict:
    acc = await _ptz_allowed(ctx, user_id, device_id, channel)
    return await commands.send(ctx, acc.serial, "ptz_locate", {"channel": channel, "x": x, "y": y, "zoom": zoom})


async def ptz_position(ctx: Context, user_id: str, device_id: str, channel: int) -> dict:
    """Where the camera points now (Imou ``devicePTZInfo``): ``{"channel", "h", "v", "z"}``."""
    acc = await authz.require(ctx, user_id, device_id, "control", channel=channel)
    await _require_ptz(ctx, device_id, channel)
    return await commands.send(ctx, acc.serial, "ptz_status", {"channel": channel})


async def set_config(ctx: Context, user_id: str, device_id: str, config: dict) -> dict:
    """Change configuration keys on the device; what it accepted is merged into the stored copy.

    The merged configuration must stay within what a device may report (``CONFIG_MAX_BYTES``
    of JSON, ``CONFIG_MAX_DEPTH`` levels, docs/device-protocol.md): otherwise the device's own
    next config report would be refused as oversized, for ever. Checked before the device is
    asked, so a refused change reaches nothing.
    """
    acc = await authz.require(ctx, user_id, device_id, "control")
    try:
        config = v.report_json(config, "config")
    except v.BadReport as exc:
        raise Invalid("config", exc.detail, code="invalid-config") from None
    if not config:
        raise Invalid("config", "Send at least one setting.", code="invalid-config")
    async with ctx.db.session() as s:
        stored = await s.scalar(select(Device.config).where(Device.id == device_id))
    v.check_config_bound({**(stored or {}), **config})
    result = await commands.send(ctx, acc.serial, "set_config", config)
    async with ctx.db.transaction() as s:
        row = await s.get(Device, device_id)
        if row.owner_id == acc.owner_id:  # still the same binding
            merged = {**(row.config or {}), **config}
            v.check_config_bound(merged)  # changed meanwhile by the device's own report
            row.config = merged
    return result


# Owner actions (B3, B8) -------------------------------------------------------------------


async def set_password(ctx: Context, user_id: str, device_id: str, password: str) -> None:
    """Protect the device with a password (B8): the device takes it, then we keep it encrypted."""
    acc = await authz.require(ctx, user_id, device_id, "manage")
    v.check_device_password(password)
    await commands.send(ctx, acc.serial, "set_password", {"password": password})
    await _store_password(ctx, device_id, acc.owner_id, password)


async def reset_password(ctx: Context, user_id: str, device_id: str) -> None:
    """Reset the device's password (B8). If the device answers with its new password we keep
    it (encrypted); otherwise the stored one, no longer valid, is forgotten."""
    acc = await authz.require(ctx, user_id, device_id, "manage")
    result = await commands.send(ctx, acc.serial, "reset_password", {})
    new = result.get("password")
    await _store_password(ctx, device_id, acc.owner_id, new if isinstance(new, str) and new else None)


async def _store_password(ctx: Context, device_id: str, owner_id: str, password: str | None) -> None:
    sealed = ctx.secrets.encrypt(password, context=password_context(device_id)) if password else None
    async with ctx.db.transaction() as s:
        row = await s.get(Device, device_id)
        if row.owner_id == owner_id:
            row.password_enc = sealed


async def device_password(ctx: Context, device_id: str) -> str | None:
    """The device password in clear, for the parts that talk to the device (media, gateway).
    Never returned by the API."""
    async with ctx.db.session() as s:
        sealed = await s.scalar(select(Device.password_enc).where(Device.id == device_id))
    return ctx.secrets.decrypt(sealed, context=password_context(device_id)) if sealed else None


async def provision_wifi(ctx: Context, user_id: str, device_id: str, ssid: str, password: str | None) -> None:
    """Move the device to a Wi-Fi network. The password goes to the device only; the
    network name is kept to show in the app (B3)."""
    acc = await authz.require(ctx, user_id, device_id, "manage")
    ssid = v.normalize_ssid(ssid, "ssid")
    if password is not None:
        v.check_wifi_password(password, "password")
    await commands.send(ctx, acc.serial, "provision_wifi", {"ssid": ssid, "password": password})
    async with ctx.db.transaction() as s:
        row = await s.get(Device, device_id)
        if row.owner_id == acc.owner_id:
            row.wifi_ssid = ssid
