"""Signed, short-lived media URLs, each bound to one viewer, one channel stream and one use.

The web app decides who may watch (the devices domain's authorization); the media worker,
another process, serves the bytes. They share nothing but the settings' secret key, so the
web app hands the viewer a **token** the worker can check on its own::

    <payload>.<signature>        both base64url, no padding
    payload   = compact JSON {"d": device id, "c": channel, "s": stream, "p": "live",
                              "g": grant, "e": expiry (unix seconds), "n": nonce}
    signature = HMAC-SHA256(key, "faoyam-media-token/v1\\n" + payload)

* **Bound to a channel stream and a permission**: the worker compares them with what the
  URL asks for; a token for camera A's sub-stream opens nothing else.
* **Bound to a viewer**: ``grant`` is an opaque reference the devices domain can re-check
  while the session is open — ``user:<id>`` for an owner or an accepted share, ``link:<id>``
  for a share link. The worker polls ``revoked(grant)`` and closes the session when the
  answer turns (see :mod:`faoyam.media.live_http`).
* **Short-lived**: the token must be *presented* within ``ttl`` (60 s by default). A session
  opened in time stays open until the viewer leaves or the grant is revoked.
* **One use**: the nonce is remembered until the token expires (:class:`ReplayGuard`), so a
  URL copied out of one viewer's browser opens nothing; a reconnecting player asks the web
  app for a fresh token (which re-checks authorization).

The key is derived from the secret key with a purpose label, so a media token is never a
valid signature for anything else the app signs with the same secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

from faoyam.media.ids import ChannelId

DEFAULT_TTL = 60.0
_PURPOSE = b"faoyam-media-token/v1\n"
_MAX_TOKEN_CHARS = 1024


class TokenError(ValueError):
    """The token is refused; ``reason`` is a stable word for logs and close messages."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MediaGrant:
    """What a verified token allows: ``permission`` on ``channel`` for the viewer ``grant``."""

    channel: ChannelId
    permission: str
    grant: str
    expires: float
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def media_key(secret_key: bytes) -> bytes:
    """The key media tokens are signed with, derived from the settings' secret key."""
    return hmac.new(secret_key, b"faoyam media tokens", hashlib.sha256).digest()


def _sign(key: bytes, payload: str) -> str:
    return _b64(hmac.new(key, _PURPOSE + payload.encode("ascii"), hashlib.sha256).digest())


def mint(secret_key: bytes, channel: ChannelId, grant: str, *, permission: str = "live",
         ttl: float = DEFAULT_TTL, now: float | None = None) -> str:
    """A token allowing ``permission`` on ``channel`` for the viewer ``grant``, valid ``ttl`` s."""
    now = time.time() if now is None else now
    body = {"d": channel.device_id, "c": channel.channel, "s": channel.stream, "p": permission,
            "g": grant, "e": int(now + ttl), "n": secrets.token_urlsafe(12)}
    payload = _b64(json.dumps(body, separators=(",", ":"), sort_keys=True).encode())
    return f"{payload}.{_sign(media_key(secret_key), payload)}"


def verify(secret_key: bytes, token: str, *, permission: str = "live", channel: ChannelId | None = None,
           now: float | None = None) -> MediaGrant:
    """The grant a token carries, or :class:`TokenError` (``malformed``, ``bad-signature``,
    ``expired``, ``wrong-permission``, ``wrong-channel``). The signature is checked before
    anything is parsed. ``channel``: for URLs that name the stream as well (HLS playlists,
    snapshots), the token must be for exactly that stream."""
    if not token or len(token) > _MAX_TOKEN_CHARS or token.count(".") != 1:
        raise TokenError("malformed")
    payload, signature = token.split(".")
    if not hmac.compare_digest(_sign(media_key(secret_key), payload), signature):
        raise TokenError("bad-signature")
    try:
        body = json.loads(_unb64(payload))
        stream = ChannelId(str(body["d"]), int(body["c"]), str(body["s"]))
        grant = MediaGrant(stream, str(body["p"]), str(body["g"]), float(body["e"]), str(body["n"]))
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise TokenError("malformed") from None
    if grant.expires <= (time.time() if now is None else now):
        raise TokenError("expired")
    if grant.permission != permission:
        raise TokenError("wrong-permission")
    if channel is not None and grant.channel != channel:
        raise TokenError("wrong-channel")
    return grant


class ReplayGuard:
    """Remembers the nonces of tokens already used, until they expire (then they are
    refused as expired anyway), so each token opens one session. In-memory: one per media
    worker process, which is the only process that accepts these tokens for its streams."""

    def __init__(self, max_entries: int = 200_000):
        self._seen: dict[str, float] = {}
        self.max_entries = max_entries

    def use(self, grant: MediaGrant, now: float | None = None) -> bool:
        """True the first time this token is used, False after."""
        now = time.time() if now is None else now
        if len(self._seen) >= self.max_entries:
            self.prune(now)
            if len(self._seen) >= self.max_entries:
                return False  # a flood of fresh tokens: refuse rather than grow
        if grant.nonce in self._seen:
            return False
        self._seen[grant.nonce] = grant.expires
        return True

    def prune(self, now: float | None = None) -> None:
        """Forget nonces of expired tokens (the live server calls this as it polls)."""
        now = time.time() if now is None else now
        self._seen = {n: e for n, e in self._seen.items() if e > now}

    def __len__(self) -> int:
        return len(self._seen)
