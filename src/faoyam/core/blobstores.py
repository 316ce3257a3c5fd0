"""Which blob store a deployment uses: the local directory (default) or an S3-compatible store.

Kept apart from ``core.storage`` (the interface and the local backend) because the S3
backend builds on that interface: choosing between them is the one place that knows both.
"""

from __future__ import annotations

from faoyam.core.storage import BlobStore, LocalBlobStore
from faoyam.core.storage_s3 import S3BlobStore
from faoyam.core.storage_two import TwoStores


def make_blob_store(settings) -> BlobStore:
    """The store ``settings.blob_backend`` names: ``local`` (default) or ``s3``; with a
    cloud bucket for recordings (``recording_cloud_bucket``), that store and the cloud one
    as :class:`~faoyam.core.storage_two.TwoStores` (a channel's ``destination``)."""
    box = S3BlobStore.from_settings(settings) if settings.blob_backend == "s3" else LocalBlobStore(settings.blobs_path)
    if not getattr(settings, "recording_cloud_bucket", None):
        return box
    cloud = S3BlobStore.from_settings(settings.model_copy(update={
        "s3_endpoint": settings.recording_cloud_endpoint, "s3_bucket": settings.recording_cloud_bucket,
        "s3_prefix": settings.recording_cloud_prefix, "s3_region": settings.recording_cloud_region,
        "s3_access_key": settings.recording_cloud_access_key, "s3_secret_key": settings.recording_cloud_secret_key}))
    return TwoStores(box, cloud)
