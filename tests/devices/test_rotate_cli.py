"""``faoyam devices rotate-keys``: device passwords move to the newest key (B3, B8)."""

import base64
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from faoyam.devices.models import Device


def _key(b: int) -> str:
    return base64.urlsafe_b64encode(bytes([b]) * 32).decode().rstrip("=")


@pytest.mark.req("B3", "B8")
async def test_rotate_keys_command(tmp_path):
    if os.environ.get("FAOYAM_TEST_DB", "sqlite") != "sqlite":
        pytest.skip("the command runs on its own data directory (SQLite); rotation itself is tested on both")
    from faoyam.core.config import Settings
    from faoyam.core.context import Context
    from faoyam.core.migrate import upgrade_async

    env = {**os.environ, "FAOYAM_DATA_DIR": str(tmp_path), "FAOYAM_DEVICE_KEYS": f"old:{_key(1)}"}
    s = Settings(data_dir=tmp_path, device_keys=f"old:{_key(1)}")
    await upgrade_async(s.db_url)
    ctx = Context.build(s)
    async with ctx.db.transaction() as session:
        d = Device(id="d" * 32, serial_hash="h" * 64, kind="camera", model="IPC-A", abilities=[], safety_code_hash="x",
                   factory_secret_hash="x", credential_generation=0)
        d.password_enc = ctx.secrets.encrypt("cam-pass", context=f"device-password:{d.id}")
        session.add(d)
    await ctx.close()
    env["FAOYAM_DEVICE_KEYS"] = f"new:{_key(2)},old:{_key(1)}"
    out = subprocess.run([sys.executable, "-m", "faoyam", "devices", "rotate-keys"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "rotated 1" in out.stderr
    ctx = Context.build(Settings(data_dir=tmp_path, device_keys=f"new:{_key(2)}"))
    async with ctx.db.session() as session:
        sealed = (await session.execute(select(Device.password_enc))).scalar_one()
    assert sealed.startswith("v1.new.")
    assert ctx.secrets.decrypt(sealed, context=f"device-password:{'d' * 32}") == "cam-pass"
    await ctx.close()
