"""Every column and blob kind is declared (the privacy data layer's central promise)."""

import pytest
from sqlalchemy import Column, String, Table

from faoyam.core.database import Base
from faoyam.core.declarations import BLOB_KINDS, blob_kind, personal
from faoyam.privacy import classification


@pytest.mark.req("RET1", "R6")
def test_every_column_and_blob_kind_is_classified():
    assert classification.problems() == []


def test_an_undeclared_column_fails_the_check():
    """Proves the check can fail: add a table with an undeclared personal column."""
    t = Table("tmp_undeclared", Base.metadata, Column("id", String, primary_key=True, info={}),
              Column("home_address", String))
    try:
        found = classification.problems()
        assert "tmp_undeclared.home_address: not classified (info=personal(...) or not_personal(...))" in found
        assert "tmp_undeclared.id: not classified (info=personal(...) or not_personal(...))" in found
    finally:
        Base.metadata.remove(t)
    assert classification.problems() == []


def test_personal_table_without_subject_link_fails():
    t = Table("tmp_unlinked", Base.metadata,
              Column("id", String, primary_key=True, info=personal("identifier", "B1a")))
    try:
        assert any("tmp_unlinked: holds personal data but has no __privacy__" in p for p in classification.problems())
    finally:
        Base.metadata.remove(t)


def test_unknown_activity_and_orphan_blob_kind_fail():
    t = Table("tmp_badact", Base.metadata, Column("id", String, primary_key=True, info=personal("identifier", "Z99")))
    blob_kind("tmp_orphan", "media", "B11", description="test")
    try:
        found = classification.problems()
        assert "tmp_badact.id: unknown activity 'Z99'" in found
        assert any(p.startswith("blob kind tmp_orphan: no column references it") for p in found)
    finally:
        Base.metadata.remove(t)
        del BLOB_KINDS["tmp_orphan"]


def test_a_link_scope_must_name_personal_columns():
    from faoyam.core.declarations import Link, TablePrivacy, not_personal

    t = Table("tmp_scoped", Base.metadata,
              Column("id", String, primary_key=True, info=not_personal("random id")),
              Column("a_email", String, info=personal("contact", "F2")),
              Column("note", String, info=not_personal("free text")),
              info={"privacy": TablePrivacy(subject=(Link("a_email", key="email", columns=("a_email", "note", "nope")),),
                                            on_erase="anonymise")})
    try:
        found = classification.problems()
        assert "tmp_scoped: link 'a_email' scopes 'note', which is not a personal column" in found
        assert "tmp_scoped: link 'a_email' scopes 'nope', which is not a personal column" in found
        assert not any("scopes 'a_email'" in p for p in found)
    finally:
        Base.metadata.remove(t)


def test_store_refuses_undeclared_blob_kind(tmp_path):
    from faoyam.core.storage import LocalBlobStore

    with pytest.raises(ValueError, match="not declared"):
        LocalBlobStore(tmp_path).new_key("holiday_videos")


@pytest.mark.req("CT1", "CHG1", "SH3", "R9")
async def test_notice_is_generated_from_register_and_settings(client, ctx):
    ctx.settings.dpo_email = "privacy@operator.example"
    ctx.settings.sub_processors = [{"name": "Cloud Co", "service": "hosting", "country": "SG"}]
    n = (await client.get("/api/v1/privacy/notice")).json()
    assert n["dpo"]["email"] == "privacy@operator.example" and n["last_updated"]
    ids = {a["id"] for s in n["sections"] for a in s["activities"]}
    from faoyam.privacy.register import ACTIVITIES

    assert ids == set(ACTIVITIES)
    assert n["sub_processors"][0]["country"] == "SG"
    assert "Delete Account" in next(r["how"] for r in n["rights"] if r["id"] == "R3")
