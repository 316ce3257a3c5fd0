"""Thai and English.

Messages are looked up by their English text in per-language JSON catalogs under
``web/translations`` (English needs none); Babel picks the language from the user's
choice, a cookie or ``Accept-Language``, and formats dates and numbers.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from babel import Locale
from babel.dates import format_datetime as _fmt_dt

LANGUAGES = {"en": "English", "th": "ไทย"}
DEFAULT = "en"
_DIR = Path(__file__).resolve().parent.parent / "web" / "translations"


@lru_cache
def catalog(lang: str) -> dict[str, str]:
    path = _DIR / f"{lang}.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def gettext(lang: str, msgid: str, **fmt) -> str:
    text = catalog(lang).get(msgid, msgid) if lang != "en" else msgid
    return text.format(**fmt) if fmt else text


def negotiate(accept_language: str | None, preferred: str | None = None) -> str:
    if preferred in LANGUAGES:
        return preferred  # type: ignore[return-value]
    if accept_language:
        wanted = [p.split(";")[0].strip().replace("-", "_") for p in accept_language.split(",") if p.strip()]
        got = Locale.negotiate(wanted, list(LANGUAGES), sep="_")
        if got:
            return str(got)
    return DEFAULT


def format_datetime(value, lang: str) -> str:
    return _fmt_dt(value, format="medium", locale=lang)
