"""The processing register (REQUIREMENTS.md section 1), as data.

The privacy notice, the export document's explanations and the compliance report are
generated from here; declarations in the models point at these IDs, categories and
retention rules, and the classification test refuses any name that is not here.
"""

from __future__ import annotations

from dataclasses import dataclass

CONTRACT, LI, CONSENT, LEGAL = "contract", "legitimate_interest", "consent", "legal_obligation"


@dataclass(frozen=True)
class Activity:
    id: str
    section: str
    when: str
    data: tuple[str, ...]  # categories
    purpose: str
    basis: tuple[str, ...]
    retention: str
    recipients: tuple[str, ...] = ()


# Data categories: what kind of personal data a column or blob holds.
CATEGORIES: dict[str, str] = {
    "identifier": "pseudonymous identifiers that link records to a person (account id)",
    "contact": "email address, phone number",
    "profile": "nickname, profile photo, language, country or region",
    "credential": "password hashes, one-time codes, session tokens (kept hashed)",
    "terminal": "the phone or computer used to sign in: OS, model, install identifier",
    "location": "GPS position given with permission, or a location derived from an IP address",
    "network": "IP addresses and ports",
    "device": "device serial, MAC, model, firmware, names, Wi-Fi network name, configuration",
    "media": "video recordings, snapshots, alarm pictures, cover images",
    "event": "alarm messages, device status history, message records",
    "sharing": "who a device is shared with, and their permissions",
    "commercial": "orders, plans, payment method, shipping addresses",
    "communication": "content of messages, feedback and complaints",
    "behaviour": "browsing history and clicks in the app (only with consent)",
    "consent": "records of consent given and withdrawn",
    "external_account": "nickname and photo from an external sign-in provider",
    "age": "confirmation of being old enough to use the service",
}

# Retention rules (RET1-RET5). Time-bound rules are enforced by the retention job
# through the table's Expiry; "account" data lives until deregistration (B17) or three
# years of inactivity (RET3).
RETENTION: dict[str, str] = {
    "account": "while the account exists; erased at deregistration (B17) or after 3 years without use (RET3)",
    "device_binding": "while the device is bound to the account; erased when the device is deleted (B10)",
    "session": "until the session is signed out, revoked or expires",
    "verification": "until the code is used or expires (at most one day)",
    "7d": "seven days (RET5: alarm messages and pictures, IP addresses, API logs)",
    "cloud_plan": "until the cloud service or its recording period ends (RET4)",
    "legal": "as long as a legal duty (tax, warranty) requires, then anonymised",
    "consent": "while consent stands, and as proof of consent for the limitation period",
    "security": "one hour: counters against password and code guessing",
    "audit": "the period the operator sets (audit_retention_days), then deleted; kept through an erasure",
}

ACTIVITIES: dict[str, Activity] = {}


def _a(id, section, when, data, purpose, basis, retention="account", recipients=()):
    ACTIVITIES[id] = Activity(id, section, when, tuple(data), purpose, tuple(basis), retention, tuple(recipients))


_B = (CONTRACT, LI)
_a("A1", "A", "a device is bought on an external marketplace", ["profile", "contact", "commercial"],
   "process and deliver the order, contact the buyer if needed", [CONTRACT], "legal", ["carriers", "marketplaces"])
_a("B1a", "B", "first registration in the app", ["contact", "profile", "credential", "external_account", "age", "identifier"],
   "complete registration, communicate, manage the account", _B)
_a("B1b", "B", "the user changes registration details", ["contact", "profile", "credential"],
   "make the change effective; the new value replaces the old one", _B)
_a("B2", "B", "sign-in and use", ["terminal", "location", "network", "credential"],
   "provide and secure the service and the account", _B, "session")
_a("B3", "B", "adding a device", ["device", "credential"], "bind the device to the account and configure it", _B, "device_binding")
_a("B4", "B", "live view", ["device", "network", "media"], "show live video", _B, "device_binding")
_a("B5", "B", "playback and video recording", ["device", "media"], "store recordings and let the user watch them", _B, "cloud_plan")
_a("B6", "B", "activation and configuration of an added device", ["device", "network", "location"],
   "activate the device and register it with our servers", _B, "device_binding")
