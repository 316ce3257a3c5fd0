"""faoyam (เฝ้ายาม, "keep watch"): an open, self-hostable smart-camera cloud.

The package is laid out by domain (accounts, devices, privacy, ...) on top of ``core``,
which holds the pieces every domain shares: configuration, the database, the blob store,
mail and SMS outboxes, errors, security primitives and translations.
"""

__version__ = "0.1.0"
