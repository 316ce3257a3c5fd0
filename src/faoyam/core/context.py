"""The services a request or a job works with, built once per process from Settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from faoyam.core.config import Settings
from faoyam.core.database import Database
from faoyam.core.messaging import Messenger
from faoyam.core.ratelimit import RateLimiter
from faoyam.core.security import SecretBox
from faoyam.core.blobstores import make_blob_store
from faoyam.core.storage import BlobStore


@dataclass
class Context:
    settings: Settings
    db: Database
    blobs: BlobStore
    messenger: Messenger
    limiter: RateLimiter
    secrets: SecretBox
    # Long-lived helpers that domains attach (the device gateway, the broker, ...).
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> bytes:
        return self.settings.resolved_secret_key

    @classmethod
    def build(cls, settings: Settings) -> Context:
        settings.ensure_dirs()
        db = Database(settings.db_url)
        blobs = make_blob_store(settings)
        return cls(
            settings=settings,
            db=db,
            blobs=blobs,
            messenger=Messenger(settings, db, blobs),
            limiter=RateLimiter(db, settings.resolved_secret_key, settings.rate_limit_enabled),
            secrets=SecretBox(settings.resolved_device_keys),
        )

    async def close(self) -> None:
        await self.db.dispose()


async def get_ctx(request: Request) -> Context:
    # async: FastAPI runs a plain ``def`` dependency in a worker thread, a thread hop on
    # every request for a dictionary look-up.
    return request.app.state.ctx
