"""The device protocol over MQTT (3.1.1 and 5): topics, payloads and limits.

Both sides import this module: the gateway (cloud side) and the device agent
(``faoyam.agent``). docs/device-protocol.md describes the same thing for people who
write firmware.

Every topic lives under ``faoyam/d/{serial}/``. A device *publishes* only under
``up/`` and *subscribes* only under ``down/`` of its own serial; that is the whole ACL
(``acl.py``), enforced by the broker.

Uplink payloads are JSON objects with an envelope ``{"v": 1, "id": <message id>,
"ts": <device time, epoch ms>}``; the gateway drops a message whose ``id`` it saw
already or whose ``ts`` is outside the replay window.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from typing import Any

VERSION = 1
ROOT = "faoyam/d"

# Uplink kinds (device -> cloud), under faoyam/d/{serial}/up/<kind>
ACTIVATE, STATE, HEARTBEAT, STATUS, CONFIG, ALARM, REPLY = "activate", "state", "heartbeat", "status", "config", "alarm", "reply"
UP_KINDS = (ACTIVATE, STATE, HEARTBEAT, STATUS, CONFIG, ALARM, REPLY)
# Downlink kinds (cloud -> device), under faoyam/d/{serial}/down/<kind>
ACTIVATED, CMD, ACK, NOTICE = "activated", "cmd", "ack", "notice"
DOWN_KINDS = (ACTIVATED, CMD, ACK, NOTICE)

# Size limits (bytes of MQTT payload). The broker refuses anything above MAX_PACKET.
MAX_JSON = 16 * 1024  # any uplink message without a picture
MAX_SNAPSHOT = 512 * 1024  # a JPEG, decoded
MAX_WITH_PICTURE = MAX_JSON + (MAX_SNAPSHOT * 4) // 3 + 4  # alarm / snapshot reply, base64 inside JSON
MAX_PACKET = MAX_WITH_PICTURE + 1024  # what the brokers are configured to accept

PTZ_OPERATIONS = ("up", "down", "left", "right", "up_left", "down_left", "up_right", "down_right",
                  "zoom_in", "zoom_out", "stop")


def topic(serial: str, direction: str, kind: str) -> str:
    return f"{ROOT}/{serial}/{direction}/{kind}"


def up(serial: str, kind: str) -> str:
    return topic(serial, "up", kind)


def down(serial: str, kind: str) -> str:
    return topic(serial, "down", kind)


def parse_topic(t: str) -> tuple[str, str, str] | None:
    """``faoyam/d/{serial}/{up|down}/{kind}`` -> (serial, direction, kind), else None."""
    parts = t.split("/")
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != ROOT or parts[3] not in ("up", "down"):
        return None
    if not valid_serial(parts[2]):
        return None
    return parts[2], parts[3], parts[4]


_SERIAL = re.compile(r"[A-Z0-9][A-Z0-9-]{3,39}")


def valid_serial(serial: str) -> bool:
    """Canonical serials: upper-case letters, digits and '-', 4 to 40 characters."""
    return bool(_SERIAL.fullmatch(serial))


def now_ms() -> int:
    return int(time.time() * 1000)


def new_id() -> str:
    return secrets.token_hex(8)


def envelope(**body: Any) -> dict[str, Any]:
    return {"v": VERSION, "id": new_id(), "ts": now_ms(), **body}


def dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str, limit: int = MAX_SNAPSHOT) -> bytes:
    if not isinstance(text, str) or len(text) > (limit * 4) // 3 + 4:
        raise ValueError("picture too large")
    return base64.b64decode(text, validate=True)


def is_jpeg(data: bytes) -> bool:
    return len(data) > 4 and data[:3] == b"\xff\xd8\xff" and data.rstrip(b"\x00")[-2:] == b"\xff\xd9"


def max_size(kind: str) -> int:
    return MAX_WITH_PICTURE if kind in (ALARM, REPLY) else MAX_JSON
