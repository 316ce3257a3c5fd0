"""The published notice and cookie policy (CT1, CHG1, CK1, CK4), and the cookie registry."""

import re
from html import unescape
from pathlib import Path

import pytest

import faoyam
from faoyam.web.cookies import by_name

SRC = Path(faoyam.__file__).parent


@pytest.mark.req("CT1", "CHG1", "SH3", "XB1", "R9")
async def test_privacy_page_shows_operator_contacts_date_and_every_activity(client, ctx):
    ctx.settings.dpo_email = "dpo@operator.example"
    ctx.settings.policy_updated = "2026-11-01"
    html = (await client.get("/privacy")).text
    assert "dpo@operator.example" in html and "2026-11-01" in html
    assert "(B9)" in html and "(B17)" in html
    assert "standard contractual clauses" in html and "PDPC" in html
    th = (await client.get("/privacy", headers={"Accept-Language": "th"})).text
    assert "ประกาศความเป็นส่วนตัว" in th and "การแชร์อุปกรณ์" in th


@pytest.mark.req("CK1", "CK4")
async def test_cookie_policy_lists_every_cookie_the_code_sets():
    """Scan the code for set_cookie calls and localStorage keys; each must be in the registry."""
    names = set()
    for py in SRC.rglob("*.py"):
        text = "\n".join(ln for ln in py.read_text(encoding="utf-8").splitlines() if "def " not in ln)
        consts = dict(re.findall(r'^([A-Z_]+)\s*=\s*"([^"]+)"', text, re.M))
        for arg in re.findall(r'set_cookie\(\s*(?:response,\s*ctx,\s*)?([A-Za-z_"][^,)]*)', text):
            arg = arg.strip()
            if arg.startswith('"'):
                names.add(arg.strip('"'))
            elif arg in consts:
                names.add(consts[arg])
            elif arg not in ("name", "key"):
                # A cookie name from another module: resolve it by import.
                mod = __import__(f"faoyam.{py.relative_to(SRC).with_suffix('').as_posix().replace('/', '.')}",
                                 fromlist=["x"])
                names.add(getattr(mod, arg))
    for js in SRC.rglob("*.js"):
        names.update(re.findall(r'localStorage\.setItem\("([^"]+)"', js.read_text(encoding="utf-8")))
    assert {"faoyam_session", "faoyam_lang", "faoyam_oidc", "faoyam_oidc_pending", "faoyam.install"} <= names
    assert names <= set(by_name()), f"undeclared cookies: {names - set(by_name())}"


@pytest.mark.req("CK4", "CK3")
async def test_cookie_page_lists_name_purpose_lifetime(client):
    html = unescape((await client.get("/cookies")).text)
    for c in by_name().values():
        assert c.name in html and c.lifetime in html
    assert "no analytics" in html


@pytest.mark.req("CH2")
async def test_child_report_page_posts_to_the_api(client):
    html = (await client.get("/privacy/report-child")).text
    assert 'data-api="/api/v1/privacy/child-reports"' in html
