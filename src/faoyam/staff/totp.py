"""Time-based one-time passwords (RFC 6238, on RFC 4226's HOTP), for the staff second factor.

Our own few lines rather than a dependency: the algorithm is small and fixed, and
``tests/staff/test_totp.py`` checks it against the RFC 6238 appendix B test vectors.
A code is accepted for the current 30-second step and one step either side (clock
drift), and each step only once per account (``verify`` returns the step, the caller
stores it and passes it back as ``after``), so a code seen over a shoulder or in a log
cannot be replayed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
import time
from urllib.parse import quote, urlencode

STEP = 30
DIGITS = 6
_DIGESTS = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}


def new_secret() -> str:
    """A random 160-bit secret, base32 without padding (what authenticator apps expect)."""
    return base64.b32encode(secrets.token_bytes(20)).decode().rstrip("=")


def _key(secret_b32: str) -> bytes:
    s = secret_b32.strip().replace(" ", "").upper()
    return base64.b32decode(s + "=" * (-len(s) % 8))


def hotp(key: bytes, counter: int, digits: int = DIGITS, algorithm: str = "SHA1") -> str:
    """RFC 4226 HOTP of ``counter`` (dynamic truncation of an HMAC)."""
    mac = hmac.new(key, struct.pack(">Q", counter), _DIGESTS[algorithm]).digest()
    offset = mac[-1] & 0x0F
    number = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 10 ** digits:0{digits}d}"


def step_at(at: float) -> int:
    return int(at // STEP)


def code_at(secret_b32: str, at: float) -> str:
    return hotp(_key(secret_b32), step_at(at))


def verify(secret_b32: str, code: str, *, at: float | None = None, after: int | None = None, window: int = 1) -> int | None:
    """The time step ``code`` is valid for (now ± ``window`` steps), or None.

    Steps at or before ``after`` (the last step this account used) are refused: replay."""
    code = (code or "").strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    now = step_at(time.time() if at is None else at)
    key = _key(secret_b32)
    found = None
    for step in range(now - window, now + window + 1):
        # Compare every candidate: the time taken does not tell which step matched.
        if hmac.compare_digest(hotp(key, step), code) and found is None:
            found = step
    if found is None or (after is not None and found <= after):
        return None
    return found


def otpauth_uri(secret_b32: str, account: str, issuer: str) -> str:
    """The ``otpauth://totp/...`` URI an authenticator app reads (Key URI Format)."""
    label = quote(f"{issuer}:{account}", safe="@:")
    query = urlencode({"secret": secret_b32, "issuer": issuer, "algorithm": "SHA1", "digits": DIGITS, "period": STEP})
    return f"otpauth://totp/{label}?{query}"
