"""Rate limits and lockouts kept in the database, so every service node sees the same counts.

An attempt is one row of ``rate_events``; a limit is "at most N rows of this bucket and key
within the window". Keys (an address, an account) are stored only as a keyed hash.

Counting is atomic. ``hit`` (and ``reserve`` for several limits at once) *inserts the
attempt first and then counts*, in one transaction that holds a lock on the keys it
counts: on PostgreSQL a transaction-scoped advisory lock per key, on SQLite the database
write lock the INSERT takes. So of N parallel requests exactly ``limit`` pass; nothing slips
through between a check and a record. A refused attempt rolls back and is not counted.

- ``hit`` — for actions limited whether they succeed or not (codes sent, invitations).
- ``reserve`` / ``release`` — for guesses (passwords, codes, serials): the attempt is
  counted *before* the guess is checked, and released (forgotten) if the guess was right.
- ``record`` / ``count`` — plain counting without a limit (signals such as "this account
  is under attack", see ``accounts.guessing``).
- ``check`` — a read-only look, for a limit that another path counts.

Rows expire with their window: no limit may use a window longer than ``MAX_WINDOW``, and
the table's retention (``core.models.RateEvent``) purges rows older than that. Erasing a
person deletes the rows keyed by their account and addresses at once (``forget``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, text

from faoyam.core.database import Database, new_id, utcnow
from faoyam.core.errors import TooManyRequests
from faoyam.core.models import RATE_EVENT_TTL, RateEvent
from faoyam.core.security import keyed_hash

MAX_WINDOW = RATE_EVENT_TTL
DEFAULT_MESSAGE = "Too many attempts. Try again later."


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` attempts of ``bucket`` for ``key`` within ``window``.

    ``key`` is a string (an address, an account id) or a pair ``(account, address)`` for
    limits per account *and* address; a pair's hash starts with its account's hash, so the
    account's rows can be found (and erased) without knowing the address.
    """

    bucket: str
    key: str | tuple[str, str]
    limit: int
    window: dt.timedelta


@dataclass(frozen=True)
class Reservation:
    """Attempts counted by ``reserve``; give it to ``release`` when the guess was right."""

    ids: tuple[str, ...]


class RateLimiter:
    def __init__(self, db: Database, secret: bytes, enabled: bool = True):
        self.db = db
        self.secret = secret
        self.enabled = enabled

    # Keys -----------------------------------------------------------------------------

    def _hash(self, value: str) -> str:
        return keyed_hash(self.secret, f"rate:{value.strip().lower()}")

    def key_hash(self, key: str | tuple[str, str]) -> str:
        """The stored form of a key: 64 hex digits; a pair is half its account, half its address."""
        if isinstance(key, tuple):
            account, address = key
            return self._hash(account)[:32] + self._hash(address)[:32]
        return self._hash(key)

    # Counting -------------------------------------------------------------------------

    async def count(self, bucket: str, key: str | tuple[str, str], window: dt.timedelta) -> tuple[int, dt.datetime | None]:
        since = utcnow() - window
        async with self.db.session() as s:
            n, first = (await s.execute(
                select(func.count(), func.min(RateEvent.at)).where(
                    RateEvent.bucket == bucket, RateEvent.key_hash == self.key_hash(key), RateEvent.at >= since)
            )).one()
        return n, first

    async def check(self, bucket: str, key: str | tuple[str, str], limit: int, window: dt.timedelta,
                    message: str = DEFAULT_MESSAGE) -> None:
        """Refuse when the limit is already reached (counts nothing)."""
        if not self.enabled:
            return
        n, first = await self.count(bucket, key, window)
        if n >= limit:
            raise TooManyRequests(message, retry_after=_retry_after(first, window))

    async def record(self, bucket: str, key: str | tuple[str, str]) -> None:
        """Count one attempt, with no limit attached."""
        async with self.db.transaction() as s:
            s.add(RateEvent(bucket=bucket, key_hash=self.key_hash(key)))

    async def reserve(self, limits: Iterable[Limit], message: str = DEFAULT_MESSAGE) -> Reservation:
        """Count one attempt against every limit, atomically; refuse (counting none) if any is full."""
        limits = list(limits)
        if not self.enabled or not limits:
            return Reservation(())
        for lim in limits:
            if lim.window > MAX_WINDOW:
                raise ValueError(f"rate window of {lim.bucket!r} is longer than the rows are kept")
        now = utcnow()
        hashes = [(lim, self.key_hash(lim.key)) for lim in limits]
        ids: list[str] = []
        async with self.db.transaction() as s:
            if self.db.dialect == "postgresql":
                # Sorted, so two transactions locking the same keys cannot deadlock.
                for lock in sorted({_lock_id(lim.bucket, h) for lim, h in hashes}):
                    await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
            for lim, h in hashes:
                row = RateEvent(id=new_id(), bucket=lim.bucket, key_hash=h, at=now)
                s.add(row)
                ids.append(row.id)
            await s.flush()  # on SQLite this INSERT takes the write lock: counts below are serialised
            for lim, h in hashes:
                n, first = (await s.execute(
                    select(func.count(), func.min(RateEvent.at)).where(
                        RateEvent.bucket == lim.bucket, RateEvent.key_hash == h, RateEvent.at >= now - lim.window)
                )).one()
                if n > lim.limit:
                    await s.rollback()
                    raise TooManyRequests(message, retry_after=_retry_after(first, lim.window))
        return Reservation(tuple(ids))

    async def hit(self, bucket: str, key: str | tuple[str, str], limit: int, window: dt.timedelta,
                  message: str = DEFAULT_MESSAGE) -> None:
        """Count this attempt, refusing it once ``limit`` attempts fall in the window."""
        await self.reserve([Limit(bucket, key, limit, window)], message)

    async def release(self, reservation: Reservation) -> None:
        """Forget reserved attempts (the guess was right: it must not count against anyone)."""
        if not reservation.ids:
            return
        async with self.db.transaction() as s:
            await s.execute(delete(RateEvent).where(RateEvent.id.in_(reservation.ids)))

    async def clear(self, bucket: str, key: str | tuple[str, str]) -> None:
        async with self.db.transaction() as s:
            await s.execute(delete(RateEvent).where(RateEvent.bucket == bucket, RateEvent.key_hash == self.key_hash(key)))

    async def forget(self, keys: Iterable[str]) -> int:
        """Delete every row keyed by one of ``keys`` in any bucket, alone or as the account of a
        pair (erasure: the rows are keyed hashes of the person's account and addresses)."""
        hashes = {self.key_hash(k) for k in keys if k}
        if not hashes:
            return 0
        conds = [RateEvent.key_hash.in_(hashes)] + [RateEvent.key_hash.like(h[:32] + "%") for h in hashes]
        async with self.db.transaction() as s:
            return (await s.execute(delete(RateEvent).where(or_(*conds)))).rowcount


def _retry_after(first: dt.datetime | None, window: dt.timedelta) -> int:
    return max(1, int(((first or utcnow()) + window - utcnow()).total_seconds()))


def _lock_id(bucket: str, key_hash: str) -> int:
    """A signed 64-bit advisory-lock id for one bucket and key."""
    digest = hashlib.blake2b(f"{bucket}:{key_hash}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)
