"""Every cookie and browser-storage item the site sets (CK1–CK4), as data.

The cookie policy page is rendered from this list, and a test fails when the code sets a
cookie that is not here. faoyam sets only functional cookies: it has no analytics, so
there is nothing to consent to for CK2 and nothing to switch off for CK3 beyond what
the browser's own settings do (the site keeps working without the language cookie).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cookie:
    name: str
    kind: str  # "functional" (needed for the site to work) | "analytics" (only with consent)
    purpose: str
    lifetime: str
    storage: str = "cookie"  # cookie | localStorage
    set_by: str = ""


COOKIES: tuple[Cookie, ...] = (
    Cookie("faoyam_session", "functional", "Keeps you signed in (a random token; HttpOnly).",
           "until you sign out, or 30 days", set_by="faoyam.accounts.api"),
    Cookie("faoyam_lang", "functional", "Remembers the language you chose (Thai or English).", "1 year",
           set_by="faoyam.web.pages"),
    Cookie("faoyam_oidc", "functional", "Protects a sign-in with another account (state, nonce; signed, HttpOnly).",
           "10 minutes", set_by="faoyam.accounts.oidc"),
    Cookie("faoyam_oidc_pending", "functional", "Carries a first sign-in with another account to the last sign-up step.",
           "15 minutes", set_by="faoyam.accounts.oidc"),
    Cookie("faoyam_staff", "functional", "Keeps a staff member signed in to the back office (/staff only; HttpOnly).",
           "30 minutes without use, 8 hours at most", set_by="faoyam.staff.pages"),
    Cookie("faoyam.install", "functional", "A random id of this browser, shown in your list of terminals (B2).",
           "until you clear the site's data", storage="localStorage", set_by="web/static/js/app.js"),
)


def by_name() -> dict[str, Cookie]:
    return {c.name: c for c in COOKIES}
