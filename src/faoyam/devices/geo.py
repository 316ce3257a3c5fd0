"""Country and coarse location of a device, derived offline from its IP address (B6).

geoip2fast ships its database inside the package, so no address ever leaves the
machine for a lookup. Its bundled data is country-level, which is as coarse as the
policy asks: the "location" we keep is the country's name, never a position.
Private, loopback, reserved and unknown addresses give nothing.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass

import pycountry

_lock = threading.Lock()
_geo = None


@dataclass(frozen=True)
class Place:
    country: str  # ISO 3166-1 alpha-2
    location: str  # human-readable, coarse


def _lookup_table():
    global _geo
    with _lock:
        if _geo is None:
            from geoip2fast import GeoIP2Fast

            _geo = GeoIP2Fast()  # ~0.1 s, once per process
    return _geo


def place_of(ip: str | None) -> Place | None:
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if not addr.is_global:
        return None
    result = _lookup_table().lookup(str(addr))
    code = (getattr(result, "country_code", "") or "").upper()
    if len(code) != 2 or not code.isalpha() or getattr(result, "is_private", False):
        return None
    country = pycountry.countries.get(alpha_2=code)
    name = getattr(country, "common_name", None) or getattr(country, "name", None) or result.country_name
    return Place(code, name[:80])
