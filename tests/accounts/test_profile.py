"""Profile changes (B1b, R2), the optional photo (B1a), passwords, deregistration (B17)."""

import io

import pytest
from PIL import Image
from sqlalchemy import select

from faoyam.accounts.models import User
from tests.conftest import STRONG, bearer, latest_code, register

NEW_PASSWORD = "marble-lantern-orbit-77"


def jpeg_with_gps(size=(1200, 900)) -> bytes:
    img = Image.new("RGB", size, (30, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "CameraMakerMarker"  # Make
    gps = {1: "N", 2: (13.0, 45.0, 0.0), 3: "E", 4: (100.0, 30.0, 0.0)}
    exif[0x8825] = gps
    out = io.BytesIO()
    img.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


@pytest.mark.req("B1a", "B1b")
async def test_photo_is_reencoded_shrunk_and_stripped_of_metadata(client, ctx):
    s = await register(client, ctx)
    raw = jpeg_with_gps()
    assert b"CameraMakerMarker" in raw
    r = await client.put("/api/v1/me/photo", content=raw, headers={**bearer(s), "content-type": "image/jpeg"})
    assert r.status_code == 204, r.text
    got = (await client.get("/api/v1/me/photo", headers=bearer(s))).content
    assert b"CameraMakerMarker" not in got
    img = Image.open(io.BytesIO(got))
    assert img.format == "JPEG" and max(img.size) == ctx.settings.photo_max_side
    assert not img.getexif()
    # Replacing the photo deletes the old file (the new value replaces the old one, B1b).
    keys_before = [k async for k in ctx.blobs.keys("profile_photo/")]
    png = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 0, 0)).save(png, "PNG")
    files = {"file": ("me.png", png.getvalue(), "image/png")}
    assert (await client.put("/api/v1/me/photo", files=files, headers=bearer(s))).status_code == 204
    keys_after = [k async for k in ctx.blobs.keys("profile_photo/")]
    assert len(keys_before) == len(keys_after) == 1 and keys_before != keys_after
    assert (await client.delete("/api/v1/me/photo", headers=bearer(s))).status_code == 204
    assert [k async for k in ctx.blobs.keys("profile_photo/")] == []
    assert (await client.get("/api/v1/me", headers=bearer(s))).json()["has_photo"] is False


@pytest.mark.req("B1a")
@pytest.mark.parametrize(
    ("content", "ctype", "status", "code"),
    [
        (b"%PDF-1.4 not a picture", "image/jpeg", 415, "photo-format"),
        (b"GIF89a" + b"\x00" * 20, "image/gif", 415, "photo-format"),
        (b"\xff\xd8\xff" + b"\x00" * 100, "image/jpeg", 415, "photo-format"),
        (b"hello", "text/plain", 415, "photo-format"),
        (b"\xff" * (6 * 1024 * 1024), "image/jpeg", 413, "too-large"),
    ],
)
async def test_bad_photos_are_refused_and_change_nothing(client, ctx, content, ctype, status, code):
    s = await register(client, ctx)
    r = await client.put("/api/v1/me/photo", content=content, headers={**bearer(s), "content-type": ctype})
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert [k async for k in ctx.blobs.keys("profile_photo/")] == []
    assert (await client.get("/api/v1/me", headers=bearer(s))).json()["has_photo"] is False


@pytest.mark.req("B1a")
async def test_no_photo_changes_nothing(client, ctx):
    """The photo is voluntary: an account without one can do everything."""
    s = await register(client, ctx)
    me = (await client.get("/api/v1/me", headers=bearer(s))).json()
    assert me["has_photo"] is False
    assert (await client.get("/api/v1/me/photo", headers=bearer(s))).status_code == 404
    assert (await client.patch("/api/v1/me", json={"nickname": "Ann"}, headers=bearer(s))).status_code == 200
    assert (await client.get("/api/v1/privacy/export", headers=bearer(s))).status_code == 200


@pytest.mark.req("B1b", "R0", "R2")
async def test_change_nickname_language_country(client, ctx):
    s = await register(client, ctx)
    r = await client.patch("/api/v1/me", json={"nickname": "  New   Name ", "language": "th", "country": "vn"}, headers=bearer(s))
    assert r.status_code == 200
    assert r.json()["nickname"] == "New Name" and r.json()["language"] == "th" and r.json()["country"] == "VN"
    bad = await client.patch("/api/v1/me", json={"language": "xx"}, headers=bearer(s))
    assert bad.status_code == 422 and bad.json()["code"] == "unknown-language"
    bad = await client.patch("/api/v1/me", json={"country": "ZZ"}, headers=bearer(s))
    assert bad.status_code == 422 and bad.json()["code"] == "unknown-country"


