"""Small helpers for routes: the client address, bounded body reads."""

from __future__ import annotations

from fastapi import Request

from faoyam.core.errors import Invalid, TooLarge, Unsupported


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
