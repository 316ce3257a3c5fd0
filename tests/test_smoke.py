import pytest

from tests.conftest import bearer, register


@pytest.mark.req("B1a")
async def test_register_and_read_profile(client, ctx):
    s = await register(client, ctx)
    r = await client.get("/api/v1/me", headers=bearer(s))
    assert r.status_code == 200, r.text
    assert r.json()["email"] == "user@example.com"
    assert r.json()["has_photo"] is False
