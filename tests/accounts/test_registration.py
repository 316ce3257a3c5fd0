"""Registration by email or phone with a one-time code (B1a, CH1), and its bad input."""

import datetime as dt

import pytest
from sqlalchemy import func, select, update

from faoyam.accounts.models import PendingRegistration, User
from faoyam.core.database import utcnow
from tests.conftest import STRONG, bearer, latest_code, register

BASE = {"country": "TH", "nickname": "Somchai", "password": STRONG, "age_confirmed": True}


async def _count_users(ctx) -> int:
    async with ctx.db.session() as s:
        return await s.scalar(select(func.count()).select_from(User))


@pytest.mark.req("B1a", "CH1")
async def test_register_by_email_creates_account_only_after_code(client, ctx):
    r = await client.post("/api/v1/accounts/register", json={**BASE, "email": "Ploy@Example.com"})
    assert r.status_code == 202, r.text
    assert r.json()["sent_to"] == "p***@example.com"
    assert await _count_users(ctx) == 0  # nothing exists before the code is confirmed
    code = await latest_code(ctx, "ploy@example.com")
    r2 = await client.post("/api/v1/accounts/register/confirm", json={"pending_id": r.json()["pending_id"], "code": code})
    assert r2.status_code == 201, r2.text
    me = (await client.get("/api/v1/me", headers=bearer(r2.json()))).json()
    assert me["email"] == "ploy@example.com" and me["country"] == "TH" and me["nickname"] == "Somchai"
    async with ctx.db.session() as s:
        u = await s.get(User, me["id"])
        assert u.password_hash.startswith("$argon2id$")
        assert u.age_confirmed_at is not None


@pytest.mark.req("B1a")
async def test_register_by_phone_reads_local_number_in_chosen_country(client, ctx):
    r = await client.post("/api/v1/accounts/register", json={**BASE, "phone": "081 234 5678"})
    assert r.status_code == 202, r.text
    code = await latest_code(ctx, "+66812345678")
    msgs = await ctx.messenger.outbox("+66812345678")
    assert msgs[0]["channel"] == "sms"
    r2 = await client.post("/api/v1/accounts/register/confirm", json={"pending_id": r.json()["pending_id"], "code": code})
    assert r2.status_code == 201
    me = (await client.get("/api/v1/me", headers=bearer(r2.json()))).json()
    assert me["phone"] == "+66812345678" and me["email"] is None


@pytest.mark.req("CH1")
async def test_age_must_be_confirmed(client, ctx):
    r = await client.post("/api/v1/accounts/register", json={**BASE, "email": "kid@example.com", "age_confirmed": False})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == "age-not-confirmed"
    assert await ctx.messenger.outbox() == []


@pytest.mark.req("B1a")
@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"email": "not-an-email"}, 422, "invalid-email"),
        ({"email": "a@b"}, 422, "invalid-email"),
        ({"phone": "12"}, 422, "invalid-phone"),
        ({"phone": "+1 555 0100 999999"}, 422, "invalid-phone"),
        ({"email": "x@example.com", "country": "XX"}, 422, "unknown-country"),
        ({"email": "x@example.com", "country": "Thailand"}, 422, "unknown-country"),
        ({"email": "x@example.com", "password": "password1"}, 422, "weak-password"),
        ({"email": "x@example.com", "password": "short"}, 422, "weak-password"),
        ({"email": "x@example.com", "nickname": "   "}, 422, "invalid-nickname"),
        ({"email": "x@example.com", "phone": "+66812345678"}, 422, "contact-required"),
        ({}, 422, "contact-required"),
    ],
)
async def test_bad_registration_input_is_a_clear_problem_and_leaves_nothing(client, ctx, body, status, code):
    r = await client.post("/api/v1/accounts/register", json={**BASE, **body})
    assert r.status_code == status, r.text
    problem = r.json()
    assert problem["code"] == code
    assert problem["status"] == status and problem["title"] and problem["type"].endswith(code)
    assert problem["errors"][0]["field"]
    async with ctx.db.session() as s:
        assert await s.scalar(select(func.count()).select_from(PendingRegistration)) == 0
    assert await _count_users(ctx) == 0


async def test_malformed_json_is_a_problem(client):
    r = await client.post("/api/v1/accounts/register", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    r = await client.post("/api/v1/accounts/register", json={"email": 5, "country": ["TH"]})
    assert r.status_code == 422 and {e["field"] for e in r.json()["errors"]} >= {"country"}


@pytest.mark.req("B1a")
async def test_duplicate_registration_is_refused(client, ctx):
    await register(client, ctx, email="dup@example.com")
    r = await client.post("/api/v1/accounts/register", json={**BASE, "email": "DUP@example.com"})
    assert r.status_code == 409 and r.json()["code"] == "already-registered"
    assert await _count_users(ctx) == 1


@pytest.mark.req("B1a", "R8")
async def test_wrong_code_counts_attempts_then_voids_registration(client, ctx):
    r = await client.post("/api/v1/accounts/register", json={**BASE, "email": "guess@example.com"})
    pid = r.json()["pending_id"]
    real = await latest_code(ctx, "guess@example.com")
    wrong = f"{(int(real) + 1) % 1000000:06d}"
    for left in range(4, -1, -1):
        r = await client.post("/api/v1/accounts/register/confirm", json={"pending_id": pid, "code": wrong})
        assert r.status_code == 422 and r.json()["attempts_left"] == left
    # Attempts exhausted: even the right code no longer works, and the pending row is gone.
    r = await client.post("/api/v1/accounts/register/confirm", json={"pending_id": pid, "code": real})
    assert r.status_code == 410 and r.json()["code"] == "code-attempts"
    r = await client.post("/api/v1/accounts/register/confirm", json={"pending_id": pid, "code": real})
    assert r.status_code == 410
    assert await _count_users(ctx) == 0


@pytest.mark.req("B1a")
async def test_code_cannot_be_replayed(client, ctx):
    r = await client.post("/api/v1/accounts/register", json={**BASE, "email": "once@example.com"})
    pid = r.json()["pending_id"]
    code = await latest_code(ctx, "once@example.com")
    assert (await client.post("/api/v1/accounts/register/confirm", json={"pending_id": pid, "code": code})).status_code == 201
    again = await client.post("/api/v1/accounts/register/confirm", json={"pending_id": pid, "code": code})
    assert again.status_code == 410 and again.json()["code"] == "code-expired"
    assert await _count_users(ctx) == 1


@pytest.mark.req("B1a")
async def test_expired_code_is_refused(client, ctx):
    r = await client.post("/api/v1/accounts/register", json={**BASE, "email": "late@example.com"})
    pid = r.json()["pending_id"]
    code = await latest_code(ctx, "late@example.com")
    async with ctx.db.transaction() as s:
        await s.execute(update(PendingRegistration).values(expires_at=utcnow() - dt.timedelta(minutes=1)))
    r = await client.post("/api/v1/accounts/register/confirm", json={"pending_id": pid, "code": code})
    assert r.status_code == 410 and r.json()["code"] == "code-expired"
    assert await _count_users(ctx) == 0


@pytest.mark.req("SEC1")
async def test_registration_codes_are_rate_limited_per_address(client, ctx):
    statuses = []
    for _ in range(7):
        r = await client.post("/api/v1/accounts/register", json={**BASE, "email": "spam@example.com"})
        statuses.append(r.status_code)
    assert statuses[:5] == [202] * 5
    assert statuses[5:] == [429, 429]
    assert int(r.headers["retry-after"]) > 0
    assert len(await ctx.messenger.outbox("spam@example.com")) == 5
