"""RET3: three years without use → notice three months before, then erasure."""

import datetime as dt

import pytest
from sqlalchemy import update

from faoyam.accounts.jobs import inactivity
from faoyam.accounts.models import User
from faoyam.core.database import utcnow
from tests.conftest import STRONG, register


@pytest.mark.req("RET3")
async def test_inactive_account_is_notified_then_erased(client, ctx):
    idle = await register(client, ctx, email="idle@example.com")
    await register(client, ctx, email="active@example.com")
    now = utcnow()
    async with ctx.db.transaction() as s:
        await s.execute(update(User).where(User.id == idle["user_id"]).values(last_active_at=now - dt.timedelta(days=34 * 30)))
    assert await inactivity(ctx, now) == {"notified": 1, "erased": 0}
    msgs = await ctx.messenger.outbox("idle@example.com")
    assert msgs[0]["template"] == "inactivity" and "three months" in msgs[0]["text"]
    assert await inactivity(ctx, now) == {"notified": 0, "erased": 0}  # one notice, not one a day
    # Three months later, still unused: erased. The active account stays.
    assert await inactivity(ctx, now + dt.timedelta(days=91)) == {"notified": 0, "erased": 1}
    assert (await client.post("/api/v1/sessions", json={"login": "idle@example.com", "password": STRONG})).status_code == 401
    assert (await client.post("/api/v1/sessions", json={"login": "active@example.com", "password": STRONG})).status_code == 201


@pytest.mark.req("RET3")
async def test_coming_back_after_the_notice_keeps_the_account(client, ctx):
    await register(client, ctx, email="back@example.com")
    now = utcnow()
    async with ctx.db.transaction() as s:
        await s.execute(update(User).values(last_active_at=now - dt.timedelta(days=34 * 30)))
    assert (await inactivity(ctx, now))["notified"] == 1
    assert (await client.post("/api/v1/sessions", json={"login": "back@example.com", "password": STRONG})).status_code == 201
    assert await inactivity(ctx, now + dt.timedelta(days=91)) == {"notified": 0, "erased": 0}
