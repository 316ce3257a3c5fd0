"""Small helpers for routes: the client address, bounded body reads, the security headers
every answer carries.

The client address is the TCP peer. ``X-Forwarded-For`` is believed only when the peer is
one of the configured ``trusted_proxies`` (empty by default), and then only up to the first
address that is not itself a trusted proxy: anything further left was written by the client.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Any

from fastapi import Request, Response
from pydantic import TypeAdapter

from faoyam.core.config import Settings
from faoyam.core.errors import Invalid, TooLarge, Unsupported

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=16)
def _networks(entries: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries if e.strip())


def _trusted(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in n for n in networks)


def forwarded_client(peer: str, forwarded_for: str | None, trusted_proxies: list[str]) -> str:
    """The client's address given the TCP peer and its ``X-Forwarded-For`` header."""
    networks = _networks(tuple(trusted_proxies))
    if not forwarded_for or not networks or not _trusted(peer, networks):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):  # the right-most hop was added by the proxy nearest to us
        if not _trusted(hop, networks):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage in the header: keep the address we know
    return hops[0] if hops else peer


def client_ip(request: Request) -> str:
    peer = request.client.host if request.client else "unknown"
    ctx = getattr(request.app.state, "ctx", None)
    proxies = ctx.settings.trusted_proxies if ctx is not None else []
    return forwarded_client(peer, request.headers.get("x-forwarded-for"), proxies)


# Fast JSON answers ------------------------------------------------------------------


class JsonOut:
    """Serialises a route's answer once, with pydantic-core, straight to JSON bytes.

    FastAPI would validate a returned model against ``response_model`` again and then
    serialise it; for the hot read paths that is a large share of the request. Keep
    ``response_model`` on the route for the OpenAPI schema and return ``JsonOut(T)(value)``.
    """

    def __init__(self, tp: Any):
        self.adapter = TypeAdapter(tp)

    def __call__(self, value: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(self.adapter.dump_json(value), media_type="application/json", headers=headers)


# Security headers -------------------------------------------------------------------

# Pages load scripts, styles, pictures and fonts only from this origin; no inline script
# runs (``<script type="application/json">`` data blocks are not scripts). Inline
# ``style=""`` attributes are still allowed: they cannot run code.
CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "worker-src 'self'",
    "manifest-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
# The OpenAPI page (/api/docs) is FastAPI's Swagger UI: its script and style come from a
# CDN and it starts with an inline script. Only that page gets this policy.
DOCS_CSP = CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net").replace(
    "style-src 'self' 'unsafe-inline'", "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net").replace(
    "img-src 'self' data: blob:", "img-src 'self' data: blob: https://fastapi.tiangolo.com")
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(settings: Settings) -> dict[str, str]:
    """Headers for every answer: CSP with frame-ancestors, no MIME sniffing, no referrer
    beyond this site, no framing, and HSTS when the public address is https."""
    headers = {
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if settings.https:
        headers["Strict-Transport-Security"] = HSTS
    return headers


async def read_limited(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes without reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit + 64 * 1024:
        raise TooLarge(f"The upload is larger than {limit // (1024 * 1024)} MB.", code="too-large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit + 64 * 1024:
            raise TooLarge(f"The upload is larger than {limit // (1024 * 1024)} MB.", code="too-large")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_image(request: Request, limit: int) -> bytes:
    """A picture sent as the raw body (image/*) or as multipart field ``file``.

    Only the size is checked here; what the bytes are is for ``reencode_photo`` to say.
    """
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise Invalid("file", "Choose a picture to upload.", code="no-file")
        return await upload.read(limit + 1)
    if ctype.startswith("image/") or ctype == "application/octet-stream":
        return await read_limited(request, limit)
    raise Unsupported("Send the picture as image/* or multipart/form-data.", code="photo-format")
