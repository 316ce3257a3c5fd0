"""Core pieces: settings sources, secret encryption with rotation, problems, blob store, logs."""

import json
import logging

import pytest

from faoyam.core.config import Settings
from faoyam.core.logging import JsonFormatter, redact
from faoyam.core.security import SecretBox, hash_password, verify_password
from faoyam.core.storage import BlobNotFound, LocalBlobStore


def test_settings_from_toml_file_and_environment(tmp_path, monkeypatch):
    cfg = tmp_path / "faoyam.toml"
    cfg.write_text('port = 9001\nmqtt_mode = "external"\nphone_share_countries = ["TH"]\n')
    monkeypatch.setenv("FAOYAM_CONFIG", str(cfg))
    monkeypatch.setenv("FAOYAM_PORT", "9002")
    s = Settings(data_dir=tmp_path)
    assert s.port == 9002  # the environment wins over the file
    assert s.mqtt_mode == "external" and s.phone_share_countries == ["TH"]
    assert s.db_url.startswith("sqlite+aiosqlite:///") and s.db_url.endswith("faoyam.db")


def test_generated_secrets_are_kept_private_and_stable(tmp_path):
    s1 = Settings(data_dir=tmp_path)
    k1 = s1.resolved_secret_key
    assert (tmp_path / "secret.key").stat().st_mode & 0o077 == 0
    assert Settings(data_dir=tmp_path).resolved_secret_key == k1


@pytest.mark.req("B3", "B8")
def test_secret_box_rotates_keys():
    old = SecretBox([("k1", b"\x01" * 32)])
    sealed = old.encrypt("device-pass", context="SN123")
    assert "device-pass" not in sealed
    new = SecretBox([("k2", b"\x02" * 32), ("k1", b"\x01" * 32)])
    assert new.decrypt(sealed, context="SN123") == "device-pass"  # old data stays readable
    assert new.needs_rotation(sealed)
    rotated = new.rotate(sealed, context="SN123")
    assert rotated.startswith("v1.k2.") and not new.needs_rotation(rotated)
    with pytest.raises(Exception):
        new.decrypt(sealed, context="SN999")  # bound to its context: no swapping between devices
    with pytest.raises(ValueError):
        SecretBox([("k2", b"\x02" * 32)]).decrypt(sealed)  # retired key: refused, not garbage


def test_passwords_are_argon2id():
    h = hash_password("violet-harbour-kettle-91")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "violet-harbour-kettle-91")
    assert not verify_password(h, "violet-harbour-kettle-92")
    assert not verify_password(None, "anything")


async def test_blob_store_roundtrip_and_bad_keys(tmp_path):
    store = LocalBlobStore(tmp_path)
    key = await store.put("profile_photo", b"abc")
    assert await store.read(key) == b"abc"
    assert [k async for k in store.keys()] == [key]
    await store.delete(key)
    await store.delete(key)  # idempotent
    with pytest.raises(BlobNotFound):
        await store.read(key)
    for bad in ("../etc/passwd", "profile_photo/../../x", "profile_photo/", "noslash"):
        with pytest.raises(ValueError):
            await store.write(bad, b"x")


def test_log_records_are_redacted_json():
    rec = logging.makeLogRecord({"msg": "mail to ann@example.com from 203.0.113.9 tel +66812345678",
                                 "levelname": "INFO", "name": "t", "peer": "10.1.2.3"})
    out = json.loads(JsonFormatter().format(rec))
    assert "example.com" not in out["msg"] and "203.0.113.9" not in out["msg"] and "812345678" not in out["msg"]
    assert out["peer"] == "[redacted]"
    assert redact("device 7 online") == "device 7 online"
    # Ids are what logs should carry: a hex id full of digits stays whole.
    assert redact("user ef8e3f3e41234567890abcd2 signed in") == "user ef8e3f3e41234567890abcd2 signed in"
    assert redact("call 081 234 5678 now") == "call [redacted] now"


async def test_unknown_route_and_method_are_problems(client):
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "not-found"
    r = await client.put("/api/v1/sessions")
    assert r.status_code == 405 and r.json()["status"] == 405
    r = await client.get("/healthz")
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"


async def test_openapi_documents_the_api(client):
    spec = (await client.get("/api/openapi.json")).json()
    assert "/api/v1/accounts/register" in spec["paths"] and "/api/v1/privacy/export" in spec["paths"]
