"""The RTSP bridge: a real camera on the local network, reachable by an ``rtsp://`` URL,
represented on the platform as a cloud camera.

The bridge *is* the device agent for that camera: it speaks the MQTT device protocol
under an identity of its own (made once and kept in a state file), takes snapshots by
pulling the camera's stream with PyAV (``media.AvSource``), and answers the commands a
plain RTSP camera can honour (snapshot, start/stop stream, configuration). PTZ, Wi-Fi,
passwords and firmware belong to the camera's own interfaces and are answered
``not-supported``. On ``start_stream`` it relays the camera's own H.264 packets live to
the service's RTMP ingest (``AvSource.push``: codec copy, no decoding).
"""

from __future__ import annotations

import json
import secrets
import string
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from faoyam.agent.device import CommandError, DeviceAgent, Identity
from faoyam.agent.media import AvSource

BRIDGE_MODEL = "faoyam-rtsp-bridge"


def redact_url(url: str) -> str:
    """The URL without user:password (for logs and the state file's description)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def new_bridge_identity(name: str = "RTSP camera") -> Identity:
    rnd = "".join(secrets.choice(string.ascii_uppercase + string.digits) for _ in range(10))
    return Identity(serial=f"BRG{rnd}", kind="camera", model=BRIDGE_MODEL, channels=1,
                    safety_code="".join(secrets.choice("ABCDEFGHJKLMNPQRSTUVWXYZ") for _ in range(6)),
                    factory_secret=secrets.token_urlsafe(24),
                    mac="02:" + ":".join(f"{secrets.randbelow(256):02x}" for _ in range(5)),  # locally administered
                    firmware="faoyam-bridge-1", abilities=("AlarmMD",), channel_names=(name,))


class RtspBridge(DeviceAgent):
    UNSUPPORTED = {"ptz_move", "ptz_locate", "ptz_status", "start_talk", "stop_talk", "provision_wifi", "set_password", "reset_password", "firmware_update"}

    def __init__(self, identity: Identity, url: str, host: str, port: int, **kw):
        super().__init__(identity, host, port, media=AvSource(url), ip=None, **kw)
        self.config = {"source": redact_url(url), "transport": "tcp"}

    async def handle(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        if name in self.UNSUPPORTED:
            raise CommandError("not-supported", "a bridged RTSP camera cannot do this")
        try:
            return await super().handle(name, params)
        except (OSError, TimeoutError) as exc:
            raise CommandError("camera-unreachable", type(exc).__name__) from None


def load_or_create(state: Path, name: str) -> tuple[Identity, bool]:
    """The bridge's identity from its state file, or a new one (True if new)."""
    if state.exists():
        return Identity.from_json(json.loads(state.read_text())), False
    ident = new_bridge_identity(name)
    save(state, ident)
    return ident, True


def save(state: Path, ident: Identity) -> None:
    import os

    state.parent.mkdir(parents=True, exist_ok=True)
    tmp = state.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # it holds the device's credentials
    with os.fdopen(fd, "w") as fh:
        json.dump(ident.to_json(), fh)
    tmp.replace(state)
