"""Token checks for media fetched over plain HTTP: LL-HLS and snapshots.

The WebSocket path spends a token once (:class:`~faoyam.media.tokens.ReplayGuard`): one
token, one session. An HLS player cannot work that way — it fetches a playlist, reloads it
for every part (~3 times a second with LL-HLS), and fetches each part and init segment, all
under the one URL it was given. So HLS and snapshot tokens are checked differently:

* **Signed and bound** as every media token: device, channel, stream, viewer (``grant``),
  and a permission that names the use — ``hls`` or ``snapshot`` — so a one-use live token
  opens no HLS, and an HLS token is no snapshot URL.
* **Short-lived, then a session.** The token must be *first presented* before it expires
  (``media_token_seconds``, 60 s). From then on it stays valid while the player keeps
  using it: a gap of more than ``session_idle`` seconds ends the session and the token is
  refused as expired (410). That is the WebSocket rule ("a session opened in time stays
  open") for a protocol made of many requests.
* **Revocation** is checked on the requests themselves, through the devices domain
  (:func:`faoyam.media.grants.devices_revocation`, with ``permission="live"`` — HLS and
  snapshots are live view), the answer cached per grant for ``recheck`` seconds (0.5 s):
  a player reloading its playlist gets 403 within about a second of the share being
  revoked, and the session is forgotten, so the token never works again. A failing check
  (a database hiccup) keeps sessions open, as the live server does.

Refusals are problem details (RFC 9457): 401 ``media-token-bad`` (malformed, tampered),
403 ``media-token-forbidden`` (a token for another use), 403 ``media-revoked``, 410
``media-token-expired``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from faoyam.core.errors import Forbidden, Gone, Unauthorized
from faoyam.media.ids import ChannelId
from faoyam.media.live_http import Revoked
from faoyam.media.tokens import MediaGrant, TokenError, verify

log = logging.getLogger(__name__)

HLS, SNAPSHOT, PLAYBACK = "hls", "snapshot", "playback"
DEFAULT_SESSION_IDLE = 30.0
DEFAULT_RECHECK = 0.5
_PRUNE_EVERY = 256  # checks between two passes over the session table


async def _never_revoked(grant: MediaGrant) -> bool:
    return False


class MediaAccess:
    """Checks HLS and snapshot tokens for one media worker (sessions are in memory: the
    worker that serves a stream is the one that sees its requests)."""

    def __init__(self, secret_key: bytes, *, revoked: Revoked | None = None,
                 session_idle: float = DEFAULT_SESSION_IDLE, recheck: float = DEFAULT_RECHECK,
                 clock: Callable[[], float] = time.time, revoke_as: str | None = "live"):
        self.secret_key = secret_key
        self.clock = clock  # unix seconds, as token expiries are
        # the devices permission re-checked: "live" for HLS and snapshots; None keeps the
        # token's own (playback, media/playback.py)
        self.revoke_as = revoke_as
        self.revoked = revoked or _never_revoked
        self.session_idle = session_idle
        self.recheck = recheck
        self.sessions: dict[str, float] = {}  # token nonce -> last use (time.time())
        self._answers: dict[tuple, tuple[float, bool]] = {}  # grant key -> (checked at, revoked)
        self._checks = 0

    async def check(self, token: str, permission: str) -> ChannelId:
        """The stream ``token`` grants for ``permission``, or a problem saying why not."""
        try:
            # Expiry is judged below (a session outlives it); everything else by verify().
            grant = verify(self.secret_key, token, permission=permission, now=0.0)
        except TokenError as exc:
            if exc.reason == "wrong-permission":
                raise Forbidden("This media link is for something else.", code="media-token-forbidden") from None
            raise Unauthorized("This media link is not valid.", code="media-token-bad") from None
        now = self.clock()
        last = self.sessions.get(grant.nonce)
        in_session = last is not None and now - last <= self.session_idle
        if grant.expires <= now and not in_session:
            self.sessions.pop(grant.nonce, None)
            raise Gone("This media link has expired. Ask for a new one.", code="media-token-expired")
        if await self._is_revoked(grant, now):
            self.sessions.pop(grant.nonce, None)
            raise Forbidden("Access to this camera was withdrawn.", code="media-revoked")
        self.sessions[grant.nonce] = now
        self._checks += 1
        if self._checks % _PRUNE_EVERY == 0:
            self.prune(now)
        return grant.channel

    async def hls(self, token: str) -> ChannelId:
        return await self.check(token, HLS)

    async def snapshot(self, token: str) -> ChannelId:
        return await self.check(token, SNAPSHOT)

    async def _is_revoked(self, grant: MediaGrant, now: float) -> bool:
        key = (grant.grant, grant.channel)
        cached = self._answers.get(key)
        if cached is not None and now - cached[0] < self.recheck:
            return cached[1]
        try:
            # the devices domain knows live view; HLS and snapshots are live view
            asked = grant if self.revoke_as is None else dataclasses.replace(grant, permission=self.revoke_as)
            answer = bool(await self.revoked(asked))
        except asyncio.CancelledError:
            raise
        except Exception:  # a database hiccup must not end every player's session
            log.warning("media: could not re-check grant %s; keeping its sessions", grant.grant, exc_info=True)
            return False
        self._answers[key] = (now, answer)
        return answer

    def prune(self, now: float | None = None) -> None:
        """Forget ended sessions and stale revocation answers."""
        now = self.clock() if now is None else now
        self.sessions = {n: t for n, t in self.sessions.items() if now - t <= self.session_idle}
        self._answers = {k: v for k, v in self._answers.items() if now - v[0] < self.recheck}
