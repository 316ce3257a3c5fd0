"""The Jinja2 environment of the web app and the ``render`` helper every page uses.

This is the one template environment: every page of every domain (the web's own pages,
external sign-in in ``accounts.oidc``, the demo outbox) renders through :func:`render`.
It imports nothing from faoyam but ``core``, so a domain may call ``render``,
``page_language`` and ``PROBLEM_MESSAGES`` without an import cycle; nothing else in
``web`` is for domains (``tests/test_layers.py`` checks both, see
``docs/decisions/layers.md``).

Templates extend ``base.html`` (blocks ``title``, ``content``; optional ``head``,
``appbar``, ``scripts``, ``body_class``, ``back``) and get these context variables:

* ``lang``       — "en" or "th", negotiated by :func:`page_language`
* ``user``       — the signed-in :class:`~faoyam.accounts.deps.CurrentUser` or ``None``
* ``csrf_token`` — the session's CSRF token ("" when signed out); ``base.html`` puts it
  in ``<meta name="csrf-token">`` and ``app.js`` sends it as ``X-CSRF-Token``
* ``_``          — translate: ``_("English text {name}", name=value)`` looks the English
  text up in ``web/translations/<lang>.json`` (see :mod:`faoyam.core.i18n`)
* ``languages``  — {code: name} of the languages offered
* ``nav``        — which bottom-navigation tab is active ("home", "messages", "cloud", "me")

Usage from a route::

    from faoyam.web.templating import render

    @router.get("/somewhere")
    async def somewhere(request: Request, user=Depends(optional_user)):
        return render(request, "auth/somewhere.html", nav="me", thing=42)

``render`` is synchronous; it reads the signed-in user from ``request.state.user``
(set by the ``optional_user``/``current_user`` dependencies) unless ``user=`` is given.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from faoyam.core.i18n import LANGUAGES, format_datetime, gettext, negotiate

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"

LANG_COOKIE = "faoyam_lang"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
env = templates.env
env.trim_blocks = True
env.lstrip_blocks = True

# Strings the browser scripts show (static/js/*.js look them up by their English text
# through window.faoyam.t). They are translated server-side into the page, so the
# scripts need no catalog of their own; tests check every one has a Thai translation.
JS_MESSAGES: tuple[str, ...] = (
    "Saved.",
    "Picture of the alarm",
    "Play the clip",
    "Delete",
    "Delete all messages?",
    "Something went wrong. Please try again.",
    "Cannot reach the server. Check your connection and try again.",
    "Please check the highlighted fields.",
    "Too weak",
    "Weak",
    "Fair",
    "Good",
    "Strong",
    "Use at least 8 characters.",
    "Add more words, numbers or symbols to make it harder to guess.",
    "This field is required.",
    "Sending…",
    "Code sent to {to}.",
    "Signed out of this terminal.",
    "Photo updated.",
    "Photo removed.",
    "Your download has started.",
    "Password changed. Other terminals were signed out.",
    "Copied.",
    "Confirm it is you",
    "If an account uses this address, a code is on its way.",
    "Choose at least one permission.",
    "Passwords do not match.",
    "Choose a picture first.",
    "The picture is too large (at most 5 MB).",
    # The live player (static/js/live-player.js)
    "Connecting…",
    "Reconnecting…",
    "The camera is offline or not sending video. Trying again…",
    "This browser cannot play this camera's video format ({codec}).",
    "Your browser does not support live video (Media Source Extensions).",
    "You can no longer watch this camera.",
    "The video stopped with an error. Trying again…",
    "Sound on",
    "Sound off",
    # The playback page (static/js/playback.js)
    "Play",
    "Pause",
    "Nothing was recorded in this hour. Choose a day in the calendar.",
    "Choose a start before the end.",
    "Nothing was recorded after this time.",
    "End of the recordings.",
    # PTZ and talk-back under the live player (static/js/ptz.js, talk.js)
    "Pan {h}, tilt {v}, zoom {z}",
    "Talk",
    "Stop talking",
    "Press Talk and speak: the doorbell plays your voice.",
    "Connecting to the doorbell…",
    "Talking… the doorbell plays your voice.",
    "Talking stopped. Try again.",
    "Allow the microphone to talk to the visitor.",
    "You can no longer talk through this doorbell.",
    "The doorbell did not answer. Check that it is online and try again.",
    "This device cannot talk back.",
)


# Stable problem codes of the API and how the browser shows them. English pages show the
# API's own ``detail`` (it is more specific); other languages show the translation of
# this text. ``app.js`` reads them as ``t("problem:<code>")``.
PROBLEM_MESSAGES: dict[str, str] = {
    "weak-password": "This password is too easy to guess. Add more words or characters.",
    "invalid-detection-settings": "Check this motion detection setting.",
    "wrong-code": "The code is not right.",
    "code-expired": "This code was already used or has expired. Ask for a new one.",
    "code-attempts": "Too many wrong codes. Ask for a new one.",
    "already-registered": "An account with this address already exists. Sign in, or reset the password.",
    "invalid-email": "This is not a valid email address.",
    "invalid-phone": "This is not a valid phone number.",
    "unknown-country": "Choose a country or region from the list.",
    "age-not-confirmed": "Please confirm you are old enough to use faoyam.",
    "contact-required": "Register with an email address or a phone number.",
    "phone-not-offered": "Registration by phone is not offered in your country. Use an email address.",
    "invalid-nickname": "A nickname has 1 to 64 characters.",
    "bad-credentials": "The email/phone or password is not right.",
    "step-up-required": "Many wrong passwords were tried for this account. If your password is right, we sent a code to its email or phone: enter it below with the password.",
    "rate-limited": "Too many attempts. Please wait a while and try again.",
    "reauth-required": "For your security, confirm it is you first.",
    "reauth-missing": "Enter your password, or ask for a code.",
    "csrf": "The form is out of date. Reload the page and try again.",
    "signed-out": "You are signed out. Sign in again.",
    "address-taken": "Another account uses this address.",
    "photo-format": "Use a JPEG, PNG, WebP or GIF picture.",
    "photo-too-large": "The picture is too large (at most 5 MB).",
    "no-file": "Choose a picture to upload.",
    "too-large": "The file is too large.",
    "no-contact": "This account has no email or phone to send a code to.",
    "not-found": "This was not found. It may have been deleted.",
    "forbidden": "You are not allowed to do this.",
    "conflict": "This conflicts with something that already exists.",
    # Devices (B3, B7, B8, B9, B10)
    "unknown-serial": "No device has this serial number. Check it on the label.",
    "wrong-safety-code": "The safety code does not match this device. Check it on the label.",
    "already-yours": "This device is already in your account.",
    "bound-elsewhere": "This device is in another account. Its owner must delete it first.",
    "model-mismatch": "This serial number belongs to another model.",
    "invalid-serial": "Check the serial number on the label.",
    "invalid-safety-code": "Check the safety code on the label.",
    "invalid-name": "A name has 1 to 64 characters.",
    "invalid-time-zone": "Choose a time zone from the list.",
    "invalid-ssid": "A Wi-Fi network name has 1 to 32 characters.",
    "invalid-wifi-password": "A Wi-Fi password has 8 to 63 characters.",
    "ssid-required": "Give the Wi-Fi network name with its password.",
    "invalid-device-password": "A device password has 8 to 64 characters, with letters and digits.",
    "device-offline": "The device is not connected. Check its power and network, then try again.",
    "device-timeout": "The device did not answer in time. Try again.",
    "not-supported": "The device does not support this.",
    "config-too-large": "These settings would make the device's configuration too large. Send fewer or smaller settings.",
    "device-not-found": "This device is not in your account.",
    "owner-only": "Only the device's owner can do this.",
    "permission-missing": "This device was shared with you without this permission.",
    "no-account": "No account uses this email address or phone number. Ask them to register first.",
    "self-share": "This is your own account.",
    "already-shared": "This device is already shared with this account.",
    "invalid-contact": "This is not a valid email address or phone number.",
    "phone-share-unavailable": "Sharing by phone number is not offered here. Use an email address.",
    "too-many-shares": "This device is shared with too many accounts. Stop sharing with someone first.",
    "too-many-links": "This device has too many active links. Revoke one first.",
    "share-not-found": "There is no such invitation.",
    "link-not-found": "This link does not work. Ask for a new one.",
    "link-expired": "This link has expired. Ask for a new one.",
}


def page_language(request: Request, user: Any = None) -> str:
    """The page language: a ``?lang=`` choice, the user's saved language when signed in,
    else the language cookie, else ``Accept-Language`` negotiated by Babel."""
    asked = request.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    if user is not None and getattr(user, "language", None) in LANGUAGES:
        return user.language
    return negotiate(request.headers.get("accept-language"), request.cookies.get(LANG_COOKIE))


def translator(lang: str):
    def _(msgid: str, **fmt: Any) -> str:
        return gettext(lang, msgid, **fmt)

    return _


def js_messages(lang: str) -> dict[str, str]:
    """The browser scripts' strings in ``lang`` (keyed by English text, or ``problem:<code>``)."""
    out = {m: gettext(lang, m) for m in JS_MESSAGES}
    out.update({f"problem:{code}": gettext(lang, text) for code, text in PROBLEM_MESSAGES.items()})
    return out


