"""Normalising and checking what people and devices send: serials, names, time zones, MACs.

User input raises ``Invalid`` (a 422 problem naming the field). Devices are machines:
what they report is checked by the same rules, and refused with ``BadReport``.
"""

from __future__ import annotations

import ipaddress
import json
import re
import zoneinfo
from functools import lru_cache
from typing import Any

from faoyam.core.errors import Invalid, Problem

# Upper-case letters, digits and '-': safe in MQTT topics, and what labels print.
SERIAL_RE = re.compile(r"[A-Z0-9][A-Z0-9-]{3,39}")
_MAC_RE = re.compile(r"[0-9a-f]{12}")
MAX_JSON_BYTES = 64 * 1024
# A device's whole configuration (docs/device-protocol.md, "Configuration"): what the
# gateway accepts in an ``up/config`` report, so also what a merged change may grow to.
CONFIG_MAX_BYTES = 8 * 1024
CONFIG_MAX_DEPTH = 4


class BadReport(Problem):
    """A device sent something that does not fit the protocol; nothing was stored."""

    status, code, title = 422, "bad-report", "The device report is not valid"


def is_serial(value: str) -> bool:
    return bool(SERIAL_RE.fullmatch(value))


def normalize_serial(value: str, field: str = "serial") -> str:
    """What a person typed from a label: spaces and case do not matter."""
    serial = "".join((value or "").split()).upper()
    if not is_serial(serial):
        raise Invalid(field, "A serial number has 4 to 40 letters, digits or '-'. Copy it from the label.",
                      code="invalid-serial")
    return serial


def normalize_safety_code(value: str, field: str = "safety_code") -> str:
    code = "".join((value or "").split()).upper()
    if not 4 <= len(code) <= 32 or not code.isascii() or not code.isalnum():
        raise Invalid(field, "The safety code has 4 to 32 letters or digits. It is printed on the label.",
                      code="invalid-safety-code")
    return code


def normalize_name(value: str, field: str = "name") -> str:
    """A device or channel name: 1 to 64 characters, no control characters."""
    name = " ".join((value or "").split())
    if not 1 <= len(name) <= 64:
        raise Invalid(field, "A name has 1 to 64 characters.", code="invalid-name")
    if any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 for ch in name):
        raise Invalid(field, "A name cannot contain control characters.", code="invalid-name")
    return name


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def normalize_time_zone(value: str, field: str = "time_zone") -> str:
    """An IANA time zone name known to this system's zoneinfo database."""
    tz = (value or "").strip()
    if tz not in _zones():
        raise Invalid(field, "Choose a time zone from the list (for example Asia/Bangkok).", code="invalid-time-zone")
    return tz


def normalize_ssid(value: str, field: str = "wifi_ssid") -> str:
    """An 802.11 network name: 1 to 32 bytes of UTF-8, no control characters."""
    ssid = value or ""
    if not 1 <= len(ssid.encode()) <= 32 or any(ord(ch) < 32 for ch in ssid):
        raise Invalid(field, "A Wi-Fi network name has 1 to 32 bytes.", code="invalid-ssid")
    return ssid


def check_wifi_password(value: str, field: str = "wifi_password") -> str:
    """WPA2/WPA3 passphrase: 8 to 63 printable ASCII characters, or 64 hex digits."""
    ok = (8 <= len(value) <= 63 and value.isascii() and value.isprintable()) or (
        len(value) == 64 and all(c in "0123456789abcdefABCDEF" for c in value))
    if not ok:
        raise Invalid(field, "A Wi-Fi password has 8 to 63 characters.", code="invalid-wifi-password")
    return value


def check_device_password(value: str, field: str = "password") -> str:
    """What a device accepts as its admin password: 8 to 64 printable ASCII, letters and digits."""
    if not (8 <= len(value) <= 64 and value.isascii() and value.isprintable()):
        raise Invalid(field, "A device password has 8 to 64 characters (letters, digits, symbols; no spaces at the ends).",
                      code="invalid-device-password")
    if value != value.strip() or not any(c.isalpha() for c in value) or not any(c.isdigit() for c in value):
        raise Invalid(field, "Use letters and digits in the device password.", code="invalid-device-password")
    return value


# Device reports ---------------------------------------------------------------------


def report_mac(value: str) -> str:
    raw = re.sub(r"[:\-.]", "", (value or "").strip().lower())
    if not _MAC_RE.fullmatch(raw):
        raise BadReport("The MAC address is not valid.", field="mac")
    return ":".join(raw[i : i + 2] for i in range(0, 12, 2))


def report_text(value: Any, field: str, max_len: int = 64) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= max_len or not value.isprintable():
        raise BadReport(f"{field} must be 1 to {max_len} printable characters.", field=field)
    return value


def report_ip(value: str | None) -> str | None:
    """A device's address in canonical form, or None for no/unusable input."""
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def report_json(value: Any, field: str) -> dict:
    if not isinstance(value, dict):
        raise BadReport(f"{field} must be an object.", field=field)
    try:
        size = len(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        raise BadReport(f"{field} must be plain JSON.", field=field) from None
    if size > MAX_JSON_BYTES:
        raise BadReport(f"{field} is larger than {MAX_JSON_BYTES // 1024} KB.", field=field)
    return value


def _depth(x: Any) -> int:
    if isinstance(x, dict):
        return 1 + max((_depth(v) for v in x.values()), default=0)
    if isinstance(x, list):
        return 1 + max((_depth(v) for v in x), default=0)
    return 0


def check_config_bound(config: dict, field: str = "config") -> None:
    """Refuse (422) a configuration a device could no longer report back."""
    size = len(json.dumps(config))
    if size > CONFIG_MAX_BYTES or _depth(config) > CONFIG_MAX_DEPTH:
        raise Invalid(field, f"The device's configuration would grow to {size // 1024} KB; at most "
                      f"{CONFIG_MAX_BYTES // 1024} KB and {CONFIG_MAX_DEPTH} levels fit. Send fewer or smaller settings.",
                      code="config-too-large", max_bytes=CONFIG_MAX_BYTES)


def report_abilities(value: Any, field: str = "abilities") -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list | tuple) or len(value) > 64:
        raise BadReport(f"{field} must be a list of names.", field=field)
    return [report_text(a, field, 40) for a in value]


def report_channels(value: Any) -> list[dict]:
    """[{"index": 0, "name": "Front", "abilities": [...]}] with unique indexes 0..255."""
    if not isinstance(value, list) or len(value) > 256:
        raise BadReport("channels must be a list of at most 256 channels.", field="channels")
    out, seen = [], set()
    for ch in value:
        if not isinstance(ch, dict):
            raise BadReport("Each channel is an object.", field="channels")
        idx = ch.get("index")
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx <= 255 or idx in seen:
            raise BadReport("Channel indexes are unique numbers from 0 to 255.", field="channels")
        seen.add(idx)
        name = ch.get("name")
        out.append({"index": idx, "name": report_text(name, "channels.name") if name is not None else None,
                    "abilities": report_abilities(ch.get("abilities"), "channels.abilities")})
    return out