_a("B7", "B", "naming a device and setting its cover image", ["device", "media"],
   "rename, change cover, show channel names, model and serial", _B, "device_binding")
_a("B8", "B", "entering a device password or using reset", ["device", "credential"],
   "let the user protect the device with a password or reset it", _B, "device_binding")
_a("B9", "B", "device share", ["device", "contact", "sharing"], "share a device with other users on request", _B, "device_binding")
_a("B10", "B", "delete device", ["device", "contact"], "remove the device and its paired accessories from the account", _B, "device_binding")
_a("B11", "B", "receiving notifications", ["device", "event", "media"], "send alarm notifications", _B, "7d")
_a("B12", "B", "cloud storage service", ["device", "event", "media"], "store recordings in the cloud", _B, "cloud_plan")
_a("B13", "B", "buying a cloud storage plan or redeeming a gift card", ["commercial", "contact"],
   "process the order and bill for the plan", _B, "legal", ["payment providers"])
_a("B14", "B", "transferring a cloud plan", ["device", "commercial"], "move an active cloud service to another device", _B)
_a("B15", "B", "user experience plan (opt-in)", ["behaviour"], "improve products and analyse feature use", [CONSENT], "consent")
_a("B16", "B", "contacting us by email or feedback", ["communication", "contact"],
   "answer questions, provide information, handle complaints", [LI])
_a("B17", "B", "deregistering", ["contact"], "complete deregistration and delete all personal data collected during use", _B)
for _id, _p, _basis in [
    ("C1", "register interest in products and services", [CONSENT]),
    ("C2", "tell participants about progress and results of the activity they joined", [CONSENT]),
    ("C3", "ask for a review or a survey", [LI]),
    ("C4", "tell about similar events, if the person opted in", [CONSENT]),
]:
    _a(_id, "C", "marketing activities", ["profile", "contact", "communication", "external_account"], _p, _basis, "consent",
       ["marketing providers"])
_a("C5", "C", "offline events", ["media"], "promote the activities", [LI], "consent")
_a("D1", "D", "registering on the RMA platform", ["profile", "contact", "credential"], "complete registration, protect the account", [CONTRACT, LI])
_a("D2", "D", "submitting an RMA request", ["device", "network", "contact", "commercial"],
   "handle the request, recommend a repair centre, ship the repaired device, ask for feedback", [CONTRACT, LEGAL, LI], "legal",
   ["carriers", "after-sales hotline"])
_a("D3", "D", "resetting a device password through support", ["device", "contact"], "reset the password as requested", [LI])
_a("E1", "E", "subscribing to the newsletter", ["contact"], "newsletters, promotions, invitations", [CONSENT], "consent")
_a("E2", "E", "using the website", ["network", "behaviour"], "analytics and protection of the site", [LI], "7d")
_a("F1", "F", "provide, evaluate and improve services", ["identifier"], "usage statistics without identifying data", [CONTRACT, LI])
_a("F2", "F", "important notices", ["contact"], "answer, and send notices of changes of terms and policies", [CONTRACT, LI])
_a("F3", "F", "disclosure to public bodies", ["contact"], "comply with law, court orders, subpoenas", [LEGAL], "legal")
_a("F4", "F", "user contributions", ["communication"], "content posted in public areas, at the user's risk", [])
# Security counters protect every account; they are not tied to one activity of the table.
_a("SEC1", "SEC", "protecting accounts against guessing", ["network", "credential"],
   "rate limits and lockouts against password and code guessing", [LI], "security")
# The back office (staff/): who on the staff did what to whose data, and why.
_a("AUD1", "SEC", "staff act on or read customer data in the back office", ["identifier", "contact", "credential",
   "communication", "event"], "accountability: an append-only record of every staff action and data-subject operation",
   [LEGAL], "audit")
