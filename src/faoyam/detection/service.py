"""The detection domain's operations: a channel's motion-detection settings.

The web app and the API read and change them for the device's owner (``manage``); the media
worker's detectors read :func:`enabled_channels` every few seconds and start, retune or stop
(``media/motion_worker.py``). Who may change them is decided here, not in the routes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import select

from faoyam.core.context import Context
from faoyam.core.database import Database
from faoyam.core.errors import NotFound, Problem
from faoyam.detection.models import DetectionSettings
from faoyam.devices import service as devices
from faoyam.media.motion import ZONE_COLS, ZONE_ROWS, valid_zones

STREAMS = ("main", "sub")


@dataclass
class ChannelDetection:
    """How the server detects motion on a channel; the defaults apply without a row."""

    enabled: bool = False
    sensitivity: int = 50
    zones: list[int] | None = None  # ZONE_ROWS masks of ZONE_COLS bits, top row first; None: all
    stream: str = "main"

    def validate(self) -> None:
        problems = []
        if not isinstance(self.enabled, bool):
            problems.append(("enabled", "true or false"))
        if isinstance(self.sensitivity, bool) or not isinstance(self.sensitivity, int) \
                or not 1 <= self.sensitivity <= 100:
            problems.append(("sensitivity", "an integer from 1 to 100"))
        if not valid_zones(self.zones):
            problems.append(("zones", f"{ZONE_ROWS} row masks of {ZONE_COLS} bits (0-{(1 << ZONE_COLS) - 1}), "
                                      "or null for the whole picture"))
        elif self.zones is not None and not any(self.zones):
            problems.append(("zones", "at least one cell, or null for the whole picture"))
        if self.stream not in STREAMS:
            problems.append(("stream", "main or sub"))
        if problems:
            raise Problem("; ".join(f"{k}: {v}" for k, v in problems), status=422, code="invalid-detection-settings",
                          title="Invalid detection settings",
                          errors=[{"field": k, "message": v} for k, v in problems])


_FIELDS = [f.name for f in fields(ChannelDetection)]


def _of(row: DetectionSettings) -> ChannelDetection:
    return ChannelDetection(**{name: getattr(row, name) for name in _FIELDS})


async def _row(s, device_id: str, channel: int) -> DetectionSettings | None:
    return (await s.execute(select(DetectionSettings).where(
        DetectionSettings.device_id == device_id, DetectionSettings.channel == channel))).scalar_one_or_none()


async def _require_channel(ctx: Context, user_id: str, device_id: str, channel: int) -> None:
    """The owner only (``manage``), and a channel the device has (404 otherwise)."""
    device = await devices.get_device(ctx, user_id, device_id, "manage")  # authz.require inside
    if channel not in {c.index for c in device.channels}:
        raise NotFound("There is no such channel on this device.", code="channel-not-found")


async def get_detection(ctx: Context, user_id: str, device_id: str, channel: int) -> ChannelDetection:
    await _require_channel(ctx, user_id, device_id, channel)
    async with ctx.db.session() as s:
        row = await _row(s, device_id, channel)
    return _of(row) if row is not None else ChannelDetection()


async def set_detection(ctx: Context, user_id: str, device_id: str, channel: int,
                        new: ChannelDetection) -> ChannelDetection:
    new.validate()
    await _require_channel(ctx, user_id, device_id, channel)
    return await store_detection(ctx.db, device_id, channel, new)


async def store_detection(db: Database, device_id: str, channel: int, new: ChannelDetection) -> ChannelDetection:
    """Write the settings without an access check (the service's own callers, tests)."""
    new.validate()
    async with db.transaction() as s:
        row = await _row(s, device_id, channel)
        if row is None:
            row = DetectionSettings(device_id=device_id, channel=channel)
            s.add(row)
        for name in _FIELDS:
            setattr(row, name, getattr(new, name))
    return new


async def enabled_channels(db: Database) -> dict[tuple[str, int], ChannelDetection]:
    """Every channel with detection on (the media worker's view)."""
    async with db.session() as s:
        rows = (await s.execute(select(DetectionSettings).where(DetectionSettings.enabled.is_(True)))).scalars().all()
    return {(r.device_id, r.channel): _of(r) for r in rows}
