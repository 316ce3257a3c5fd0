"""Device data under the privacy engine: declared, exported (R1, R6) and erased (R3, B17)
with the binding, through the generic machinery — nothing written per table."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from faoyam.alarms import service as alarms
from faoyam.core.database import utcnow
from faoyam.devices import service
from faoyam.devices.ports import AlarmReport
from faoyam.devices.schemas import AddDeviceIn, ShareIn
from faoyam.privacy import classification
from tests.conftest import all_blob_bytes, bearer, register
from tests.devices.conftest import activation, make_device, person, png

MARK = {
    "serial": "CANARYSER0K7Q2X",
    "mac": "02:c4:4a:77:19:e3",
    "ip": "49.228.77.13",
    "name": "CanaryCam-K7Q2",
    "channel": "CanaryChannel-K7Q2",
    "ssid": "CanaryNet-K7Q2",
    "config": "CanaryOSD-K7Q2",
    "alarm": "CanaryAlarmPic-K7Q2",
}


def _alarm_jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (9, 9, 9)).save(out, "JPEG", comment=MARK["alarm"].encode())
    return out.getvalue()


async def _database_bytes(ctx) -> bytes:
    url = ctx.db.url
    await ctx.db.engine.dispose()
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-journal"),
                                                  path.with_name(path.name + "-wal")) if p.exists())
    from sqlalchemy.engine import make_url

    u = make_url(url)
    out = subprocess.run(["pg_dump", "-h", u.host or "127.0.0.1", "-p", str(u.port or 5432), "-U", u.username or "postgres",
                          "--data-only", u.database], capture_output=True, check=True,
                         env={**os.environ, "PGPASSWORD": u.password or ""})
    return out.stdout


def _files(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_devices_tables_are_fully_declared():
    assert classification.problems() == []
    result = subprocess.run([str(Path(sys.executable).parent / "faoyam"), "privacy", "check"], capture_output=True, text=True)
    assert result.returncode == 0 and "✗" not in result.stderr, result.stderr


@pytest.mark.req("R1", "R6", "R3", "B17", "B6", "B7", "B10")
async def test_export_then_erase_leaves_no_trace_of_the_device_binding(ctx, client, gw, settings):
    stayer = await person(ctx, "Stayer")
    stayer_dev = await make_device(ctx)
    await service.add_device(ctx, stayer.user_id, AddDeviceIn(serial=stayer_dev.serial, safety_code=stayer_dev.safety_code))
    s = await register(client, ctx, email="leaver@example.com", nickname="Leaver")
    h = bearer(s)
    fd = await make_device(ctx, serial=MARK["serial"], kind="nvr", channels=2)
    gw.connected.add(fd.serial)
    r = await client.post("/api/v1/devices", json={"serial": fd.serial, "safety_code": fd.safety_code, "name": MARK["name"],
                                                   "wifi_ssid": MARK["ssid"], "device_password": "CanaryPw-2026"},
                          headers=h)
    device_id = r.json()["id"]
    await service.activate(ctx, fd.serial, activation(fd, mac=MARK["mac"], config={"osd": MARK["config"]}), MARK["ip"])
    await client.patch(f"/api/v1/devices/{device_id}/channels/1", json={"name": MARK["channel"]}, headers=h)
    await client.put(f"/api/v1/devices/{device_id}/cover", content=png(color=(33, 99, 177)),
                     headers={**h, "content-type": "image/png"})
    cover = (await client.get(f"/api/v1/devices/{device_id}/cover", headers=h)).content
    await alarms.record_device_alarm(ctx, fd.serial, AlarmReport(channel=0, type="human", at=utcnow(), snapshot=_alarm_jpeg()))
    await register(client, ctx, email="friend@example.com", nickname="Friend")
    await service.share_device(ctx, s["user_id"], device_id, ShareIn(contact="friend@example.com", permissions=["live"]))
    await client.post(f"/api/v1/devices/{device_id}/share-links", json={"label": "CanaryLink-K7Q2"}, headers=h)

    # Export (R1, R6): the binding's data is there, secrets only as "(set)" or left out.
    doc = (await client.get("/api/v1/privacy/export", headers=h)).json()
    (dev,) = doc["records"]["devices"]["rows"]
    assert (dev["serial"], dev["mac"], dev["name"], dev["wifi_ssid"]) == (MARK["serial"], MARK["mac"], MARK["name"], MARK["ssid"])
    assert dev["password_enc"] == "(set)" and "credential_hash" not in dev
    assert doc["records"]["device_addresses"]["rows"][0]["ip"] == MARK["ip"]
    assert {r["name"] for r in doc["records"]["device_channels"]["rows"]} >= {MARK["channel"]}
    assert len(doc["records"]["alarm_events"]["rows"]) == 1 and len(doc["records"]["device_shares"]["rows"]) == 1
    assert "token_hash" not in doc["records"]["device_share_links"]["rows"][0]
    assert {b["kind"] for b in doc["blobs"].values()} >= {"device_cover", "alarm_snapshot"}
    assert {"B3", "B6", "B7", "B9", "B11"} <= set(doc["processing"])
    assert stayer_dev.serial not in str(doc)

    markers = {k: v.encode() for k, v in MARK.items()} | {"cover": cover[200:264]}
    before = await _database_bytes(ctx) + await all_blob_bytes(ctx)
    assert {"serial", "mac", "ip", "name", "channel", "ssid", "config", "alarm", "cover"} <= {
        k for k, m in markers.items() if m in before}

    assert (await client.delete("/api/v1/me", headers=h)).status_code == 200

    for handler in logging.getLogger().handlers:
        handler.flush()
    after = await _database_bytes(ctx)
    leftovers = {k for k, m in markers.items() if m in after}
    assert leftovers == set(), f"database still holds {leftovers}"
    after_blobs = await all_blob_bytes(ctx)
    assert {k for k, m in markers.items() if m in after_blobs} == set()
    assert {k for k, m in markers.items() if m in _files(settings.log_path)} == set()
    # The unit is back in factory state, its credentials revoked; the stayer's device is untouched.
    assert await service.credentials_revoked(ctx, fd.serial) is True
    async with ctx.db.session() as sess:
        row = await service.find_by_serial(sess, ctx, fd.serial)
        assert row is not None and row.owner_id is None and row.serial is None
    assert [d.id for d in await service.list_devices(ctx, stayer.user_id)] and stayer_dev.serial.encode() in after
