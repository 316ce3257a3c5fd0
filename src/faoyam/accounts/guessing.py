"""Password guessing: which limits a password sign-in passes (docs/decisions/sign-in-guessing.md).

Three counters, all over ``login_window_minutes``:

- **account and address** (``login-pair``): ``login_max_failures`` wrong passwords for one
  account from one address, then that address (only) waits for this account;
- **address** (``login-ip``): six times that over all accounts, then that address waits;
- **account** (``login-account``, from anywhere): past ``login_step_up_failures`` the
  account is *under attack*: a password alone no longer signs in, a one-time code sent to
  the account's own email or phone is needed as well. Nobody is locked out, the owner
  included; a stranger with the right password still cannot get in.

The first two are reserved atomically *before* the password is checked (parallel guesses
cannot slip past them) and released when the sign-in succeeds.
"""

from __future__ import annotations

import datetime as dt

from faoyam.core.config import Settings
from faoyam.core.context import Context
from faoyam.core.ratelimit import Limit, Reservation

MESSAGE = "Too many failed sign-ins. Wait a while, or reset your password."
STEP_UP = "sign_in"  # the purpose of the step-up code


def _window(settings: Settings) -> dt.timedelta:
    return dt.timedelta(minutes=settings.login_window_minutes)


def limits(settings: Settings, login: str, ip: str) -> list[Limit]:
    window = _window(settings)
    return [Limit("login-pair", (login, ip), settings.login_max_failures, window),
            Limit("login-ip", ip, settings.login_max_failures * 6, window)]


async def reserve(ctx: Context, login: str, ip: str) -> Reservation:
    """Count this guess against the account-and-address and address limits (429 when full)."""
    return await ctx.limiter.reserve(limits(ctx.settings, login, ip), MESSAGE)


async def under_attack(ctx: Context, login: str) -> bool:
    """Whether the account had so many wrong passwords lately that a code is needed too."""
    if not ctx.limiter.enabled:
        return False
    n, _ = await ctx.limiter.count("login-account", login, _window(ctx.settings))
    return n >= ctx.settings.login_step_up_failures


async def failed(ctx: Context, login: str) -> None:
    """A wrong password for this account, from wherever."""
    await ctx.limiter.record("login-account", login)


async def succeeded(ctx: Context, login: str, reservation: Reservation) -> None:
    """The right password (and code, if one was needed): this guess counts against nobody."""
    await ctx.limiter.release(reservation)
