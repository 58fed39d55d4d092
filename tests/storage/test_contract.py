"""One contract, every blob store: local directory, S3 bucket, S3 bucket under a prefix."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from iap.storage import BlobNotFound, BlobStorage, LocalStorage, S3Storage, StorageUnavailable
from tests.conftest import make_bucket

pytestmark = pytest.mark.anyio

MB = 1024 * 1024
S3_CREDENTIALS = {"access_key_id": "testing", "secret_access_key": "testing"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["local", "s3", "s3-prefixed"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BlobStorage]:
    store: BlobStorage
    if request.param == "local":
        store = LocalStorage(tmp_path / "blobs")
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        prefix = "deploy/root" if request.param == "s3-prefixed" else ""
        store = S3Storage(make_bucket(endpoint), prefix, endpoint_url=endpoint, **S3_CREDENTIALS)
    yield store
    await store.close()


async def read_all(store: BlobStorage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([chunk async for chunk in store.read(key, start, end)])


async def put_bytes(store: BlobStorage, key: str, data: bytes) -> None:
    await store.put(key, io.BytesIO(data), "application/octet-stream")


@pytest.mark.parametrize(
    "size", [1, 3 * MB + 17, 9 * MB + 5], ids=["one-byte", "few-mb", "multipart-9mb"]
)
async def test_put_from_a_file_then_read_is_byte_exact(
    storage: BlobStorage, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    with source.open("rb") as handle:
        handle.read(10)  # put() must store the file from its start, not from where it stands
        await storage.put("originals/blob", handle, "image/png")
    assert await read_all(storage, "originals/blob") == data


async def test_read_all_is_the_whole_blob_and_a_missing_one_is_not_found(
    storage: BlobStorage,
) -> None:
    data = os.urandom(3 * MB + 17)
    await put_bytes(storage, "originals/whole", data)
    assert await storage.read_all("originals/whole") == data
    with pytest.raises(BlobNotFound):
        await storage.read_all("originals/missing")


async def test_put_replaces_an_existing_blob(storage: BlobStorage) -> None:
    await put_bytes(storage, "k", b"first version, longer")
    await put_bytes(storage, "k", b"second")
    assert await read_all(storage, "k") == b"second"


@pytest.mark.parametrize(
    ("start", "end"),
    [(0, None), (0, 0), (0, 99), (100, 199), (1234, 1234), (1000, None), (4095, 4095), (5, 4095)],
)
async def test_read_range_is_the_inclusive_slice(
    storage: BlobStorage, start: int, end: int | None
) -> None:
    data = os.urandom(4096)
    await put_bytes(storage, "ranged", data)
    expected = data[start:] if end is None else data[start : end + 1]
    assert await read_all(storage, "ranged", start, end) == expected


async def test_read_range_spanning_many_chunks(storage: BlobStorage) -> None:
    data = os.urandom(2 * MB)
    await put_bytes(storage, "big", data)
    start, end = 300_000, 1_700_000
    assert await read_all(storage, "big", start, end) == data[start : end + 1]


async def test_exists_is_true_only_for_stored_keys(storage: BlobStorage) -> None:
    await put_bytes(storage, "a/present", b"x")
    assert await storage.exists("a/present") is True
    assert await storage.exists("a/absent") is False
    assert await storage.exists("a") is False  # a "folder" is not a blob


async def test_delete_removes_the_blob(storage: BlobStorage) -> None:
    await put_bytes(storage, "doomed", b"bye")
    await storage.delete("doomed")
    assert await storage.exists("doomed") is False
    with pytest.raises(BlobNotFound):
        await read_all(storage, "doomed")


async def test_delete_of_a_missing_key_is_not_an_error(storage: BlobStorage) -> None:
    await storage.delete("never/stored")
    assert await storage.exists("never/stored") is False


async def test_list_returns_only_keys_under_the_prefix_with_their_sizes(
    storage: BlobStorage,
) -> None:
    blobs = {"a/1": b"1", "a/2": b"22", "a/deep/3": b"333", "b/1": b"4444", "ab": b"55555"}
    for key, data in blobs.items():
        await put_bytes(storage, key, data)
    listed = {info.key: info.size async for info in storage.list("a/")}
    assert listed == {"a/1": 1, "a/2": 2, "a/deep/3": 3}
    everything = {info.key: info.size async for info in storage.list("")}
    assert everything == {key: len(data) for key, data in blobs.items()}


async def test_list_reports_a_timezone_aware_modification_time(storage: BlobStorage) -> None:
    await put_bytes(storage, "stamped", b"x")
    [info] = [info async for info in storage.list("stamped")]
    assert info.modified.tzinfo is not None


async def test_list_of_an_empty_prefix_yields_nothing(storage: BlobStorage) -> None:
    assert [info async for info in storage.list("nothing-here/")] == []


async def test_reading_a_missing_key_raises_blob_not_found(storage: BlobStorage) -> None:
    with pytest.raises(BlobNotFound):
        await read_all(storage, "originals/missing")


@pytest.mark.parametrize(
    "key", ["../x", "a/../../x", "/abs", "a//b", "", "a/", ".hidden", "a b", "a\\b"]
)
async def test_invalid_keys_are_refused_by_every_operation(storage: BlobStorage, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        await put_bytes(storage, key, b"x")
    with pytest.raises(ValueError, match="invalid storage key"):
        await read_all(storage, key)
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.exists(key)
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.delete(key)


async def test_local_storage_never_writes_outside_its_root(tmp_path: Path) -> None:
    store = LocalStorage(tmp_path / "root")
    with pytest.raises(ValueError, match="invalid storage key"):
        await put_bytes(store, "../escaped", b"x")
    assert not (tmp_path / "escaped").exists()


async def test_check_passes_on_a_usable_store(storage: BlobStorage) -> None:
    await storage.check()


async def test_local_check_creates_a_missing_root(tmp_path: Path) -> None:
    root = tmp_path / "not" / "yet"
    await LocalStorage(root).check()
    assert root.is_dir()


async def test_local_check_on_an_unusable_root_raises_storage_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageUnavailable):
        await LocalStorage(blocker / "root").check()


async def test_s3_check_on_a_missing_bucket_raises_storage_unavailable(s3_endpoint: str) -> None:
    store = S3Storage("no-such-bucket-here", endpoint_url=s3_endpoint, **S3_CREDENTIALS)
    try:
        with pytest.raises(StorageUnavailable, match="no-such-bucket-here"):
            await store.check()
    finally:
        await store.close()


async def test_s3_prefix_keeps_keys_inside_it(s3_endpoint: str) -> None:
    import boto3

    bucket = make_bucket(s3_endpoint)
    store = S3Storage(bucket, "/tenant/", endpoint_url=s3_endpoint, **S3_CREDENTIALS)
    try:
        await put_bytes(store, "originals/one", b"1")
        raw = boto3.client(
            "s3",
            endpoint_url=s3_endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).list_objects_v2(Bucket=bucket)
        assert [item["Key"] for item in raw["Contents"]] == ["tenant/originals/one"]
        assert [info.key async for info in store.list("originals/")] == ["originals/one"]
    finally:
        await store.close()
