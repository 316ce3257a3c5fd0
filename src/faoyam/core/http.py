"""Small helpers for routes: the client address, bounded body reads."""

from __future__ import annotations

from fastapi import Request

from faoyam.core.errors import TooLarge


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


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
