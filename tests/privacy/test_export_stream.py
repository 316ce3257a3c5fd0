"""The export streams (R1, R6): correct ZIP and JSON, and memory that does not grow with
the account's blobs."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tracemalloc
import zipfile

import pytest

from faoyam.core.database import utcnow
from faoyam.core.models import OutboundMessage
from faoyam.privacy.export import export_json, export_zip, write_zip_file
from faoyam.privacy.subjects import Subject
from tests.conftest import bearer, register

MB = 1 << 20


async def _chunks(size: int, seed: int):
    """``size`` pseudo-random bytes, made a MiB at a time (never whole in memory)."""
    block = hashlib.sha256(str(seed).encode()).digest() * (MB // 32)
    left = size
    while left > 0:
        yield block[: min(left, MB)]
        left -= MB


async def add_blobs(ctx, user_id: str, count: int, size: int) -> list[str]:
    """Give the account ``count`` blobs of ``size`` bytes (outbox mail: a declared blob
    column reached through ``outbound_messages.user_id``)."""
    keys = []
    for i in range(count):
        key = await ctx.blobs.put_stream("mail_outbox", _chunks(size, i))
        keys.append(key)
        async with ctx.db.transaction() as s:
            s.add(OutboundMessage(channel="email", recipient="bulk@example.com", user_id=user_id, template="bulk",
                                  body_key=key, backend="outbox", created_at=utcnow()))
    return keys


async def _peak_while_exporting(ctx, subject: Subject) -> tuple[int, int]:
    """(peak traced bytes, bytes of ZIP produced) while the ZIP streams to nowhere."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    produced = 0
    async for chunk in export_zip(ctx.db, ctx.blobs, subject):
        produced += len(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak, produced


@pytest.mark.req("R1", "R6")
async def test_export_memory_does_not_grow_with_the_accounts_blobs(client, ctx):
    small = await register(client, ctx, email="small@example.com")
    big = await register(client, ctx, email="big@example.com")
    await add_blobs(ctx, small["user_id"], 2, 1 * MB)
    await add_blobs(ctx, big["user_id"], 3, 8 * MB)  # more blobs, and each larger than a read chunk
    peak_small, size_small = await _peak_while_exporting(ctx, Subject(user_id=small["user_id"]))
    peak_big, size_big = await _peak_while_exporting(ctx, Subject(user_id=big["user_id"]))
    assert size_big > 10 * size_small  # twelve times the data (22 MB more) ...
    # ... with about the same memory: a read chunk or two more at most (an S3 body arrives in
    # network-sized pieces of at least the chunk size, so the peak wobbles by about one)
    assert peak_big - peak_small < 3 * MB, (peak_small, peak_big)
    assert peak_big < 8 * MB  # never a whole blob


@pytest.mark.req("R1", "R6")
async def test_zip_export_carries_data_and_files_intact(client, ctx, tmp_path):
    s = await register(client, ctx, email="zip@example.com")
    odd = 3 * MB + 7  # several read chunks, not a multiple of anything
    (key,) = await add_blobs(ctx, s["user_id"], 1, odd)
    expected = b"".join([c async for c in _chunks(odd, 0)])
    r = await client.get("/api/v1/privacy/export?format=zip", headers=bearer(s))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(r.content))
    assert zf.testzip() is None
    data = json.loads(zf.read("data.json"))
    assert data["records"]["users"]["rows"][0]["email"] == "zip@example.com"
    assert data["blobs"][key] == {"kind": "mail_outbox", "content_type": "message/rfc822", "size": odd,
                                  "description": data["blobs"][key]["description"]}
    assert zf.read(f"files/{key}.eml") == expected
    # The command writes the same stream to a file.
    out = tmp_path / "export.zip"
    size = await write_zip_file(ctx, s["user_id"], out)
    assert size == out.stat().st_size
    with zipfile.ZipFile(out) as zf2:
        assert zf2.read(f"files/{key}.eml") == expected
        assert json.loads(zf2.read("data.json"))["subject"]["user_id"] == s["user_id"]


@pytest.mark.req("R1")
async def test_json_export_inlines_blobs_streamed_as_base64(client, ctx):
    s = await register(client, ctx, email="json@example.com")
    size = MB + 1
    (key,) = await add_blobs(ctx, s["user_id"], 1, size)
    r = await client.get("/api/v1/privacy/export", headers=bearer(s))
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert base64.b64decode(doc["blobs"][key]["base64"]) == b"".join([c async for c in _chunks(size, 0)])
    assert {row["body_key"] for row in doc["records"]["outbound_messages"]["rows"]} >= {key}
    # A reference whose file is gone is left out of the files, not an error.
    await ctx.blobs.delete(key)
    doc = json.loads(b"".join([c async for c in export_json(ctx.db, ctx.blobs, Subject(user_id=s["user_id"]))]))
    assert key not in doc["blobs"]


@pytest.mark.req("R1")
async def test_a_table_with_more_rows_than_a_page_is_exported_whole(client, ctx, monkeypatch):
    from faoyam.privacy import export

    monkeypatch.setattr(export, "PAGE", 3)
    s = await register(client, ctx, email="pages@example.com")
    async with ctx.db.transaction() as session:
        session.add_all([OutboundMessage(channel="email", recipient="pages@example.com", user_id=s["user_id"],
                                         template=f"t{i}", backend="outbox") for i in range(8)])
    doc = json.loads(b"".join([c async for c in export_json(ctx.db, ctx.blobs, Subject(user_id=s["user_id"]))]))
    templates = {row["template"] for row in doc["records"]["outbound_messages"]["rows"]}
    assert {f"t{i}" for i in range(8)} <= templates
    assert len(doc["records"]["outbound_messages"]["rows"]) == len(set(r["id"] for r in doc["records"]["outbound_messages"]["rows"]))

