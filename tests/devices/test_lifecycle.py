"""Adding, reading, naming, covers, passwords, time zone and deleting devices (B3, B7, B8, B10)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from faoyam.devices import service
from faoyam.devices.models import Channel, Device, Share
from faoyam.devices.ports import CommandTimeout
from faoyam.privacy.models import ErasureRecord
from tests.devices.conftest import activation, grant, make_device, owned, person, png

ADD = "/api/v1/devices"


async def _row(ctx, device_id: str) -> Device:
    async with ctx.db.session() as s:
        return await s.get(Device, device_id)


@pytest.mark.req("B3")
async def test_add_device_binds_it_with_everything_b3_names(ctx, client, gw):
    owner = await person(ctx)
    fd = await make_device(ctx, code="K7Q2LM")
    gw.connected.add(fd.serial)
    body = {"serial": f" {fd.serial.lower()} ", "safety_code": "k7q2lm", "model": fd.model, "name": "Front door",
            "wifi_ssid": "HomeNet", "wifi_password": "wifi-secret-K7Q2", "device_password": "DevPass2026",
            "time_zone": "Asia/Bangkok", "dst": False}
    r = await client.post(ADD, json=body, headers=owner.h)
    assert r.status_code == 201, r.text
    d = r.json()
    assert d["serial"] == fd.serial and d["name"] == "Front door" and d["role"] == "owner" and d["shared"] is False
    assert d["wifi_ssid"] == "HomeNet" and d["time_zone"] == "Asia/Bangkok" and d["dst"] is False
    assert d["has_password"] is True and "device_password" not in d and [c["index"] for c in d["channels"]] == [0]
    # The Wi-Fi password went to the device, and only there.
    assert gw.calls == [(fd.serial, "provision_wifi", {"ssid": "HomeNet", "password": "wifi-secret-K7Q2"})]
    row = await _row(ctx, d["id"])
    assert row.password_enc.startswith("v1.") and "DevPass2026" not in row.password_enc
    assert await service.device_password(ctx, d["id"]) == "DevPass2026"


@pytest.mark.req("B3")
async def test_wifi_password_is_never_stored_or_logged(ctx, client, gw, settings):
    owner = await person(ctx)
    fd = await make_device(ctx)
    gw.connected.add(fd.serial)
    marker = "WifiMarker-Z8X1-secret"
    r = await client.post(ADD, json={"serial": fd.serial, "safety_code": fd.safety_code, "wifi_ssid": "Net",
                                     "wifi_password": marker}, headers=owner.h)
    assert r.status_code == 201
    r = await client.put(f"{ADD}/{r.json()['id']}/wifi", json={"ssid": "Net2", "password": marker}, headers=owner.h)
    assert r.status_code == 204
    # A refused request must not echo it either.
    r = await client.post(ADD, json={"serial": fd.serial, "safety_code": fd.safety_code, "wifi_password": marker,
                                     "surprise": 1}, headers=owner.h)
    assert r.status_code == 422 and marker not in r.text
    await ctx.db.engine.dispose()
    db_file = Path(ctx.db.url.split("///", 1)[1]) if ctx.db.url.startswith("sqlite") else None
    haystacks = [p.read_bytes() for p in Path(settings.data_dir).rglob("*") if p.is_file()]
    if db_file is None:  # PostgreSQL: read every table instead of the file
        haystacks.append(await _pg_text(ctx))
    assert all(marker.encode() not in h for h in haystacks)
    assert [n for _, n, _ in gw.calls] == ["provision_wifi", "provision_wifi"]


async def _pg_text(ctx) -> bytes:
    from faoyam.core.database import Base

    out = []
    async with ctx.db.session() as s:
        for t in Base.metadata.sorted_tables:
            out += [repr(tuple(r)) for r in (await s.execute(select(t))).all()]
    return "\n".join(out).encode()


@pytest.mark.req("B3")
@pytest.mark.parametrize("body, status, code", [
    ({"serial": "NOSUCHSERIAL1", "safety_code": "ABC123"}, 404, "unknown-serial"),
    ({"serial": "bad serial!", "safety_code": "ABC123"}, 422, "invalid-serial"),
    ({"serial": "FYKNOWN0001", "safety_code": "WRONG1"}, 403, "wrong-safety-code"),
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "model": "Other-Model"}, 422, "model-mismatch"),
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "time_zone": "Mars/Olympus"}, 422, "invalid-time-zone"),
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "time_zone": "../../etc/passwd"}, 422, "invalid-time-zone"),
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "name": "x" * 65}, 422, "invalid-name"),
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "name": "bad\x00name"}, 422, "invalid-name"),
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "wifi_password": "password123"}, 422, "ssid-required"),
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "wifi_ssid": "N", "wifi_password": "short"}, 422,
     "invalid-wifi-password"),
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "device_password": "weak"}, 422, "invalid-device-password"),
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "colour": "red"}, 422, "invalid"),
    ({"serial": "FYKNOWN0001"}, 422, "invalid"),
    # Wi-Fi needs the device reachable; without a gateway nothing is written.
    ({"serial": "FYKNOWN0001", "safety_code": "ABC123", "wifi_ssid": "N", "wifi_password": "password123"}, 409,
     "device-offline"),
])
async def test_add_device_refuses_bad_input_and_writes_nothing(ctx, client, body, status, code):
    owner = await person(ctx)
    await make_device(ctx, serial="FYKNOWN0001", code="ABC123")
    r = await client.post(ADD, json=body, headers=owner.h)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json" and r.json()["code"] == code
    async with ctx.db.session() as s:
        assert (await s.execute(select(Device).where(Device.owner_id.is_not(None)))).first() is None
    assert (await client.get(ADD, headers=owner.h)).json() == []


@pytest.mark.req("B3")
async def test_add_device_ownership_answers(ctx, client):
    alice, bob = await person(ctx), await person(ctx)
    fd = await make_device(ctx)
    body = {"serial": fd.serial, "safety_code": fd.safety_code}
    assert (await client.post(ADD, json=body, headers=alice.h)).status_code == 201
    r = await client.post(ADD, json=body, headers=alice.h)
    assert (r.status_code, r.json()["code"]) == (409, "already-yours")
    r = await client.post(ADD, json=body, headers=bob.h)
    assert (r.status_code, r.json()["code"]) == (409, "bound-elsewhere")
    # Without the right code, Bob does not even learn that the device is bound.
    r = await client.post(ADD, json={**body, "safety_code": "NOTIT1"}, headers=bob.h)
    assert (r.status_code, r.json()["code"]) == (403, "wrong-safety-code")
    assert (await client.post(ADD, json=body)).status_code == 401


@pytest.mark.req("B3", "SEC1")
async def test_guessing_safety_codes_is_rate_limited(ctx, client):
    owner = await person(ctx)
    fd = await make_device(ctx)
    codes = [(await client.post(ADD, json={"serial": fd.serial, "safety_code": f"GUESS{i:02d}"}, headers=owner.h)).status_code
             for i in range(11)]
    assert codes[:10] == [403] * 10 and codes[10] == 429
    # Even the right code waits now: the limit protects the label, not just one guess.
    r = await client.post(ADD, json={"serial": fd.serial, "safety_code": fd.safety_code}, headers=owner.h)
    assert r.status_code == 429 and "retry-after" in r.headers


@pytest.mark.req("B3", "B6", "B7")
async def test_list_and_get_show_status_cover_and_channels(ctx, client, gw):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner, kind="nvr", channels=3)
    await service.activate(ctx, fd.serial, activation(fd), "49.228.77.13")
    assert (await client.put(f"{ADD}/{device_id}/cover", content=png(), headers={**owner.h, "content-type": "image/png"})
            ).status_code == 204
    (d,) = (await client.get(ADD, headers=owner.h)).json()
    assert d["id"] == device_id and d["online"] is True and d["has_cover"] is True and d["kind"] == "nvr"
    assert [c["name"] for c in d["channels"]] == ["Channel 1", "Channel 2", "Channel 3"]
    assert d["ip"] == "49.228.77.13" and d["country"] == "TH" and d["mac"] == "02:11:22:33:44:55"
    one = (await client.get(f"{ADD}/{device_id}", headers=owner.h)).json()
    assert one == d


@pytest.mark.req("B7", "B3")
async def test_rename_device_and_channel_and_set_time_zone(ctx, client, gw):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner, kind="nvr", channels=2)
    gw.connected.add(fd.serial)
    r = await client.patch(f"{ADD}/{device_id}", json={"name": "  Garage   NVR ", "time_zone": "Asia/Ho_Chi_Minh",
                                                        "dst": True}, headers=owner.h)
    assert r.status_code == 200 and r.json()["name"] == "Garage NVR" and r.json()["time_zone"] == "Asia/Ho_Chi_Minh"
    assert gw.calls[-1] == (fd.serial, "set_config", {"time_zone": "Asia/Ho_Chi_Minh", "dst": True})
    r = await client.patch(f"{ADD}/{device_id}/channels/1", json={"name": "Driveway"}, headers=owner.h)
    assert [c["name"] for c in r.json()["channels"]] == [None, "Driveway"]
    for body, code in [({}, "nothing-to-change"), ({"time_zone": "Nowhere/City"}, "invalid-time-zone"),
                       ({"name": ""}, "invalid-name"), ({"dst": None}, "invalid"), ({"owner_id": "x"}, "invalid")]:
        r = await client.patch(f"{ADD}/{device_id}", json=body, headers=owner.h)
        assert (r.status_code, r.json()["code"]) == (422, code), body
    r = await client.patch(f"{ADD}/{device_id}/channels/7", json={"name": "Nope"}, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (404, "channel-not-found")
    assert (await _row(ctx, device_id)).name == "Garage NVR"


@pytest.mark.req("B7")
async def test_covers_per_device_and_channel(ctx, client):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner, kind="nvr", channels=2)
    h = {**owner.h, "content-type": "image/png"}
    # A picture with metadata: what is stored is re-encoded pixels, nothing else.
    img = Image.new("RGB", (2000, 1000), (5, 6, 7))
    exif = Image.Exif()
    exif[0x010F] = "CoverCameraMaker-Q9"
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert (await client.put(f"{ADD}/{device_id}/cover", content=buf.getvalue(),
                             headers={**owner.h, "content-type": "image/jpeg"})).status_code == 204
    r = await client.get(f"{ADD}/{device_id}/cover", headers=owner.h)
    assert r.status_code == 200 and r.content[:2] == b"\xff\xd8" and b"CoverCameraMaker-Q9" not in r.content
    assert max(Image.open(io.BytesIO(r.content)).size) <= service.COVER_MAX_SIDE
    first_key = (await _row(ctx, device_id)).cover_key
    assert (await client.put(f"{ADD}/{device_id}/cover", content=png(), headers=h)).status_code == 204
    assert [k async for k in ctx.blobs.keys("device_cover/")] == [(await _row(ctx, device_id)).cover_key] != [first_key]
    # Per channel, through multipart too.
    r = await client.put(f"{ADD}/{device_id}/channels/1/cover", files={"file": ("c.png", png(), "image/png")}, headers=owner.h)
    assert r.status_code == 204
    assert (await client.get(f"{ADD}/{device_id}/channels/1/cover", headers=owner.h)).status_code == 200
    r = await client.get(f"{ADD}/{device_id}/channels/0/cover", headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (404, "no-cover")
    assert (await client.delete(f"{ADD}/{device_id}/channels/1/cover", headers=owner.h)).status_code == 204
    assert (await client.delete(f"{ADD}/{device_id}/cover", headers=owner.h)).status_code == 204
    assert [k async for k in ctx.blobs.keys("device_cover/")] == []


@pytest.mark.req("B7")
@pytest.mark.parametrize("content, ctype, status", [
    (b"%PDF-1.4 not a picture", "image/png", 415),
    (b"GIF89a" + b"\0" * 20, "image/gif", 415),
    (b"plain text", "text/plain", 415),
])
async def test_bad_covers_are_refused_and_nothing_is_kept(ctx, client, content, ctype, status):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    r = await client.put(f"{ADD}/{device_id}/cover", content=content, headers={**owner.h, "content-type": ctype})
    assert r.status_code == status and r.headers["content-type"] == "application/problem+json"
    assert [k async for k in ctx.blobs.keys("device_cover/")] == []


@pytest.mark.req("B7")
async def test_oversized_cover_is_refused(ctx, client, settings):
    owner = await person(ctx)
    device_id, _ = await owned(ctx, client, owner)
    big = b"\x89PNG" + b"\0" * (settings.max_photo_bytes + 70 * 1024)
    r = await client.put(f"{ADD}/{device_id}/cover", content=big, headers={**owner.h, "content-type": "image/png"})
    assert r.status_code == 413
    assert (await _row(ctx, device_id)).cover_key is None


@pytest.mark.req("B8")
async def test_device_password_set_and_reset_through_the_device(ctx, client, gw):
    owner = await person(ctx)
    device_id, fd = await owned(ctx, client, owner)
    url = f"{ADD}/{device_id}/password"
    # Offline: refused, nothing stored.
    r = await client.put(url, json={"password": "NewPass2026"}, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (409, "device-offline")
    assert (await _row(ctx, device_id)).password_enc is None
    gw.connected.add(fd.serial)
    assert (await client.put(url, json={"password": "NewPass2026"}, headers=owner.h)).status_code == 204
    assert gw.calls[-1] == (fd.serial, "set_password", {"password": "NewPass2026"})
    assert await service.device_password(ctx, device_id) == "NewPass2026"
    r = await client.put(url, json={"password": "short"}, headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (422, "invalid-device-password")
    # Reset: the device picks a new password and tells us, or we forget the old one.
    gw.replies["reset_password"] = {"password": "Reset-Temp-77"}
    assert (await client.post(f"{url}/reset", headers=owner.h)).status_code == 204
    assert await service.device_password(ctx, device_id) == "Reset-Temp-77"
    gw.replies["reset_password"] = {"ok": True}
    assert (await client.post(f"{url}/reset", headers=owner.h)).status_code == 204
    assert await service.device_password(ctx, device_id) is None
    gw.replies["reset_password"] = CommandTimeout()
    r = await client.post(f"{url}/reset", headers=owner.h)
    assert (r.status_code, r.json()["code"]) == (504, "device-timeout")


@pytest.mark.req("B3", "B8")
async def test_rotating_device_keys_reencrypts_passwords(ctx, client, settings):
    import secrets as pysecrets

    from faoyam.core.security import SecretBox

    owner = await person(ctx)
    r = await client.post(ADD, json={"serial": (fd := await make_device(ctx)).serial, "safety_code": fd.safety_code,
                                     "device_password": "Rotate-Me-2026"}, headers=owner.h)
    device_id = r.json()["id"]
    old = (await _row(ctx, device_id)).password_enc
    assert old.startswith("v1.k1.")
    # The operator puts a new key first and keeps the old one readable.
    new_key = ("k2", pysecrets.token_bytes(32))
    ctx.secrets = SecretBox([new_key, *settings.resolved_device_keys])
    assert await service.rotate_device_secrets(ctx) == {"rotated": 1, "unreadable": 0}
    fresh = (await _row(ctx, device_id)).password_enc
    assert fresh.startswith("v1.k2.") and await service.device_password(ctx, device_id) == "Rotate-Me-2026"
    assert await service.rotate_device_secrets(ctx) == {"rotated": 0, "unreadable": 0}
    # With the old key gone the new ciphertext still reads; a stale one would not.
    ctx.secrets = SecretBox([new_key])
    assert await service.device_password(ctx, device_id) == "Rotate-Me-2026"
    with pytest.raises(ValueError):
        ctx.secrets.decrypt(old, context=f"device-password:{device_id}")


@pytest.mark.req("B3", "B10")
async def test_doorbell_brings_its_chime_and_takes_it_away(ctx, client, gw):
    owner = await person(ctx)
    bell = await make_device(ctx, kind="doorbell", abilities=("Doorbell",))
    chime = await make_device(ctx, kind="chime", paired_with=bell.serial)
    r = await client.post(ADD, json={"serial": bell.serial, "safety_code": bell.safety_code}, headers=owner.h)
    bell_id = r.json()["id"]
    devices = {d["kind"]: d for d in (await client.get(ADD, headers=owner.h)).json()}
    assert set(devices) == {"doorbell", "chime"}
    chime_id = devices["chime"]["id"]
    assert devices["doorbell"]["accessory_ids"] == [chime_id] and devices["chime"]["parent_id"] == bell_id
    # The chime's serial comes from the chime itself when it speaks.
    assert devices["chime"]["serial"] is None
    creds = await service.activate(ctx, chime.serial, activation(chime), "8.8.8.8")
    assert (await _row(ctx, chime_id)).serial == chime.serial
    # Someone else cannot take the chime away from its doorbell's owner.
    other = await person(ctx)
    r = await client.post(ADD, json={"serial": chime.serial, "safety_code": chime.safety_code}, headers=other.h)
    assert (r.status_code, r.json()["code"]) == (409, "bound-elsewhere")
    gw.connected.update({bell.serial, chime.serial})
    assert (await client.delete(f"{ADD}/{bell_id}", headers=owner.h)).status_code == 204
    assert (await client.get(ADD, headers=owner.h)).json() == []
    assert sorted(gw.disconnected) == sorted([bell.serial, chime.serial])
    assert await service.authenticate_device(ctx, creds.username, creds.password) is None


@pytest.mark.req("B10")
async def test_delete_erases_the_binding_generically_and_the_unit_can_be_added_again(ctx, client, gw):
    owner, friend, newcomer = await person(ctx), await person(ctx), await person(ctx)
    device_id, fd = await owned(ctx, client, owner, kind="nvr", channels=2)
    await service.activate(ctx, fd.serial, activation(fd), "49.228.77.13")
    await client.put(f"{ADD}/{device_id}/cover", content=png(), headers={**owner.h, "content-type": "image/png"})
    await client.put(f"{ADD}/{device_id}/channels/0/cover", content=png(), headers={**owner.h, "content-type": "image/png"})
    await client.patch(f"{ADD}/{device_id}/channels/0", json={"name": "Back yard"}, headers=owner.h)
    await grant(ctx, device_id, friend, ["live"])
    await client.post(f"{ADD}/{device_id}/share-links", json={"hours": 2}, headers=owner.h)
    assert (await client.delete(f"{ADD}/{device_id}", headers=owner.h)).status_code == 204
    assert (await client.get(f"{ADD}/{device_id}", headers=owner.h)).status_code == 404
    row = await _row(ctx, device_id)
    # Factory state: the factory facts stay, every column of the binding is empty.
    assert row.kind == "nvr" and row.serial_hash and row.safety_code_hash
    assert (row.owner_id, row.serial, row.name, row.cover_key, row.mac, row.config, row.activated_at, row.online) == (
        None, None, None, None, None, None, None, False)
    async with ctx.db.session() as s:
        assert set((await s.execute(select(Channel.name).where(Channel.device_id == device_id))).scalars()) == {None}
        assert (await s.execute(select(Share))).first() is None
        rec = (await s.execute(select(ErasureRecord).where(ErasureRecord.reason == "device_removed"))).scalar_one()
    assert rec.counts["devices"] == 1 and rec.counts["device_shares"] == 1 and rec.counts["device_share_links"] == 1
    assert rec.counts["device_addresses"] == 1 and rec.blobs == 2
    assert [k async for k in ctx.blobs.keys("device_cover/")] == []
    # Anyone with the label can add it now, as a new device.
    r = await client.post(ADD, json={"serial": fd.serial, "safety_code": fd.safety_code}, headers=newcomer.h)
    assert r.status_code == 201 and r.json()["name"] == fd.model and r.json()["channels"][0]["name"] is None
