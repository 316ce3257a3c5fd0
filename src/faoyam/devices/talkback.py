"""Talk-back (two-way audio) on doorbells: who may talk, and asking the doorbell to listen.

* **Which devices.** A doorbell that reports the Imou ability ``AudioTalk``
  (:func:`can_talk`). Cameras with a speaker report it too; they are left out on purpose
  for now (the issue asks for doorbells; a camera's speaker is a siren more often than an
  intercom) — one line here to change.
* **Who.** The owner, or an invitee whose share grants ``control`` on the channel: talking
  through someone's door is acting on the device, like moving a camera, not watching it. No
  share link ever may (a link is a view). There is no separate "talk" share permission; the
  media token's permission ``talk`` is checked against ``control`` (``media.grants``).
* **Asking the doorbell** (:func:`start_talk`): the MQTT command ``start_talk`` with the
  WebSocket URL to connect to (its last segment a token for this one talk session, minted
  by the media worker) and the codec offered; the device answers with the codec it takes.
  ``stop_talk`` tells it to give up a talk it has not connected for (docs/device-protocol.md).

Like ``streaming.py`` this module never imports the media engine; ``media.talk`` composes them.
"""

from __future__ import annotations

from sqlalchemy import select

from faoyam.core.context import Context
from faoyam.core.errors import NotFound
from faoyam.devices import authz, commands
from faoyam.devices.authz import Access
from faoyam.devices.models import Channel, Device
from faoyam.devices.ports import NotSupported

TALK_ABILITY = "AudioTalk"
TALK_PERMISSION = "control"
TALK_KINDS = ("doorbell",)
G711 = ("pcma", "pcmu")


def can_talk(kind: str, abilities) -> bool:
    """Whether a device of ``kind`` with ``abilities`` (device's and channel's) talks back."""
    return kind in TALK_KINDS and TALK_ABILITY in set(abilities or ())


async def _talk_target(ctx: Context, device_id: str, channel: int) -> tuple[str | None, bool]:
    """(serial, talks back?) of a bound device's channel; (None, False) when there is none
    (``NotFound`` for a channel the device lacks)."""
    async with ctx.db.session() as s:
        dev = (await s.execute(select(Device.serial, Device.kind, Device.abilities, Device.owner_id)
                               .where(Device.id == device_id))).first()
        ch = (await s.execute(select(Channel.abilities).where(Channel.device_id == device_id,
                                                             Channel.index == channel))).first()
    if dev is None or dev.owner_id is None:
        return None, False
    if ch is None:
        raise NotFound("There is no such channel on this device.", code="channel-not-found")
    return dev.serial, can_talk(dev.kind, [*(dev.abilities or []), *(ch.abilities or [])])


async def require_talk(ctx: Context, user_id: str, device_id: str, channel: int) -> Access:
    """The caller's access if they may talk through this channel: 404 stranger, 403 a share
    without ``control``, 422 ``not-supported`` for a device that cannot talk back."""
    acc = await authz.require(ctx, user_id, device_id, TALK_PERMISSION, channel=channel)
    _, ok = await _talk_target(ctx, device_id, channel)
    if not ok:
        raise NotSupported("This device cannot talk back. Talk-back works with doorbells.")
    return acc


async def start_talk(ctx: Context, device_id: str, channel: int, url: str, codec: str = "pcma",
                     timeout: float = 10.0) -> dict:
    """Ask the doorbell to connect to ``url`` and play what it receives; its reply (the
    codec it chose). Raises ``NotSupported`` (not a doorbell, or it refused),
    ``DeviceOffline``, ``CommandTimeout`` — the gateway's problems."""
    serial, ok = await _talk_target(ctx, device_id, channel)
    if not ok:
        raise NotSupported("This device cannot talk back.")
    reply = await commands.send(ctx, serial, "start_talk",
                                {"channel": channel, "url": url, "codec": codec, "codecs": list(G711), "rate": 8000},
                                timeout=timeout)
    return reply


async def stop_talk(ctx: Context, device_id: str, channel: int, timeout: float = 5.0) -> None:
    serial, ok = await _talk_target(ctx, device_id, channel)
    if ok:
        await commands.send(ctx, serial, "stop_talk", {"channel": channel}, timeout=timeout)
