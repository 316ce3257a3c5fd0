"""Recording events across processes: "something happened on this channel, record it".

The alarms domain (the gateway role, where a camera's motion or alarm message arrives) calls
:func:`publish_event`; the media worker's recorder, in another process, receives it and
calls ``Recorder.on_event`` — an event-mode channel writes its pre-roll and records until
``post_roll_s`` after the last event; a continuously recorded channel flags its segment.

The bus is the service's MQTT broker, like the other service messages
(``faoyam/svc/disconnect``): topic ``faoyam/svc/record-event``, QoS 1, JSON

    {"v": 1, "device_id": "<32 hex>", "channel": 0, "flags": 1, "at": 1764600000.25}

``flags``: ``recordings.service.MOTION`` (1), ``ALARM`` (2), ``MANUAL`` (4); ``at``: when
the event happened, Unix seconds (the recorder shortens the post-roll of an event that
reached it late). Only service clients may publish on ``faoyam/svc/…`` (the broker's ACL);
every media worker subscribed gets every message and acts on the channels it records.

Without a broker (``mqtt_mode = "off"``: tests, a single process) the event goes to the
listeners registered in this process instead.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from faoyam.core.context import Context

log = logging.getLogger("faoyam.recordings.events")

TOPIC = "faoyam/svc/record-event"
MAX_FLAGS = 0xFF


@dataclass(frozen=True)
class RecordEvent:
    device_id: str
    channel: int
    flags: int
    at: float


Listener = Callable[[RecordEvent], object]
_LOCAL: dict[int, list[Listener]] = {}  # id(ctx) -> listeners in this process


def encode(event: RecordEvent) -> bytes:
    return json.dumps({"v": 1, "device_id": event.device_id, "channel": event.channel, "flags": event.flags,
                       "at": event.at}, separators=(",", ":")).encode()


def decode(payload: bytes) -> RecordEvent | None:
    """The event in ``payload``, or None for anything not shaped like one."""
    try:
        body = json.loads(payload)
        device_id, channel, flags, at = body["device_id"], body["channel"], body["flags"], body["at"]
    except (ValueError, KeyError, TypeError):
        return None
    if not (isinstance(device_id, str) and len(device_id) == 32 and device_id.isalnum()
            and isinstance(channel, int) and 0 <= channel <= 255 and isinstance(flags, int)
            and 0 < flags <= MAX_FLAGS and isinstance(at, (int, float))):
        return None
    return RecordEvent(device_id, channel, flags, float(at))


def listen(ctx: Context, listener: Listener) -> None:
    """Call ``listener`` for every recording event (the media worker's recorder): from the
    broker when this process has a gateway client, and from this process's own publishers."""
    _LOCAL.setdefault(id(ctx), []).append(listener)
    gateway = ctx.gateway
    if gateway is not None and hasattr(gateway, "listen"):
        async def on_message(payload: bytes) -> None:
            event = decode(payload)
            if event is None:
                log.warning("recording event dropped: malformed")
                return
            listener(event)

        gateway.listen(TOPIC, on_message)


def unlisten(ctx: Context) -> None:
    _LOCAL.pop(id(ctx), None)


async def publish_event(ctx: Context, device_id: str, channel: int, flags: int, at: float | None = None) -> None:
    """Tell the media workers that ``flags`` happened on the channel at ``at`` (now)."""
    event = RecordEvent(device_id, channel, flags, time.time() if at is None else at)
    gateway = ctx.gateway
    if gateway is not None and hasattr(gateway, "publish_raw"):
        await gateway.publish_raw(TOPIC, encode(event))
        return
    for listener in _LOCAL.get(id(ctx), []):
        listener(event)
