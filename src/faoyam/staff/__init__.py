"""The back office: staff accounts (roles, TOTP), the append-only audit log, /staff pages."""
