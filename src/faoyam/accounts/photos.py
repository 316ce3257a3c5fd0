"""Profile photos: validated, re-encoded, shrunk and stripped of metadata (EXIF, GPS).

Re-encoding is the point: the stored JPEG is built from pixels only, so nothing the camera
wrote into the original (location, device, time) survives, and a file that only claims to
be an image is refused.
"""

from __future__ import annotations

import io

from PIL import Image, ImageOps, UnidentifiedImageError

from faoyam.core.errors import TooLarge, Unsupported

ACCEPTED = {"JPEG", "PNG", "WEBP", "GIF"}
MAX_PIXELS = 40_000_000


def reencode_photo(data: bytes, *, max_bytes: int, max_side: int) -> bytes:
    if len(data) > max_bytes:
        raise TooLarge(f"The photo is larger than {max_bytes // (1024 * 1024)} MB.", code="photo-too-large")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            fmt = probe.format
            if fmt not in ACCEPTED:
                raise Unsupported("Use a JPEG, PNG, WebP or GIF picture.", code="photo-format")
            if probe.width * probe.height > MAX_PIXELS:
                raise TooLarge("The photo has too many pixels.", code="photo-too-large")
            probe.verify()
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            img = ImageOps.exif_transpose(img)
            img = img.convert("RGB")
            img.thumbnail((max_side, max_side))
            out = io.BytesIO()
            img.save(out, "JPEG", quality=85, optimize=True)  # no exif= : metadata dropped
            return out.getvalue()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        raise Unsupported("This file is not a picture we can read.", code="photo-format") from None
