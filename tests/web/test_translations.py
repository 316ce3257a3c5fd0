"""Thai for every string of the web app: templates, browser scripts, problem messages."""

from __future__ import annotations

import json
import re
import string

from faoyam.core.i18n import catalog
from faoyam.web.templating import JS_MESSAGES, PROBLEM_MESSAGES, STATIC_DIR, TEMPLATES_DIR

TH_PATH = TEMPLATES_DIR.parent / "translations" / "th.json"

# _("...") or _('...') in a template; the first argument is the msgid.
_CALL = re.compile(r"""\b_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
# t("...") / F.t("...") in the browser scripts.
_JS_CALL = re.compile(r"""\bt\(\s*"((?:[^"\\]|\\.)*)\"""")


def template_msgids() -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for f in sorted(TEMPLATES_DIR.rglob("*.html")):
        for m in _CALL.finditer(f.read_text(encoding="utf-8")):
            msgid = m.group(1) if m.group(1) is not None else m.group(2)
            found.setdefault(msgid, set()).add(str(f.relative_to(TEMPLATES_DIR)))
    return found


def js_msgids() -> set[str]:
    out = set()
    for f in (STATIC_DIR / "js").glob("*.js"):
        out |= {m.group(1) for m in _JS_CALL.finditer(f.read_text(encoding="utf-8"))}
    return out


def fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_the_catalog_is_valid_json_with_text_values():
    data = json.loads(TH_PATH.read_text(encoding="utf-8"))
    assert data, "th.json is empty"
    assert all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in data.items())


def test_every_template_string_has_a_thai_translation():
    ids = template_msgids()
    assert len(ids) > 150  # the scan finds the templates' strings
    th = catalog("th")
    missing = {msgid: sorted(files) for msgid, files in ids.items() if msgid not in th}
    assert not missing, f"missing in th.json: {json.dumps(missing, ensure_ascii=False, indent=1)}"


def test_every_script_string_is_served_to_the_page_and_translated():
    th = catalog("th")
    used = js_msgids()
    assert used
    for msgid in used:
        if msgid.startswith("problem:"):
            assert msgid.removeprefix("problem:") in PROBLEM_MESSAGES, msgid
        else:
            assert msgid in JS_MESSAGES, f"{msgid!r} is used by a script but not in templating.JS_MESSAGES"
    for msgid in list(JS_MESSAGES) + list(PROBLEM_MESSAGES.values()):
        assert msgid in th, f"no Thai for {msgid!r}"


def test_translations_keep_their_placeholders():
    th = catalog("th")
    wrong = {k: v for k, v in th.items() if fields(k) != fields(v)}
    assert not wrong, wrong


def test_thai_translations_are_thai():
    th = catalog("th")
    thai = re.compile(r"[\u0E00-\u0E7F]")
    # Brand names and formats may stay in Latin letters; sentences must not.
    latin_only = [k for k, v in th.items() if not thai.search(v) and len(k.split()) > 2]
    assert not latin_only, latin_only