@pytest.mark.req("B1b", "R2", "R8")
async def test_new_email_is_verified_first_and_replaces_the_old(client, ctx):
    s = await register(client, ctx, email="old@example.com")
    r = await client.post("/api/v1/me/contact", json={"kind": "email", "value": "New@Example.com"}, headers=bearer(s))
    assert r.status_code == 202, r.text
    # Nothing changed yet.
    assert (await client.get("/api/v1/me", headers=bearer(s))).json()["email"] == "old@example.com"
    wrong = await client.post("/api/v1/me/contact/email/confirm", json={"code": "000000"}, headers=bearer(s))
    code = await latest_code(ctx, "new@example.com")
    if code != "000000":
        assert wrong.status_code == 422
    r = await client.post("/api/v1/me/contact/email/confirm", json={"code": code}, headers=bearer(s))
    assert r.status_code == 200 and r.json()["email"] == "new@example.com"
    async with ctx.db.session() as session:
        emails = list((await session.execute(select(User.email))).scalars())
    assert emails == ["new@example.com"]
    # The old address no longer signs in; the new one does.
    assert (await client.post("/api/v1/sessions", json={"login": "old@example.com", "password": STRONG})).status_code == 401
    assert (await client.post("/api/v1/sessions", json={"login": "new@example.com", "password": STRONG})).status_code == 201


@pytest.mark.req("B1b")
async def test_change_phone_and_refuse_taken_address(client, ctx):
    s = await register(client, ctx, email="a@example.com")
    await register(client, ctx, email="b@example.com")
    r = await client.post("/api/v1/me/contact", json={"kind": "email", "value": "b@example.com"}, headers=bearer(s))
    assert r.status_code == 409 and r.json()["code"] == "address-taken"
    r = await client.post("/api/v1/me/contact", json={"kind": "phone", "value": "0891234567"}, headers=bearer(s))
    assert r.status_code == 202
    code = await latest_code(ctx, "+66891234567")
    r = await client.post("/api/v1/me/contact/phone/confirm", json={"code": code}, headers=bearer(s))
    assert r.status_code == 200 and r.json()["phone"] == "+66891234567"


async def test_change_password_signs_out_other_terminals(client, ctx):
    s1 = await register(client, ctx)
    s2 = (await client.post("/api/v1/sessions", json={"login": "user@example.com", "password": STRONG})).json()
    weak = await client.post("/api/v1/me/password", json={"current_password": STRONG, "new_password": "abc12345"}, headers=bearer(s1))
    assert weak.status_code == 422 and weak.json()["code"] == "weak-password"
    bad = await client.post("/api/v1/me/password", json={"current_password": "nope", "new_password": NEW_PASSWORD}, headers=bearer(s1))
    assert bad.status_code == 401
    ok = await client.post("/api/v1/me/password", json={"current_password": STRONG, "new_password": NEW_PASSWORD}, headers=bearer(s1))
    assert ok.status_code == 204
    assert (await client.get("/api/v1/me", headers=bearer(s1))).status_code == 200
    assert (await client.get("/api/v1/me", headers=bearer(s2))).status_code == 401
    assert (await client.post("/api/v1/sessions", json={"login": "user@example.com", "password": NEW_PASSWORD})).status_code == 201


async def test_password_reset_by_code(client, ctx):
    s = await register(client, ctx, email="forgot@example.com")
    r = await client.post("/api/v1/password-reset", json={"login": "forgot@example.com"})
    assert r.status_code == 202
    r_unknown = await client.post("/api/v1/password-reset", json={"login": "ghost@example.com"})
    assert r_unknown.status_code == 202 and r_unknown.json() == r.json()  # no account enumeration
    assert await ctx.messenger.outbox("ghost@example.com") == []
    code = await latest_code(ctx, "forgot@example.com")
    body = {"login": "forgot@example.com", "code": code, "new_password": NEW_PASSWORD}
    assert (await client.post("/api/v1/password-reset/confirm", json=body)).status_code == 204
    assert (await client.post("/api/v1/password-reset/confirm", json=body)).status_code == 410  # no replay
    assert (await client.get("/api/v1/me", headers=bearer(s))).status_code == 401  # sessions ended
    assert (await client.post("/api/v1/sessions", json={"login": "forgot@example.com", "password": NEW_PASSWORD})).status_code == 201


@pytest.mark.req("B17", "R3")
async def test_deregistration_erases_the_account(client, ctx):
    s = await register(client, ctx, email="bye@example.com")
    r = await client.delete("/api/v1/me", headers=bearer(s))
    assert r.status_code == 200 and r.json()["deleted"] is True and r.json()["rows"] >= 3
    assert (await client.get("/api/v1/me", headers=bearer(s))).status_code == 401
    assert (await client.post("/api/v1/sessions", json={"login": "bye@example.com", "password": STRONG})).status_code == 401
    async with ctx.db.session() as session:
        assert list((await session.execute(select(User))).scalars()) == []
    # The same address can register again afterwards: nothing of the old account blocks it.
    await register(client, ctx, email="bye@example.com")
