"""Create the S3 bucket that IAP_STORAGE_URL names, if it does not exist yet: a one-shot set-up
step of the scaled deployment (iap refuses to start without its bucket).

Run with the same IAP_* environment as the API and workers (the image has it at
/usr/local/lib/iap/create_bucket.py); it reads the settings and builds the S3 client exactly as
iap does, so it creates the very bucket iap will use. Exit status 0 when the bucket is there,
2 for a configuration iap itself would refuse, 1 when the storage never answered.
"""

from __future__ import annotations

import asyncio
import sys
import time

from botocore.exceptions import BotoCoreError, ClientError

from iap.config import ConfigError, load_settings
from iap.storage import S3Storage, StorageUnavailable, create_storage

ATTEMPTS = 30
PAUSE_SECONDS = 2.0


def ensure_bucket(storage: S3Storage, region: str) -> bool:
    """Create the bucket unless it exists; True if it was created here."""
    try:
        storage.client.head_bucket(Bucket=storage.bucket)
        return False
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    if region == "us-east-1":  # S3 refuses a location constraint naming its default region
        storage.client.create_bucket(Bucket=storage.bucket)
    else:
        # The stubs list today's AWS regions; S3-compatible stores name their own.
        storage.client.create_bucket(
            Bucket=storage.bucket,
            CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
        )
    return True


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    storage = create_storage(settings)
    if not isinstance(storage, S3Storage):
        print("error: IAP_STORAGE_URL is not an s3:// URL; there is no bucket to create")
        return 2
    # The storage server may still be starting: try for a minute before giving up.
    for attempt in range(1, ATTEMPTS + 1):
        try:
            created = ensure_bucket(storage, settings.s3_region)
            asyncio.run(storage.check())  # exactly the check iap makes at start-up
        except (BotoCoreError, ClientError, StorageUnavailable) as exc:
            if attempt == ATTEMPTS:
                print(f"error: bucket {storage.bucket!r}: {exc}", file=sys.stderr)
                return 1
            time.sleep(PAUSE_SECONDS)
            continue
        print(f"bucket {storage.bucket!r} {'created' if created else 'already there'}")
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
