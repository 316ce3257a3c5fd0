"""Shared infrastructure: every domain package may import from here."""
