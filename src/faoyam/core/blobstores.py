"""Which blob store a deployment uses: the local directory (default) or an S3-compatible store.

Kept apart from ``core.storage`` (the interface and the local backend) because the S3
backend builds on that interface: choosing between them is the one place that knows both.
"""

from __future__ import annotations

from faoyam.core.storage import BlobStore, LocalBlobStore
from faoyam.core.storage_s3 import S3BlobStore


def make_blob_store(settings) -> BlobStore:
    """The store ``settings.blob_backend`` names: ``local`` (default) or ``s3``."""
    if settings.blob_backend == "s3":
        return S3BlobStore.from_settings(settings)
    return LocalBlobStore(settings.blobs_path)
