"""What video streams a device's channels have, as the device reports them.

A device describes its streams in its configuration (``Device.config``: the ``config`` of
its activation report and of every ``up/config``; docs/device-protocol.md)::

    "mainStream": {"codec": "h265", "resolution": "1920x1080"},
    "subStream":  {"codec": "h264", "resolution": "640x360"}

``subStream`` absent (or null): the channel has no sub-stream. An NVR whose channels differ
reports ``"channelStreams": {"<index>": {"mainStream": …, "subStream": …}}``, which wins for
those channels. Codec names are normalised (``H.265``, ``hevc`` → ``h265``; ``avc`` → ``h264``).

The live view uses this to pick what a browser can play (``media.stream_choice``). It is the
device's own report, kept with its configuration: nothing new is stored, so it needs no
column or migration of its own. The caller has already checked that the viewer may watch.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from faoyam.core.context import Context
from faoyam.devices.models import Device

_CODECS = {"h264": "h264", "h.264": "h264", "avc": "h264", "avc1": "h264",
           "h265": "h265", "h.265": "h265", "hevc": "h265", "hvc1": "h265", "hev1": "h265"}
_KEYS = {"main": "mainStream", "sub": "subStream"}


def _codec(entry: Any) -> str | None:
    raw = entry.get("codec") if isinstance(entry, dict) else None
    if not isinstance(raw, str):
        return None
    return _CODECS.get(raw.strip().lower(), raw.strip().lower()[:16] or None)


def streams_of(config: dict | None, channel: int = 0) -> dict[str, str | None]:
    """``{"main": codec, "sub": codec}`` of one channel from a device configuration: a stream
    the device does not have is absent, a codec it did not say is None. ``main`` is always
    there (every channel has one)."""
    config = config if isinstance(config, dict) else {}
    per_channel = config.get("channelStreams")
    own = per_channel.get(str(channel)) if isinstance(per_channel, dict) else None
    source = own if isinstance(own, dict) else config
    out: dict[str, str | None] = {"main": _codec(source.get("mainStream"))}
    if isinstance(source.get("subStream"), dict):
        out["sub"] = _codec(source["subStream"])
    return out


async def channel_streams(ctx: Context, device_id: str, channel: int = 0) -> dict[str, str | None]:
    """:func:`streams_of` for a device by its id (``{"main": None}`` when it reported nothing)."""
    async with ctx.db.session() as s:
        config = await s.scalar(select(Device.config).where(Device.id == device_id))
    return streams_of(config, channel)
