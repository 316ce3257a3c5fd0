"""The demo's outbox page: there in demo mode, absent otherwise."""

from tests.conftest import STRONG


async def test_outbox_page_only_in_demo_mode(client, ctx):
    body = {"email": "try@example.com", "country": "TH", "nickname": "T", "password": STRONG, "age_confirmed": True}
    assert (await client.post("/api/v1/accounts/register", json=body)).status_code == 202
    assert (await client.get("/demo/outbox")).status_code == 404
    assert "/demo/outbox" not in (await client.get("/register/confirm")).text
    ctx.settings.demo = True
    page = (await client.get("/demo/outbox")).text
    assert "try@example.com" in page and "Your faoyam code is" in page
    assert "/demo/outbox" in (await client.get("/register/confirm")).text
