"""Object storage: originals (and later derivatives) under UUID keys, on disk or in S3."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from iap.config import Settings
from iap.storage.base import BlobInfo, BlobNotFound, BlobStorage, StorageUnavailable
from iap.storage.local import LocalStorage

if TYPE_CHECKING:
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


def __getattr__(name: str) -> object:
    # S3Storage is imported when first asked for: boto3 costs every process that loads it
    # about 24 MB, and an install on local disk never needs it.
    if name == "S3Storage":
        from iap.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def create_storage(settings: Settings) -> BlobStorage:
    url = urlsplit(settings.resolved_storage_url)
    if url.scheme == "file":
        return LocalStorage(Path(unquote(url.path)))
    from iap.storage.s3 import S3Storage

    secret = settings.s3_secret_access_key
    return S3Storage(
        url.netloc,
        url.path,
        endpoint_url=settings.s3_endpoint_url,
        region=settings.s3_region,
        access_key_id=settings.s3_access_key_id,
        secret_access_key=secret.get_secret_value() if secret else None,
    )
