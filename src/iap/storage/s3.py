"""Blobs in an S3-compatible bucket (AWS S3, MinIO, ...), through boto3 in worker threads."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO

import boto3
from anyio import to_thread
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from iap.storage.base import (
    CHUNK_SIZE,
    BlobInfo,
    BlobNotFound,
    BlobStorage,
    StorageUnavailable,
    check_key,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


class S3Storage(BlobStorage):
    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client: S3Client = boto3.client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key_id,
            aws_secret_access_key=secret_access_key,
            config=Config(
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                max_pool_connections=32,
                s3={"addressing_style": "path"} if endpoint_url else None,
            ),
        )

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    async def put(self, key: str, source: BinaryIO, content_type: str) -> None:
        def upload() -> None:
            # upload_fileobj switches to a multipart upload for large files; the object only
            # becomes visible once complete.
            source.seek(0)
            self.client.upload_fileobj(
                source, self.bucket, self._key(key), ExtraArgs={"ContentType": content_type}
            )

        await _call(upload)

    async def read(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Key": self._key(key)}
        if start or end is not None:
            kwargs["Range"] = f"bytes={start}-{'' if end is None else end}"
        response = await _call(lambda: self.client.get_object(**kwargs))
        body = response["Body"]
        try:
            while chunk := await to_thread.run_sync(body.read, CHUNK_SIZE):
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await _call(lambda: self.client.delete_object(Bucket=self.bucket, Key=self._key(key)))

    async def exists(self, key: str) -> bool:
        try:
            await _call(lambda: self.client.head_object(Bucket=self.bucket, Key=self._key(key)))
        except BlobNotFound:
            return False
        return True

    async def list(self, prefix: str) -> AsyncIterator[BlobInfo]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix))
        while page := await _call(lambda: next(pages, None)):
            for item in page.get("Contents", []):
                key = item["Key"].removeprefix(self.prefix)
                yield BlobInfo(key, item["Size"], item["LastModified"])

    async def sweep_leftovers(self, older_than: datetime) -> int:
        """Abort multipart uploads under this store's prefix begun before ``older_than``
        (a killed process leaves them; their parts cost storage and never become a blob)."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        pages = iter(paginator.paginate(Bucket=self.bucket, Prefix=self.prefix))
        aborted = 0
        while page := await _call(lambda: next(pages, None)):
            for upload in page.get("Uploads", []):
                if upload["Initiated"] >= older_than:
                    continue
                await _call(
                    partial(
                        self.client.abort_multipart_upload,
                        Bucket=self.bucket,
                        Key=upload["Key"],
                        UploadId=upload["UploadId"],
                    )
                )
                aborted += 1
        return aborted

    async def check(self) -> None:
        try:
            await _call(lambda: self.client.head_bucket(Bucket=self.bucket))
        except BlobNotFound:
            raise StorageUnavailable(f"The bucket {self.bucket!r} does not exist.") from None

    def presigned_url(
        self, key: str, *, filename_header: str, content_type: str, ttl_seconds: int
    ) -> str | None:
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": self._key(key),
                "ResponseContentDisposition": filename_header,
                "ResponseContentType": content_type,
            },
            ExpiresIn=ttl_seconds,
        )

    async def close(self) -> None:
        self.client.close()


async def _call(fn: Any) -> Any:
    """Run a blocking boto3 call in a thread, mapping its failures to storage errors."""
    try:
        return await to_thread.run_sync(fn)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}:
            raise BlobNotFound() from exc
        raise StorageUnavailable(f"The image store refused the request ({code}).") from exc
    except BotoCoreError as exc:
        raise StorageUnavailable(f"The image store cannot be reached: {exc}") from exc
