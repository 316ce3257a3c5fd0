"""Normalising and checking what people type: email, phone, country, password, nickname."""

from __future__ import annotations

import phonenumbers
import pycountry
from email_validator import EmailNotValidError, validate_email
from zxcvbn import zxcvbn

from faoyam.core.errors import Invalid


def normalize_email(value: str, field: str = "email") -> str:
    try:
        return validate_email(value.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise Invalid(field, f"This is not a valid email address: {exc}", code="invalid-email") from None


def normalize_phone(value: str, country: str | None, field: str = "phone") -> str:
    """E.164 form (+66812345678). A number without a + is read in the given country."""
    try:
        num = phonenumbers.parse(value.strip(), country or None)
    except phonenumbers.NumberParseException:
        raise Invalid(field, "This is not a valid phone number.", code="invalid-phone") from None
    if not phonenumbers.is_valid_number(num):
        raise Invalid(field, "This is not a valid phone number.", code="invalid-phone")
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def phone_country(e164: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return None


def normalize_country(value: str, field: str = "country") -> str:
    code = (value or "").strip().upper()
    if len(code) != 2 or pycountry.countries.get(alpha_2=code) is None:
        raise Invalid(field, "Choose a country or region from the list (ISO 3166 code).", code="unknown-country")
    return code


def countries(lang: str = "en") -> list[tuple[str, str]]:
    """(code, name) for every ISO 3166 country, sorted by name."""
    names = []
    try:
        from babel import Locale

        territories = Locale.parse(lang).territories
    except Exception:  # noqa: BLE001 - any locale problem falls back to English names
        territories = {}
    for c in pycountry.countries:
        names.append((c.alpha_2, territories.get(c.alpha_2) or c.name))
    return sorted(names, key=lambda x: x[1])


def normalize_nickname(value: str, field: str = "nickname") -> str:
    nick = " ".join((value or "").split())
    if not 1 <= len(nick) <= 64:
        raise Invalid(field, "A nickname has 1 to 64 characters.", code="invalid-nickname")
    if any(ord(ch) < 32 for ch in nick):
        raise Invalid(field, "A nickname cannot contain control characters.", code="invalid-nickname")
    return nick


def check_password(password: str, *, min_score: int, user_inputs: list[str], field: str = "password") -> None:
    """Refuse weak passwords (zxcvbn score, length) with a hint of why."""
    if len(password) < 8:
        raise Invalid(field, "Use at least 8 characters.", code="weak-password")
    if len(password) > 256:
        raise Invalid(field, "Use at most 256 characters.", code="weak-password")
    result = zxcvbn(password[:100], user_inputs=[u for u in user_inputs if u])
    if result["score"] < min_score:
        hint = result["feedback"].get("warning") or "Add more words or characters that are hard to guess."
        raise Invalid(field, f"This password is too easy to guess. {hint}".strip(), code="weak-password",
                      score=result["score"])
