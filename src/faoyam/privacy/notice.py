"""The privacy notice, generated from the register and the operator's configuration.

Nothing here is written per feature: the activities, categories and retention come from
``register``; who the operator is, the DPO's contacts, sub-processors and the complaint
authority come from settings. The web page and ``GET /api/v1/privacy/notice`` show it.
"""

from __future__ import annotations

from faoyam.core.config import Settings
from faoyam.privacy import register

SECTIONS = {
    "A": "Buying devices through external platforms",
    "B": "The app, the devices and the cloud",
    "C": "Marketing activities",
    "D": "After-sales service",
    "E": "The website",
    "F": "Other uses",
    "SEC": "Security",
}

BASIS_LABELS = {register.CONTRACT: "contract", register.LI: "legitimate interest", register.CONSENT: "consent",
                register.LEGAL: "legal obligation"}

RIGHTS = [
    ("R0", "review and change your data", "Me → Profile"),
    ("R1", "get a copy of your data", "Me → Settings → Account and Security → Download my data"),
    ("R2", "correct your data", "Me → Profile"),
    ("R3", "delete your data", "Me → Settings → Account and Security → Delete Account"),
    ("R4", "object to processing based on legitimate interest, and always to direct marketing", "email the DPO"),
    ("R5", "restrict processing", "email the DPO"),
    ("R6", "receive your data in a machine-readable form", "Download my data (JSON in a ZIP)"),
    ("R7", "withdraw consent at any time", "Me → Settings"),
    ("R8", "we verify your identity before giving access", "a recent sign-in or a one-time code"),
]


def build_notice(settings: Settings) -> dict:
    sections: dict[str, list[dict]] = {}
    for a in register.ACTIVITIES.values():
        sections.setdefault(a.section, []).append({
            "id": a.id, "when": a.when, "data": [register.CATEGORIES[c] for c in a.data], "purpose": a.purpose,
            "basis": [BASIS_LABELS[b] for b in a.basis], "retention": register.RETENTION[a.retention], "recipients": list(a.recipients),
        })
    return {
        "controller": settings.operator_name,
        "last_updated": settings.policy_updated,
        "dpo": {"email": settings.dpo_email, "phone": settings.dpo_phone, "address": settings.dpo_address},
        "sections": [{"id": k, "title": SECTIONS.get(k, k), "activities": v} for k, v in sections.items()],
        "retention": register.RETENTION,
        "children": "The service is not for children under 16. If you believe we hold a child's data, report it "
                    "(POST /api/v1/privacy/child-reports or the form on this page) and we will delete it.",
        "sub_processors": settings.sub_processors,
        "transfer_safeguards": settings.transfer_safeguards,
        "transfers": f"Data may be processed outside your country or region under {settings.transfer_safeguards}.",
        "rights": [{"id": i, "right": r, "how": h} for i, r, h in RIGHTS],
        "complaints": settings.supervisory_authority,
    }
