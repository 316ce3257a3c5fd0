"""Stored alarms told to the other roles over MQTT, the bus the roles already share.

Topic ``faoyam/svc/alarm``, QoS 1, JSON ``{"alarm_id", "device_id", "channel", "kind",
"at"}`` (``at`` ISO 8601 UTC). Published by whichever node stored the alarm, after the
commit; every node that listens gets it (a plain subscription, not shared): web nodes feed
their live streams and wake their dispatcher, the media role's recorder can switch to
event recording. A node without a broker (``mqtt_mode = "off"``) delivers to itself only.
Losing a bus message loses no notification: the outbox rows are in the database and the
dispatcher polls them too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

TOPIC = "faoyam/svc/alarm"
Handler = Callable[[dict], Awaitable[None]]


def encode(event: dict) -> bytes:
    return json.dumps({k: event[k] for k in ("alarm_id", "device_id", "channel", "kind", "at")},
                      separators=(",", ":")).encode()


def decode(payload: bytes) -> dict | None:
    try:
        body = json.loads(payload)
        if not (isinstance(body, dict) and isinstance(body.get("alarm_id"), str)
                and isinstance(body.get("device_id"), str) and isinstance(body.get("channel"), int)):
            return None
        return body
    except ValueError:
        return None


async def publish(ctx, event: dict, *, local: Handler | None = None) -> None:
    """Tell this node (``local``) and the others (over MQTT, if there is a broker)."""
    if local is not None:
        try:
            await local(event)
        except Exception:  # noqa: BLE001 - a live listener's failure is not the alarm's
            log.exception("alarms.local_fanout_failed")
    gw = ctx.gateway
    if gw is not None and hasattr(gw, "publish_raw"):
        try:
            await gw.publish_raw(TOPIC, encode(event), qos=1)
        except Exception as exc:  # noqa: BLE001 - the outbox is in the database; the dispatcher polls
            log.warning("alarms.bus_publish_failed", extra={"error": type(exc).__name__})


def listen(ctx, handler: Handler) -> bool:
    """Have ``handler`` called with every alarm any node publishes; False without a bus."""
    gw = ctx.gateway
    if gw is None or not hasattr(gw, "listen"):
        return False

    async def on_message(payload: bytes) -> None:
        event = decode(payload)
        if event is not None:
            await handler(event)

    gw.listen(TOPIC, on_message)
    return True
