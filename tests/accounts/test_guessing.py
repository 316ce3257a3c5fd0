"""Password guessing (SEC1, docs/decisions/sign-in-guessing.md), tried as an attacker would:
a stranger's wrong passwords never lock the owner out, guessing stays limited and, once an
account is under attack, a right password alone tells nothing and opens nothing. Password
reset answers alike whether an account has the address. Forged proxy headers are ignored.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from faoyam.accounts import service
from faoyam.accounts.models import SignInEvent
from faoyam.accounts.schemas import Terminal
from faoyam.core.errors import TooManyRequests, Unauthorized
from tests.conftest import STRONG, latest_code, register

LOGIN = "user@example.com"
OWNER_IP, ATTACKER_IPS = "198.51.100.7", ["203.0.113.1", "203.0.113.2", "203.0.113.3"]


async def attempt(ctx, password: str, ip: str, code: str | None = None, login: str = LOGIN, later=None):
    """'ok', or the problem code the sign-in answered with."""
    try:
        await service.sign_in(ctx, login, password, None, Terminal(), ip, code=code, later=later)
        return "ok"
    except (Unauthorized, TooManyRequests) as exc:
        return exc.code


@pytest.mark.req("SEC1", "B2")
async def test_wrong_passwords_from_one_address_never_lock_out_the_owner(client, ctx):
    await register(client, ctx)
    attacker = ATTACKER_IPS[0]
    answers = [await attempt(ctx, f"guess-{i}-wrong", attacker) for i in range(ctx.settings.login_max_failures)]
    assert answers == ["bad-credentials"] * ctx.settings.login_max_failures
    # That address is stopped for this account, even with the right password...
    assert await attempt(ctx, STRONG, attacker) == "rate-limited"
    # ...while the owner, from their own address, signs in as usual.
    assert await attempt(ctx, STRONG, OWNER_IP) == "ok"


@pytest.mark.req("SEC1")
async def test_parallel_guesses_cannot_slip_past_the_limit(client, ctx):
    """Twenty guesses at once from one address: exactly the limit is checked, the rest refused."""
    await register(client, ctx)
    answers = await asyncio.gather(*[attempt(ctx, f"parallel-{i}-wrong", ATTACKER_IPS[0]) for i in range(20)])
    assert answers.count("bad-credentials") == ctx.settings.login_max_failures
    assert answers.count("rate-limited") == 20 - ctx.settings.login_max_failures


@pytest.mark.req("SEC1", "B2")
async def test_an_account_under_attack_needs_a_code_and_the_answer_tells_nothing(client, ctx):
    await register(client, ctx)
    s = ctx.settings
    # Wrong passwords from several addresses, each below its own limit, reach the account's.
    for i in range(s.login_step_up_failures):
        assert await attempt(ctx, f"spread-{i}-wrong", ATTACKER_IPS[i % 3]) == "bad-credentials"
    mails_before = len(await ctx.messenger.outbox(LOGIN))

    # Now a wrong and a right password get the same answer, and neither signs in.
    later: list = []
    wrong = await attempt(ctx, "still-wrong-123", ATTACKER_IPS[2], later=later.append)
    assert wrong == "step-up-required" and later == []
    right = await attempt(ctx, STRONG, OWNER_IP, later=later.append)
    assert right == "step-up-required"
    # Only the right password sends a code, to the account's own address, after the answer.
    assert len(later) == 1
    assert len(await ctx.messenger.outbox(LOGIN)) == mails_before
    await later[0]()
    code = await latest_code(ctx, LOGIN)

    # The code does not help a guesser without the password; with the password it signs in.
    assert await attempt(ctx, "still-wrong-456", ATTACKER_IPS[1], code=code) == "step-up-required"
    assert await attempt(ctx, STRONG, OWNER_IP, code="000000" if code != "000000" else "111111") == "step-up-required"
    assert await attempt(ctx, STRONG, OWNER_IP, code=code) == "ok"


@pytest.mark.req("SEC1", "B2")
async def test_step_up_through_the_api_sends_the_code_after_the_answer(client, ctx):
    await register(client, ctx)
    for i in range(ctx.settings.login_step_up_failures):
        await attempt(ctx, f"spread-{i}-wrong", ATTACKER_IPS[i % 3])
    body = {"login": LOGIN, "password": STRONG}
    r = await client.post("/api/v1/sessions", json=body)
    assert (r.status_code, r.json()["code"]) == (401, "step-up-required")
    wrong = await client.post("/api/v1/sessions", json={**body, "password": "not-the-password-1"})
    assert (wrong.status_code, wrong.json()) == (401, {**r.json()})
    code = await latest_code(ctx, LOGIN)  # sent as a background task of the first answer
    r = await client.post("/api/v1/sessions", json={**body, "code": code})
    assert r.status_code == 201, r.text


@pytest.mark.req("SEC1", "B2")
async def test_password_reset_answers_alike_for_known_and_unknown_addresses(client, ctx):
    await register(client, ctx)
    known, unknown = [], []
    for _ in range(7):  # past the five codes an address may get per hour
        known.append(await client.post("/api/v1/password-reset", json={"login": LOGIN}))
        unknown.append(await client.post("/api/v1/password-reset", json={"login": "nobody@example.com"}))
    assert {(r.status_code, r.text) for r in known} == {(r.status_code, r.text) for r in unknown}
    assert {r.status_code for r in known} == {202}
    # The account still got its codes (five: the per-address limit holds, silently).
    assert len([m for m in await ctx.messenger.outbox(LOGIN) if m.get("template") == "reset_password"]) == 5
    assert await ctx.messenger.outbox("nobody@example.com") == []


async def _sign_in_ips(ctx, user_id: str) -> list[str]:
    async with ctx.db.session() as s:
        return list((await s.execute(select(SignInEvent.ip).where(SignInEvent.user_id == user_id)
                                     .order_by(SignInEvent.at))).scalars())


@pytest.mark.req("SEC1", "B2")
async def test_forwarded_for_is_believed_only_from_trusted_proxies(client, ctx):
    user_id = (await register(client, ctx))["user_id"]
    forged = {"X-Forwarded-For": "192.0.2.66"}
    r = await client.post("/api/v1/sessions", json={"login": LOGIN, "password": STRONG}, headers=forged)
    assert r.status_code == 201
    assert (await _sign_in_ips(ctx, user_id))[-1] == "127.0.0.1"  # the peer, not the header
    ctx.settings.trusted_proxies = ["127.0.0.0/8"]
    r = await client.post("/api/v1/sessions", json={"login": LOGIN, "password": STRONG},
                          headers={"X-Forwarded-For": "192.0.2.66, 10.9.9.9, 127.0.0.1"})
    assert r.status_code == 201
    # Right to left up to the first hop that is not a trusted proxy: 10.9.9.9 (192.0.2.66 was the client's claim).
    assert (await _sign_in_ips(ctx, user_id))[-1] == "10.9.9.9"
