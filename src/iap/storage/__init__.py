"""Object storage: originals (and later derivatives) under UUID keys, on disk or in S3."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from iap.config import Settings
from iap.storage.base import BlobInfo, BlobNotFound, BlobStorage, StorageUnavailable
from iap.storage.local import LocalStorage
from iap.storage.s3 import S3Storage

__all__ = [
    "BlobInfo",
    "BlobNotFound",
    "BlobStorage",
    "LocalStorage",
    "S3Storage",
    "StorageUnavailable",
    "create_storage",
]


def create_storage(settings: Settings) -> BlobStorage:
    url = urlsplit(settings.resolved_storage_url)
    if url.scheme == "file":
        return LocalStorage(Path(unquote(url.path)))
    secret = settings.s3_secret_access_key
    return S3Storage(
        url.netloc,
        url.path,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
    )
