"""Rate limits and lockouts kept in the database, so every service node sees the same counts.

Keys (an address, an account) are stored only as a keyed hash. ``check`` raises
``TooManyRequests`` with ``retry_after`` when the limit is reached; ``record`` counts an
attempt (a failed password, a code sent); ``clear`` forgets them after a success.
Each call runs in its own transaction: a failed attempt must be counted even though the
request that made it fails and rolls back.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, func, select

from faoyam.core.database import Database, utcnow
from faoyam.core.errors import TooManyRequests
from faoyam.core.models import RateEvent
from faoyam.core.security import keyed_hash


class RateLimiter:
    def __init__(self, db: Database, secret: bytes, enabled: bool = True):
        self.db = db
        self.secret = secret
        self.enabled = enabled

    def _key(self, bucket: str, key: str) -> str:
        return keyed_hash(self.secret, f"rate:{bucket}:{key.lower()}")

    async def count(self, bucket: str, key: str, window: dt.timedelta) -> tuple[int, dt.datetime | None]:
        since = utcnow() - window
        async with self.db.session() as s:
            n, first = (
                await s.execute(
                    select(func.count(), func.min(RateEvent.at)).where(
                        RateEvent.bucket == bucket, RateEvent.key_hash == self._key(bucket, key), RateEvent.at >= since
                    )
                )
            ).one()
        return n, first

    async def check(self, bucket: str, key: str, limit: int, window: dt.timedelta,
                    message: str = "Too many attempts. Try again later.") -> None:
        if not self.enabled:
            return
        n, first = await self.count(bucket, key, window)
        if n >= limit:
            retry = max(1, int(((first or utcnow()) + window - utcnow()).total_seconds()))
            raise TooManyRequests(message, retry_after=retry)

    async def record(self, bucket: str, key: str) -> None:
        async with self.db.transaction() as s:
            s.add(RateEvent(bucket=bucket, key_hash=self._key(bucket, key)))

    async def hit(self, bucket: str, key: str, limit: int, window: dt.timedelta) -> None:
        """Check, then count this attempt (for actions limited whether they succeed or not)."""
        await self.check(bucket, key, limit, window)
        await self.record(bucket, key)

    async def clear(self, bucket: str, key: str) -> None:
        async with self.db.transaction() as s:
            await s.execute(delete(RateEvent).where(RateEvent.bucket == bucket, RateEvent.key_hash == self._key(bucket, key)))
