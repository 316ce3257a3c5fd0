"""Accounts: registration, sign-in, sessions and terminals, profile, deregistration (B1a, B1b, B2, B17, CH1, R8)."""
