"""The canary: a person whose every value is a unique marker uses the service, leaves, and
no marker remains anywhere — database file (or dump), blob store, logs (B17, R3).

A second person who stays proves the scan finds what is there.
"""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

from faoyam.core.database import Base
from faoyam.devices.ports import ActivationReport, FactoryDevice
from faoyam.devices.service import activate, factory_register
from tests.conftest import STRONG, all_blob_bytes, bearer, latest_code, register

CANARY = {
    "email": "canary.k7q2@example.org",
    "new_email": "canary.moved.k7q2@example.org",
    "phone": "+66819990147",
    "nickname": "CanaryNick-K7Q2",
    "nickname2": "CanaryRenamed-K7Q2",
    "ip": "203.0.113.77",
    "os": "CanaryOS-K7Q2",
    "model": "CanaryPhone-K7Q2",
    "install": "canary-install-K7Q2",
    "serial": "CNRYK7Q2SERIAL01",
    "mac": "c4:7a:92:4b:11:07",
    "device_ip": "198.51.100.23",
    "device_name": "CanaryCam-K7Q2",
    "ssid": "CanaryWifi-K7Q2",
}
STAYER = {"email": "stayer.p3z9@example.org", "nickname": "StayerNick-P3Z9"}


def _photo_bytes() -> bytes:
    img = Image.effect_noise((96, 96), 80).convert("RGB")
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()


async def _database_bytes(ctx) -> bytes:
    url = ctx.db.url
    await ctx.db.engine.dispose()  # flush and release the file
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        data = path.read_bytes()
        for extra in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-journal")):
            if extra.exists():
                data += extra.read_bytes()
        return data
    from sqlalchemy.engine import make_url

    u = make_url(url)
    out = subprocess.run(["pg_dump", "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
                          "--data-only", u.database], capture_output=True, check=True,
                         env={**os.environ, "PGPASSWORD": u.password or ""})
    return out.stdout


def _tree_bytes(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def _hits(haystack: bytes, markers: dict[str, bytes]) -> list[str]:
    return [name for name, m in markers.items() if m in haystack]


@pytest.mark.req("B17", "R3", "B1a", "B1b", "B2", "B3", "B6", "B9")
async def test_canary_leaves_no_trace(app, ctx):
    # The stayer uses the service too (from another address), so the scan has something to find.
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as other:
        stayer = await register(other, ctx, email=STAYER["email"], nickname=STAYER["nickname"])
    transport = httpx.ASGITransport(app=app, client=(CANARY["ip"], 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        term = {"os": CANARY["os"], "model": CANARY["model"], "install_id": CANARY["install"],
                "gps_permission": True, "gps_lat": 13.7563, "gps_lon": 100.5018}
        s = await register(client, ctx, email=CANARY["email"], nickname=CANARY["nickname"], terminal=term)
        h = bearer(s)
        # Exercise the features: photo, rename, phone + email change, sign-in, export.
        r = await client.put("/api/v1/me/photo", content=_photo_bytes(), headers={**h, "content-type": "image/png"})
        assert r.status_code == 204
        stored_photo = (await client.get("/api/v1/me/photo", headers=h)).content
        await client.patch("/api/v1/me", json={"nickname": CANARY["nickname2"]}, headers=h)
        assert (await client.post("/api/v1/me/contact", json={"kind": "phone", "value": CANARY["phone"]}, headers=h)).status_code == 202
        code = await latest_code(ctx, CANARY["phone"])
        assert (await client.post("/api/v1/me/contact/phone/confirm", json={"code": code}, headers=h)).status_code == 200
        assert (await client.post("/api/v1/me/contact", json={"kind": "email", "value": CANARY["new_email"]}, headers=h)).status_code == 202
        code = await latest_code(ctx, CANARY["new_email"])
        assert (await client.post("/api/v1/me/contact/email/confirm", json={"code": code}, headers=h)).status_code == 200
        r = await client.post("/api/v1/sessions", json={"login": CANARY["new_email"], "password": STRONG, "terminal": term})
        h = bearer(r.json())
        # A device: added by serial, activated (MAC, IP), named, shared with the stayer.
        await factory_register(ctx, FactoryDevice(serial=CANARY["serial"], kind="camera", model="IPC-C22", channels=1,
                                                  safety_code="K7Q2SC", factory_secret="factory-secret-k7q2"))
        r = await client.post("/api/v1/devices", headers=h, json={"serial": CANARY["serial"], "safety_code": "K7Q2SC",
                                                                  "name": CANARY["device_name"], "wifi_ssid": CANARY["ssid"],
                                                                  "time_zone": "Asia/Bangkok"})
        assert r.status_code == 201, r.text
        await activate(ctx, CANARY["serial"], ActivationReport(mac=CANARY["mac"], model="IPC-C22", firmware="2.8",
                                                               channels=[{"index": 0, "name": "Gate"}]),
                       CANARY["device_ip"])
        share = await client.post(f"/api/v1/devices/{r.json()['id']}/shares", headers=h,
                                  json={"contact": STAYER["email"], "permissions": ["live"]})
        assert share.status_code in (200, 201), share.text
        await client.post("/api/v1/sessions", json={"login": CANARY["new_email"], "password": "wrong-wrong-wrong"})
        export = (await client.get("/api/v1/privacy/export", headers=h)).json()
        assert export["subject"]["emails"] == [CANARY["new_email"]]
        assert any(r["nickname"] == CANARY["nickname2"] for r in export["records"]["users"]["rows"])
        assert len(export["blobs"]) >= 1

        markers = {k: v.encode() for k, v in CANARY.items()}
        markers["photo"] = stored_photo[200:264]
        # Before erasure the markers are there: the scan works.
        before = await _database_bytes(ctx) + await all_blob_bytes(ctx)
        assert {"email", "new_email", "phone", "nickname2", "ip", "os", "install", "photo", "serial", "mac", "device_ip",
                "device_name", "ssid"} <= set(_hits(before, markers))

        r = await client.delete("/api/v1/me", headers=h)
        assert r.status_code == 200, r.text

    # Let the log handlers flush what they have.
    import logging

    for handler in logging.getLogger().handlers:
        handler.flush()
    after_db = await _database_bytes(ctx)
    after_blobs = await all_blob_bytes(ctx)
    after_logs = _tree_bytes(ctx.settings.log_path)
    assert after_logs, "the service wrote no logs: the scan would prove nothing"
    # The account's id never reaches a log line; its keyed pseudonym does (request lines).
    from faoyam.core.logging import pseudonym

    assert s["user_id"].encode() not in after_logs, "logs: the account id"
    assert pseudonym(s["user_id"]).encode() in after_logs
    assert _hits(after_db, markers) == [], "database"
    assert _hits(after_blobs, markers) == [], "blob store"
    assert _hits(after_logs, markers) == [], "logs"
    # The stayer is untouched.
    assert STAYER["email"].encode() in after_db and STAYER["nickname"].encode() in after_db
    assert stayer["user_id"].encode() in after_db
    assert {t.name for t in Base.metadata.sorted_tables}  # tables exist: the dump was not empty
