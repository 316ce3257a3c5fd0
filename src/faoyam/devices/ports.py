"""The contract between the device registry (``devices.service``) and the device gateway
(``devices.gateway``, MQTT). Two teams build the two sides; this file is what they agree on.

Registry side — implemented in ``faoyam.devices.service`` (async functions, first
argument the ``Context``), called by the gateway when devices speak:

    factory_register(ctx, FactoryDevice) -> None
        The manufacturing step: a device exists, unbound, with its label's safety code
        and a factory secret it uses for its first connection. Idempotent per serial.
        The simulator and the demo call it for their devices.
    authenticate_device(ctx, username, password) -> DeviceAuth | None
        Broker sign-in of a device: factory credentials (username "factory:<serial>")
        before activation, per-device credentials (username "<serial>") after.
    activate(ctx, serial, ActivationReport, ip) -> DeviceCredentials
        B6: store MAC, IP, model, firmware, channels, configuration; derive country and
        coarse location from the IP offline; record the registration date; issue new
        per-device broker credentials (the password is stored only encrypted/hashed).
    set_online(ctx, serial, online, at) -> None      last will, heartbeats, timeouts
    heartbeat(ctx, serial, at, status: dict) -> None
    report_config(ctx, serial, config: dict) -> None
    report_device(ctx, serial) -> str                B11: the device row an alarm is about ("" unbound);
                                                     the gateway then calls alarms.service.raise_alarm
    credentials_revoked(ctx, serial) -> bool         true once a device was deleted (B10)

Gateway side — the object at ``ctx.gateway`` (the gateway, or a client of the gateway
nodes on a web node); the registry's routes call it to reach a device, and get
``DeviceOffline`` / ``CommandTimeout`` (both ``Problem``s) when it cannot answer:

    await gateway.command(serial, name, params, timeout=10.0) -> dict
    await gateway.disconnect(serial) -> None         after credentials are revoked
    await gateway.is_online(serial) -> bool          as every node sees it (the database)
    gateway.is_connected(serial) -> bool             this node's own view
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from faoyam.core.errors import Problem

DeviceKind = Literal["camera", "nvr", "doorbell", "chime"]

# Commands a device understands (see docs/device-protocol.md).
COMMANDS = ("reboot", "snapshot", "ptz_move", "ptz_locate", "ptz_status", "set_config", "start_stream", "stop_stream",
            "start_talk", "stop_talk", "firmware_update", "provision_wifi", "set_password", "reset_password")


@dataclass(frozen=True)
class FactoryDevice:
    serial: str
    kind: DeviceKind
    model: str
    channels: int
    safety_code: str  # printed on the label; needed to add the device to an account (B3)
    factory_secret: str  # burned in at the factory; first broker connection only
    abilities: tuple[str, ...] = ()
    paired_with: str | None = None  # a chime's doorbell serial


@dataclass(frozen=True)
class ActivationReport:
    mac: str
    model: str
    firmware: str
    channels: list[dict[str, Any]]  # [{"index": 0, "name": "Front", "abilities": [...]}]
    config: dict[str, Any] = field(default_factory=dict)
    ip: str | None = None  # the address the device reports; the broker's view wins


@dataclass(frozen=True)
class DeviceCredentials:
    username: str
    password: str  # given to the device once; the registry keeps only a hash


@dataclass(frozen=True)
class DeviceAuth:
    serial: str
    stage: Literal["factory", "device"]


@dataclass(frozen=True)
class AlarmReport:
    channel: int
    type: str  # videoMotion, human, doorbell, alarmLocal, ...
    at: dt.datetime
    snapshot: bytes | None = None


class DeviceOffline(Problem):
    status, code, title = 409, "device-offline", "The device is offline"


class CommandTimeout(Problem):
    status, code, title = 504, "device-timeout", "The device did not answer in time"


class NotSupported(Problem):
    status, code, title = 422, "not-supported", "The device does not support this"


class Gateway(Protocol):
    async def command(self, serial: str, name: str, params: dict[str, Any], timeout: float = 10.0) -> dict: ...
    async def disconnect(self, serial: str) -> None: ...
    async def is_online(self, serial: str) -> bool: ...
    def is_connected(self, serial: str) -> bool: ...
    async def provision_factory(self, device: FactoryDevice) -> None: ...
    async def wait_connected(self, serials: list[str], timeout: float = 10.0) -> None: ...
