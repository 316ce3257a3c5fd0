"""The media worker's motion detection: a detector per channel with detection on.

:class:`MotionWorker` reads the detection settings (``detection.service.enabled_channels``)
at start and every ``SYNC_SECONDS`` (like the recorder's sync): it starts a
:class:`~faoyam.media.motion_decode.ChannelDetector` on the channel's ``main`` hub
(keyframes) or ``sub`` hub (a few frames a second), retunes one whose sensitivity or zones
changed, and stops those switched off. A detector subscribes like a viewer, so the device
is asked to push that stream for as long as detection is on.

Each episode becomes one alarm through ``raise_alarm(ctx, *, device_id, channel, kind, at,
snapshot, source)`` — injectable; the default is the alarms domain's
(``alarms.service.raise_alarm``: the message center, push, email and webhook, with the
owner's arming schedule and preferences applied), and flags the recorder's current segment
of the channel as holding motion.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from faoyam.core.context import Context
from faoyam.core.jobs import repeat
from faoyam.detection import service as detection
from faoyam.detection.service import ChannelDetection
from faoyam.alarms import service as alarms
from faoyam.core.errors import Problem
from faoyam.media import recorder
from faoyam.media.hub import StreamHubs
from faoyam.media.ids import ChannelId
from faoyam.media.motion_decode import ChannelDetector, MotionEvent, OnEvent
from faoyam.recordings.service import MOTION

log = logging.getLogger("faoyam.media.motion")

SYNC_SECONDS = 10.0
ALARM_KIND = "videoMotion"  # the devices' own name for a motion alarm (Imou's)
SOURCE = "detection"  # the alarms domain's name for alarms the service raised itself

RaiseAlarm = Callable[..., Awaitable[object]]


async def service_alarm(ctx: Context, *, device_id: str, channel: int, kind: str, at, snapshot: bytes | None,
                        source: str) -> str | None:
    """The default ``raise_alarm``: the alarms domain's, for every source. An alarm it refuses
    (the channel went away, the device floods) is logged, never fatal to the detector."""
    try:
        return await alarms.raise_alarm(ctx, device_id=device_id, channel=channel, kind=kind, at=at,
                                        snapshot=snapshot, source=source)
    except Problem as exc:  # Invalid, Flooded
        log.warning("motion: %s/%s: alarm refused: %s", device_id, channel, exc)
        return None


def stream_of(device_id: str, channel: int, settings: ChannelDetection) -> tuple[ChannelId, str]:
    """Which hub a channel's detector reads, and how (``docs/decisions/motion-detection.md``)."""
    if settings.stream == "sub":
        return ChannelId(device_id, channel, "sub"), "frames"
    return ChannelId(device_id, channel, "main"), "keyframes"


class MotionWorker:
    """Every detector of one media worker (see the module docstring)."""

    def __init__(self, hubs: StreamHubs, settings: Callable[[], Awaitable[dict[tuple[str, int], ChannelDetection]]],
                 on_event: OnEvent, **detector_options):
        self.hubs, self.settings, self.on_event = hubs, settings, on_event
        self.detector_options = detector_options
        self.detectors: dict[tuple[str, int], tuple[ChannelDetector, ChannelDetection]] = {}
        self._syncer: asyncio.Task | None = None

    async def sync(self) -> set[tuple[str, int]]:
        wanted = await self.settings()
        for key, (det, old) in list(self.detectors.items()):
            new = wanted.get(key)
            if new is None or new.stream != old.stream or det.task is None or det.task.done():
                # Off, another stream, or stopped by an error (logged): a fresh one starts below.
                del self.detectors[key]
                await det.stop()
            elif (new.sensitivity, new.zones) != (old.sensitivity, old.zones):
                det.configure(new.sensitivity, new.zones)
                self.detectors[key] = (det, new)
        for key, cs in wanted.items():
            if key not in self.detectors:
                stream, mode = stream_of(*key, cs)
                det = ChannelDetector(self.hubs.hub(stream), self.on_event, mode=mode, sensitivity=cs.sensitivity,
                                      zones=cs.zones, **self.detector_options)
                self.detectors[key] = (det.start(), cs)
        return set(wanted)

    def run_sync(self, every: float = SYNC_SECONDS) -> None:
        self._syncer = asyncio.create_task(repeat(self.sync, every, "motion: cannot read the detection settings", log), name="motion-sync")

    async def close(self) -> None:
        if self._syncer is not None:
            self._syncer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._syncer
            self._syncer = None
        for key in list(self.detectors):
            det, _ = self.detectors.pop(key)
            await det.stop()


def alarm_sink(ctx: Context, raise_alarm: RaiseAlarm = service_alarm) -> OnEvent:
    """The worker's ``on_event``: one alarm per episode, and the recording flagged."""

    async def on_event(event: MotionEvent) -> None:
        stream: ChannelId = event.stream
        rec = recorder.recorder_of(ctx)
        if rec is not None:
            # at once and in this process (the alarm's bus message says the same, later)
            rec.on_event(stream.device_id, stream.channel, MOTION, event.started_at.timestamp())
        await raise_alarm(ctx, device_id=stream.device_id, channel=stream.channel, kind=ALARM_KIND,
                          at=event.started_at, snapshot=event.snapshot, source=SOURCE)
        log.info("motion: %s: episode of %.1f s, peak %.3f", stream, event.end - event.start, event.peak)

    return on_event


_WORKERS: dict[int, MotionWorker] = {}


def worker_of(ctx: Context) -> MotionWorker | None:
    return _WORKERS.get(id(ctx))


async def start(ctx: Context, hubs: StreamHubs, raise_alarm: RaiseAlarm = service_alarm) -> MotionWorker:
    """Start detecting (``media.lifecycle.start``); the first sync runs in the background."""
    worker = MotionWorker(hubs, lambda: detection.enabled_channels(ctx.db), alarm_sink(ctx, raise_alarm))
    _WORKERS[id(ctx)] = worker
    worker.run_sync(ctx.settings.media_motion_sync_seconds)
    return worker


async def stop(ctx: Context) -> None:
    worker = _WORKERS.pop(id(ctx), None)
    if worker is not None:
        await worker.close()
