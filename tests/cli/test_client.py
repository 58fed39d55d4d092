"""The Python client (``iap.client.IapClient``) against a live server on both deployments."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from iap.client import IapClient, IapError
from tests.factories import PASSWORD, image_bytes
from tests.live_server import LiveServer, RemoteAccount, remote_account


@pytest.fixture
def account(live_server: LiveServer) -> RemoteAccount:
    return remote_account(live_server)


@pytest.fixture
def iap(live_server: LiveServer, account: RemoteAccount) -> Iterator[IapClient]:
    """A client logged in as a fresh account."""
    with IapClient(live_server.url) as client:
        client.login(account.username, account.password)
        yield client


def write_image(folder: Path, name: str, fmt: str = "PNG", **kwargs: object) -> Path:
    path = folder / name
    path.write_bytes(image_bytes(fmt, **kwargs))  # type: ignore[arg-type]
    return path


def test_signup_then_login_uses_the_new_token(live_server: LiveServer) -> None:
    username = f"user_{secrets.token_hex(5)}"
    with IapClient(live_server.url) as client:
        user = client.signup(username, f"{username}@example.com", PASSWORD)
        assert user["username"] == username
        assert not {"password", "password_hash"} & set(user)
        tokens = client.login(username, PASSWORD)
        assert tokens["token_type"] == "bearer"
        assert client.refresh_token == tokens["refresh_token"]
        assert client.me()["id"] == user["id"]


def test_token_given_to_the_constructor_authenticates(
    live_server: LiveServer, account: RemoteAccount
) -> None:
    with IapClient(live_server.url, token=account.access_token) as client:
        assert client.me()["username"] == account.username


def test_api_key_given_to_the_constructor_authenticates(
    live_server: LiveServer, iap: IapClient, account: RemoteAccount
) -> None:
    key = iap.create_api_key("client test")["key"]
    with IapClient(live_server.url, api_key=key) as client:
        assert client.me()["username"] == account.username


def test_upload_sends_tags_and_description_and_reports_progress(
    iap: IapClient, tmp_path: Path
) -> None:
    path = write_image(tmp_path, "harbour.png", size=(600, 400))
    seen: list[int] = []
    image = iap.upload(path, tags=["Sea", "boats"], description="At dusk", on_progress=seen.append)
    assert image["original_filename"] == "harbour.png"
    assert image["file_size"] == path.stat().st_size
    assert image["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert image["tags"] == ["boats", "sea"]
    assert image["description"] == "At dusk"
    assert (image["width"], image["height"]) == (600, 400)
    assert seen, "on_progress was never called"
    assert sum(seen) == path.stat().st_size


def test_list_images_pages_and_filters_by_tag(iap: IapClient, tmp_path: Path) -> None:
    tagged = [
        iap.upload(write_image(tmp_path, f"t{i}.png"), tags=["wanted"])["id"] for i in range(3)
    ]
    other = iap.upload(write_image(tmp_path, "other.jpg", "JPEG"))["id"]

    everything = iap.list_images()
    assert everything["total"] == 4
    assert {item["id"] for item in everything["data"]} == {*tagged, other}

    wanted = iap.list_images(tag="wanted")
    assert wanted["total"] == 3
    assert {item["id"] for item in wanted["data"]} == set(tagged)

    first, second = iap.list_images(page=1, limit=2), iap.list_images(page=2, limit=2)
    assert len(first["data"]) == len(second["data"]) == 2
    ids = [item["id"] for item in first["data"] + second["data"]]
    assert sorted(ids) == sorted([*tagged, other])


def test_iter_images_follows_the_cursors_through_every_page(iap: IapClient, tmp_path: Path) -> None:
    ids = [iap.upload(write_image(tmp_path, f"c{i}.png"), tags=["walk"])["id"] for i in range(5)]
    iap.upload(write_image(tmp_path, "not-this.png"))
    assert [image["id"] for image in iap.iter_images(limit=2, tag="walk")] == ids[::-1]
    first = iap.list_images(limit=2, tag="walk")
    after = iap.list_images(limit=2, tag="walk", cursor=first["next_cursor"])
    assert after["total"] is None
    assert [image["id"] for image in after["data"]] == ids[2:0:-1]


def test_similar_and_duplicates_find_the_copy(iap: IapClient, tmp_path: Path) -> None:
    path = write_image(tmp_path, "twice.png")
    first, second = (iap.upload(path)["id"] for _ in range(2))
    deadline = time.monotonic() + 60
    while any(iap.get_image(i)["analysis"]["status"] != "succeeded" for i in (first, second)):
        assert time.monotonic() < deadline, "analysis did not finish"
        time.sleep(0.1)
    hits = iap.similar(first, max_distance=0)["data"]
    assert [(hit["image"]["id"], hit["distance"]) for hit in hits] == [(second, 0)]
    for kind in ("exact", "near"):
        [group] = list(iap.iter_duplicates(kind, limit=1))
        assert group["keep"] == first
        assert [m["image"]["id"] for m in group["images"]] == [first, second]
    with pytest.raises(IapError) as refused:
        iap.similar(str(uuid.uuid4()))
    assert refused.value.code == "image_not_found"


def test_search_pages_through_every_hit(iap: IapClient, tmp_path: Path) -> None:
    ids = [
        iap.upload(write_image(tmp_path, f"harbour_{n}.png"), tags=["boats"])["id"]
        for n in range(3)
    ]
    iap.upload(write_image(tmp_path, "field.png"), tags=["cows"])
    page = iap.search("harbour", limit=2)
    assert len(page["data"]) == 2
    assert page["data"][0]["matches"][0]["field"] == "filename"
    hits = list(iap.iter_search("boats", limit=1))
    assert sorted(hit["image"]["id"] for hit in hits) == sorted(ids)
    assert [hit["image"]["id"] for hit in iap.iter_search("boats", tag="cows")] == []
    with pytest.raises(IapError) as refused:
        iap.search("***")
    assert refused.value.code == "invalid_query"


def test_get_image_returns_what_upload_returned(iap: IapClient, tmp_path: Path) -> None:
    image = iap.upload(write_image(tmp_path, "a.png"), tags=["x"])
    fetched = iap.get_image(image["id"])
    for field in ("id", "original_filename", "width", "height", "file_size", "sha256", "tags"):
        assert fetched[field] == image[field]
    assert fetched["analysis"]["status"]


def test_update_image_changes_editable_fields(iap: IapClient, tmp_path: Path) -> None:
    image = iap.upload(write_image(tmp_path, "before.png"), tags=["old"])
    updated = iap.update_image(
        image["id"], original_filename="after.png", tags=["new", "more"], description="edited"
    )
    assert updated["original_filename"] == "after.png"
    assert updated["tags"] == ["more", "new"]
    assert updated["description"] == "edited"
    assert iap.get_image(image["id"])["original_filename"] == "after.png"


def test_update_of_a_derived_field_raises_iap_error_422(iap: IapClient, tmp_path: Path) -> None:
    image = iap.upload(write_image(tmp_path, "a.png"))
    with pytest.raises(IapError) as caught:
        iap.update_image(image["id"], width=1)
    assert caught.value.status == 422
    assert caught.value.code == "read_only_field"


def test_download_into_a_folder_keeps_the_original_name_and_bytes(
    iap: IapClient, tmp_path: Path
) -> None:
    source = write_image(tmp_path, "Über café.jpg", "JPEG", size=(300, 200))
    image = iap.upload(source)
    target_dir = tmp_path / "downloads"
    target_dir.mkdir()
    saved = iap.download(image["id"], target_dir)
    assert saved == target_dir / "Über café.jpg"
    assert saved.read_bytes() == source.read_bytes()


def test_download_to_a_file_path_writes_there(iap: IapClient, tmp_path: Path) -> None:
    source = write_image(tmp_path, "a.png")
    image = iap.upload(source)
    saved = iap.download(image["id"], tmp_path / "copy.bin")
    assert saved == tmp_path / "copy.bin"
    assert saved.read_bytes() == source.read_bytes()


def test_download_to_a_missing_folder_named_with_a_trailing_slash_creates_it(
    iap: IapClient, tmp_path: Path
) -> None:
    source = write_image(tmp_path, "holiday.png")
    image = iap.upload(source)
    saved = iap.download(image["id"], f"{tmp_path}/copies/")
    assert saved == tmp_path / "copies" / "holiday.png"
    assert saved.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in (tmp_path / "copies").iterdir()) == ["holiday.png"]


def test_download_to_a_file_in_a_missing_folder_creates_the_folder(
    iap: IapClient, tmp_path: Path
) -> None:
    source = write_image(tmp_path, "a.png")
    image = iap.upload(source)
    saved = iap.download(image["id"], tmp_path / "new" / "b.png")
    assert saved.read_bytes() == source.read_bytes()


def test_delete_image_makes_it_404(iap: IapClient, tmp_path: Path) -> None:
    image = iap.upload(write_image(tmp_path, "a.png"))
    iap.delete_image(image["id"])
    with pytest.raises(IapError) as caught:
        iap.get_image(image["id"])
    assert (caught.value.status, caught.value.code) == (404, "image_not_found")
    assert iap.list_images()["total"] == 0


def test_unknown_image_raises_iap_error_404(iap: IapClient) -> None:
    missing = str(uuid.uuid4())
    for call in (iap.get_image, iap.delete_image):
        with pytest.raises(IapError) as caught:
            call(missing)
        assert (caught.value.status, caught.value.code) == (404, "image_not_found")
        assert caught.value.detail


def test_download_of_an_unknown_image_raises_iap_error_404(iap: IapClient, tmp_path: Path) -> None:
    with pytest.raises(IapError) as caught:
        iap.download(str(uuid.uuid4()), tmp_path)
    assert (caught.value.status, caught.value.code) == (404, "image_not_found")
    assert list(tmp_path.iterdir()) == []


def test_another_users_image_raises_iap_error_403(
    live_server: LiveServer, iap: IapClient, tmp_path: Path
) -> None:
    image = iap.upload(write_image(tmp_path, "mine.png"))
    other = remote_account(live_server)
    with (
        IapClient(live_server.url, token=other.access_token) as client,
        pytest.raises(IapError) as caught,
    ):
        client.get_image(image["id"])
    assert (caught.value.status, caught.value.code) == (403, "not_image_owner")


def test_calls_without_credentials_raise_iap_error_401(live_server: LiveServer) -> None:
    with IapClient(live_server.url) as client, pytest.raises(IapError) as caught:
        client.list_images()
    assert caught.value.status == 401
    assert caught.value.code == "not_authenticated"


def test_wrong_password_raises_iap_error_401(
    live_server: LiveServer, account: RemoteAccount
) -> None:
    with IapClient(live_server.url) as client, pytest.raises(IapError) as caught:
        client.login(account.username, "not the password at all")
    assert (caught.value.status, caught.value.code) == (401, "invalid_credentials")
    assert "Incorrect" in str(caught.value.detail)


def test_uploading_a_non_image_raises_iap_error_415(iap: IapClient, tmp_path: Path) -> None:
    text = tmp_path / "notes.png"
    text.write_text("this is not a picture\n")
    with pytest.raises(IapError) as caught:
        iap.upload(text)
    assert caught.value.status == 415
    assert caught.value.code == "unsupported_image_type"
