"""Web Push to the installed web app: VAPID (RFC 8292) and aes128gcm payload encryption
(RFC 8291 over RFC 8188), sent with the dispatcher's HTTP client.

The VAPID key pair is the deployment's, created once in the data directory
(``vapid.pem``); browsers subscribe with its public key (``application_server_key``).
"""

from __future__ import annotations

import base64
import os
import time
import urllib.parse
from functools import lru_cache
from pathlib import Path

import http_ece
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid02

TTL_SECONDS = 24 * 3600


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@lru_cache(maxsize=8)
def vapid_key(path: Path) -> Vapid02:
    """The deployment's VAPID key, made at first use (file mode 0600)."""
    if not path.exists():
        key = Vapid02()
        key.generate_keys()
        pem = key.private_pem()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
    return Vapid02.from_file(str(path))


def application_server_key(v: Vapid02) -> str:
    """The public key browsers pass to ``pushManager.subscribe`` (uncompressed point, base64url)."""
    return b64u(v.public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))


def encrypt(payload: bytes, p256dh: str, auth: str) -> bytes:
    """The aes128gcm body for a subscription (a fresh server key pair and salt each time)."""
    server_key = ec.generate_private_key(ec.SECP256R1())
    return http_ece.encrypt(payload, salt=os.urandom(16), private_key=server_key, dh=unb64u(p256dh),
                            auth_secret=unb64u(auth), version="aes128gcm")


def headers(v: Vapid02, endpoint: str, subject: str, *, urgency: str = "high") -> dict[str, str]:
    u = urllib.parse.urlsplit(endpoint)
    claims = {"aud": f"{u.scheme}://{u.netloc}", "sub": subject, "exp": int(time.time()) + 12 * 3600}
    out = dict(v.sign(claims))
    out.update({"TTL": str(TTL_SECONDS), "Content-Encoding": "aes128gcm", "Urgency": urgency,
                "Content-Type": "application/octet-stream"})
    return out


async def send(http, v: Vapid02, subject: str, endpoint: str, p256dh: str, auth: str, payload: bytes) -> int:
    """POST one push message; returns the push service's status (201 sent, 404/410 gone)."""
    r = await http.post(endpoint, content=encrypt(payload, p256dh, auth), headers=headers(v, endpoint, subject))
    return r.status_code