def _fmt_dt(value: dt.datetime | None, lang: str = "en") -> str:
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return format_datetime(value, lang)


def _icon(name: str, label: str | None = None, cls: str = "") -> Markup:
    """An inline SVG icon from the sprite in static/icons/sprite.svg."""
    aria = f' role="img" aria-label="{Markup.escape(label)}"' if label else ' aria-hidden="true"'
    klass = f"icon {Markup.escape(cls)}".strip()
    return Markup(f'<svg class="{klass}"{aria}><use href="/static/icons/sprite.svg#{Markup.escape(name)}"></use></svg>')


env.globals["icon"] = _icon
env.globals["LANGUAGES"] = LANGUAGES
env.filters["datetime"] = _fmt_dt


def render(request: Request, name: str, status_code: int = 200, headers: dict | None = None, **ctx: Any):
    """Render ``name`` with the common context (lang, user, csrf_token, _) filled in."""
    user = ctx.pop("user", getattr(request.state, "user", None))
    lang = ctx.pop("lang", None) or page_language(request, user)
    context = {
        "request": request,
        "lang": lang,
        "user": user,
        "csrf_token": getattr(user, "csrf_token", "") if user is not None else "",
        "_": translator(lang),
        "languages": LANGUAGES,
        "nav": None,
        "js_messages": js_messages(lang),
        "path": request.url.path,
    }
    context.update(ctx)
    response = templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("Content-Language", lang)
    return response
