"""Who on the staff may do what: the one table of roles and their permissions.

Routes declare the permission they need with ``deps.require_staff("customers:read")``;
anything a role is not given here is refused (default deny). ``tests/staff`` enumerates
every ``/staff`` route and fails if one declares no permission and is not in ``PUBLIC``.
"""

from __future__ import annotations

PERMISSIONS: dict[str, str] = {
    "staff:session": "be signed in to the back office (its start page, signing out)",
    "customers:read": "search customers and see an account's basics and its audit trail",
    "customers:export": "produce a copy of everything held about a customer (R1, R6)",
    "customers:erase": "erase a customer's account and all its data (R3)",
    "audit:read": "read the audit log of every staff action",
}

ROLES: dict[str, frozenset[str]] = {
    # The operator: runs the deployment, may do everything.
    "admin": frozenset(PERMISSIONS),
    # The data protection officer: handles data-subject requests, reads the audit log.
    "dpo": frozenset({"staff:session", "customers:read", "customers:export", "customers:erase", "audit:read"}),
    # A support agent: finds a customer and looks; changes nothing.
    "support": frozenset({"staff:session", "customers:read"}),
}

# /staff routes open without a staff session (signing in and enrolling).
PUBLIC: frozenset[str] = frozenset({
    "GET /staff/signin", "POST /staff/signin", "GET /staff/enrol/{token}", "POST /staff/enrol/{token}",
})


def allowed(role: str, permission: str) -> bool:
    if permission not in PERMISSIONS:
        raise KeyError(f"unknown staff permission {permission!r}")
    return permission in ROLES.get(role, frozenset())
