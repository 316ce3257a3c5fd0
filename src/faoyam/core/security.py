"""Security primitives: password hashing, tokens, and encryption of device secrets.

- Account passwords: argon2id (argon2-cffi defaults, RFC 9106 low-memory profile).
- Tokens (sessions, one-time links): random, stored only as a keyed hash, so a database
  leak does not hand out live sessions.
- Device secrets (device passwords, broker credentials): AES-256-GCM with a key id in
  front of each ciphertext, so keys rotate: new data uses the newest key, old data stays
  readable while its key is configured, and ``SecretBox.rotate`` re-encrypts it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_hasher = PasswordHasher()  # argon2id
# A hash of a random password: verifying against it costs what a real check costs, so
# "no such account" and "wrong password" take the same time.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)


def new_token(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


def keyed_hash(key: bytes, value: str) -> str:
    """HMAC-SHA256 of a value, hex. For tokens and codes we look up but never show."""
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def numeric_code(digits: int = 6) -> str:
    return f"{secrets.randbelow(10**digits):0{digits}d}"


class SecretBox:
    """AES-GCM with rotating keys. Ciphertext format: ``v1.{kid}.{b64(nonce|ct)}``."""

    def __init__(self, keys: list[tuple[str, bytes]]):
        if not keys:
            raise ValueError("at least one key")
        self.keys = dict(keys)
        self.current = keys[0][0]

    def encrypt(self, plaintext: str, *, context: str = "") -> str:
        nonce = secrets.token_bytes(12)
        ct = AESGCM(self.keys[self.current]).encrypt(nonce, plaintext.encode(), context.encode())
        return f"v1.{self.current}.{base64.urlsafe_b64encode(nonce + ct).decode()}"

    def decrypt(self, token: str, *, context: str = "") -> str:
        try:
            version, kid, b64 = token.split(".", 2)
        except ValueError:
            raise ValueError("not a sealed secret") from None
        if version != "v1" or kid not in self.keys:
            raise ValueError(f"unknown key id {kid!r}")
        raw = base64.urlsafe_b64decode(b64)
        return AESGCM(self.keys[kid]).decrypt(raw[:12], raw[12:], context.encode()).decode()

    def needs_rotation(self, token: str) -> bool:
        return not token.startswith(f"v1.{self.current}.")

    def rotate(self, token: str, *, context: str = "") -> str:
        return self.encrypt(self.decrypt(token, context=context), context=context)
