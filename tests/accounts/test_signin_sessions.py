"""Sign-in, terminals (B2), lockout (SEC1) and re-authentication (R8)."""

import datetime as dt

import pytest
from sqlalchemy import update

from faoyam.accounts.models import Session
from faoyam.core.database import utcnow
from tests.conftest import STRONG, bearer, register

PHONE_TERMINAL = {"os": "Android 15", "model": "Pixel 9", "install_id": "inst-42"}


async def sign_in(client, login="user@example.com", password=STRONG, **extra):
    return await client.post("/api/v1/sessions", json={"login": login, "password": password, **extra})


@pytest.mark.req("B2")
async def test_sign_in_records_terminal_without_gps_unless_permitted(client, ctx):
    await register(client, ctx)
    r = await sign_in(client, terminal={**PHONE_TERMINAL, "gps_lat": 13.75, "gps_lon": 100.5, "gps_permission": False})
    assert r.status_code == 201, r.text
    s1 = r.json()
    r = await sign_in(client, terminal={**PHONE_TERMINAL, "install_id": "inst-43", "gps_lat": 13.75, "gps_lon": 100.5,
                                        "gps_permission": True})
    s2 = r.json()
    terms = (await client.get("/api/v1/me/terminals", headers=bearer(s2))).json()
    by_install = {t["install_id"]: t for t in terms}
    assert by_install["inst-42"]["gps"] is None  # sent without permission: not kept
    assert by_install["inst-43"]["gps"] == {"lat": 13.75, "lon": 100.5}
    assert by_install["inst-43"]["current"] is True and by_install["inst-42"]["current"] is False
    assert by_install["inst-42"]["os"] == "Android 15" and by_install["inst-42"]["model"] == "Pixel 9"
    # Revoke the first terminal: its token stops working at once.
    tid = by_install["inst-42"]["id"]
    assert (await client.delete(f"/api/v1/me/terminals/{tid}", headers=bearer(s2))).status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(s1))).status_code == 401
    assert (await client.get("/api/v1/me", headers=bearer(s2))).status_code == 200
    # A stranger's terminal id cannot be revoked by guessing.
    assert (await client.delete(f"/api/v1/me/terminals/{'0' * 32}", headers=bearer(s2))).status_code == 404
    events = (await client.get("/api/v1/me/sign-ins", headers=bearer(s2))).json()
    assert {e["outcome"] for e in events} == {"ok"} and len(events) == 3


@pytest.mark.req("B2")
async def test_sign_in_by_phone_and_sign_out(client, ctx):
    await register(client, ctx, email=None, phone="+66812345679")
    r = await sign_in(client, login="0812345679", country="TH")
    assert r.status_code == 201, r.text
    s = r.json()
    assert (await client.delete("/api/v1/sessions/current", headers=bearer(s))).status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(s))).status_code == 401


@pytest.mark.req("SEC1", "B2")
async def test_wrong_passwords_lock_the_account_for_a_while(client, ctx):
    await register(client, ctx)
    for _ in range(5):
        r = await sign_in(client, password="wrong-password-x")
        assert r.status_code == 401 and r.json()["code"] == "bad-credentials"
    r = await sign_in(client)  # even the right password is refused while locked
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    events = [e for e in (await ctx.messenger.outbox())]  # no mail is sent for failures
    assert all(e["template"] == "register" for e in events)


async def test_unknown_account_and_wrong_password_answer_alike(client, ctx):
    await register(client, ctx)
    a = await sign_in(client, password="wrong-password-x")
    b = await sign_in(client, login="nobody@example.com")
    assert a.status_code == b.status_code == 401
    assert a.json()["detail"] == b.json()["detail"]


async def test_cookie_session_needs_csrf_token_for_changes(client, ctx):
    s = await register(client, ctx)
    client.cookies.set("faoyam_session", s["token"])
    assert (await client.get("/api/v1/me")).status_code == 200
    r = await client.patch("/api/v1/me", json={"nickname": "Forged"})
    assert r.status_code == 403 and r.json()["code"] == "csrf"
    r = await client.patch("/api/v1/me", json={"nickname": "Real"}, headers={"X-CSRF-Token": s["csrf_token"]})
    assert r.status_code == 200 and r.json()["nickname"] == "Real"


async def _age_session(ctx, minutes: int):
    async with ctx.db.transaction() as s:
        await s.execute(update(Session).values(authenticated_at=utcnow() - dt.timedelta(minutes=minutes)))


@pytest.mark.req("R8")
async def test_sensitive_actions_need_recent_authentication(client, ctx):
    s = await register(client, ctx)
    await _age_session(ctx, 60)
    for method, url, body in [("GET", "/api/v1/privacy/export", None), ("DELETE", "/api/v1/me", None),
                              ("POST", "/api/v1/me/contact", {"kind": "email", "value": "new@example.com"})]:
        r = await client.request(method, url, json=body, headers=bearer(s))
        assert r.status_code == 403 and r.json()["code"] == "reauth-required", (url, r.text)
    assert (await client.post("/api/v1/me/reauth", json={"password": "nope-nope-nope"}, headers=bearer(s))).status_code == 401
    assert (await client.post("/api/v1/me/reauth", json={"password": STRONG}, headers=bearer(s))).status_code == 204
    assert (await client.get("/api/v1/privacy/export", headers=bearer(s))).status_code == 200


@pytest.mark.req("R8")
async def test_step_up_code_reauthenticates(client, ctx):
    from tests.conftest import latest_code

    s = await register(client, ctx, email="step@example.com")
    await _age_session(ctx, 60)
    r = await client.post("/api/v1/me/reauth/code", headers=bearer(s))
    assert r.status_code == 202 and r.json()["sent_to"] == "s***@example.com"
    code = await latest_code(ctx, "step@example.com")
    assert (await client.post("/api/v1/me/reauth", json={"code": code}, headers=bearer(s))).status_code == 204
    assert (await client.get("/api/v1/privacy/export", headers=bearer(s))).status_code == 200
    # The code was used once; it does not work again.
    r = await client.post("/api/v1/me/reauth", json={"code": code}, headers=bearer(s))
    assert r.status_code == 410
