"""People from a terminal and from Python: ``iap people ...``, ``iap faces`` and the client's
people methods, against a live server on both deployments, with real photos of faces (two of
one man, one of another). One album serves the module; the last test changes it for good."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner, Result

from iap.cli.main import app
from iap.client import IapClient, IapError
from tests.analysis.face_photos import photo
from tests.cli.helpers import CLEAN_ENV, assert_one_line_error
from tests.live_server import LiveServer, remote_account

# Long side of the uploads: the faces stay 100 px or more, and analysis stays quick.
SIDE = 720


@dataclass(frozen=True)
class Album:
    server: str
    token: str
    images: dict[str, str]  # photo name -> image id
    obama: str  # person ids
    biden: str
    faces: dict[str, str]  # photo name -> its one face's id


def shrunk(name: str, folder: Path) -> Path:
    image = Image.open(io.BytesIO(photo(name))).convert("RGB")
    image.thumbnail((SIDE, SIDE))
    path = folder / name
    image.save(path, "JPEG", quality=88)
    return path


def grouped_faces(client: IapClient, image_id: str, timeout: float = 90) -> list[dict[str, Any]]:
    """The image's faces once each has a person (grouping runs after the analysis)."""
    deadline = time.monotonic() + timeout
    while True:
        faces = client.image_faces(image_id)
        if faces and all(face["person"] for face in faces):
            return faces
        assert time.monotonic() < deadline, f"the faces of {image_id} were not grouped: {faces}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def album(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Album:
    account = remote_account(live_server)
    folder = tmp_path_factory.mktemp("faces")
    with IapClient(live_server.url, token=account.access_token) as client:
        images = {
            name: client.upload(shrunk(f"{name}.jpg", folder))["id"]
            for name in ("obama", "obama2", "biden")
        }
        faces = {name: grouped_faces(client, image_id) for name, image_id in images.items()}
    assert all(len(found) == 1 for found in faces.values()), faces
    people = {name: found[0]["person"]["id"] for name, found in faces.items()}
    return Album(
        live_server.url,
        account.access_token,
        images,
        people["obama"],
        people["biden"],
        {name: found[0]["id"] for name, found in faces.items()},
    )


@pytest.fixture
def iap(album: Album) -> Iterator[IapClient]:
    with IapClient(album.server, token=album.token) as client:
        yield client


def cli(album: Album, *args: str) -> Result:
    """``iap ARGS`` as the album's owner (server and token from the environment)."""
    env = CLEAN_ENV | {"IAP_SERVER": album.server, "IAP_TOKEN": album.token}
    return CliRunner().invoke(app, list(args), env=env)


def rows(result: Result) -> list[list[str]]:
    assert result.exit_code == 0, (result.output, result.exception)
    return [line.split("\t") for line in result.stdout.splitlines()]


def is_webp(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WEBP"


# the client ------------------------------------------------------------------------------------


def test_client_lists_two_people_the_two_photos_of_one_man_as_one(
    iap: IapClient, album: Album
) -> None:
    assert album.obama == iap.image_faces(album.images["obama2"])[0]["person"]["id"]
    assert album.obama != album.biden
    page = iap.list_people()
    assert page["total"] == 2
    assert [(p["id"], p["image_count"], p["face_count"]) for p in page["data"]] == [
        (album.obama, 2, 2),
        (album.biden, 1, 1),
    ]
    assert [p["id"] for p in iap.iter_people(limit=1)] == [album.obama, album.biden]
    assert iap.list_people(page=2, limit=1)["data"][0]["id"] == album.biden
    person = iap.get_person(album.biden)
    assert (person["name"], person["hidden"]) == (None, False)
    assert person["cover_face_id"] == album.faces["biden"]


def test_client_names_a_person_finds_them_by_name_and_forgets_the_name(
    iap: IapClient, album: Album
) -> None:
    assert iap.name_person(album.biden, "Joe Biden")["name"] == "Joe Biden"
    assert [p["id"] for p in iap.iter_people(name="joe")] == [album.biden]
    assert iap.image_faces(album.images["biden"])[0]["person"]["name"] == "Joe Biden"
    assert iap.name_person(album.biden, None)["name"] is None
    assert iap.list_people(name="joe")["total"] == 0
    with pytest.raises(IapError) as refused:
        iap.name_person(album.biden, "x" * 101)
    assert refused.value.status == 422


def test_client_hides_and_unhides_a_person(iap: IapClient, album: Album) -> None:
    assert iap.hide_person(album.biden)["hidden"] is True
    assert [p["id"] for p in iap.iter_people()] == [album.obama]
    assert {p["id"] for p in iap.iter_people(include_hidden=True)} == {album.obama, album.biden}
    assert iap.unhide_person(album.biden)["hidden"] is False
    assert iap.list_people()["total"] == 2


def test_client_gives_a_persons_images_and_thumbnails(
    iap: IapClient, album: Album, tmp_path: Path
) -> None:
    page = iap.person_images(album.obama)
    assert page["total"] == 2
    newest_first = [album.images["obama2"], album.images["obama"]]
    assert [item["image"]["id"] for item in page["data"]] == newest_first
    assert [item["faces"][0]["id"] for item in page["data"]] == [
        album.faces["obama2"],
        album.faces["obama"],
    ]
    assert [item["image"]["id"] for item in iap.iter_person_images(album.obama, 1)] == newest_first

    face = iap.person_thumbnail(album.biden)
    assert is_webp(face)
    assert iap.face_thumbnail(album.faces["biden"]) == face
    saved = iap.person_thumbnail(album.biden, tmp_path / "joe.webp")
    assert saved == tmp_path / "joe.webp"
    assert saved.read_bytes() == face
    into_folder = iap.face_thumbnail(album.faces["biden"], f"{tmp_path}/faces/")
    assert into_folder == tmp_path / "faces" / f"{album.faces['biden']}.webp"
    assert into_folder.read_bytes() == face


def test_client_raises_iap_error_for_unknown_and_other_users_people(
    live_server: LiveServer, iap: IapClient, album: Album, tmp_path: Path
) -> None:
    unknown = str(uuid.uuid4())
    for call, code in [
        (lambda: iap.get_person(unknown), "person_not_found"),
        (lambda: iap.person_images(unknown), "person_not_found"),
        (lambda: iap.face_thumbnail(unknown, tmp_path / "x.webp"), "face_not_found"),
        (lambda: iap.remove_face(album.obama, unknown), "face_not_found"),
        (lambda: iap.merge_person(album.obama, album.obama), "merge_into_itself"),
        (lambda: iap.image_faces(unknown), "image_not_found"),
    ]:
        with pytest.raises(IapError) as refused:
            call()
        assert refused.value.code == code
        assert refused.value.detail
    assert list(tmp_path.iterdir()) == []
    stranger = remote_account(live_server)
    with IapClient(live_server.url, token=stranger.access_token) as theirs:
        with pytest.raises(IapError) as refused:
            theirs.person_thumbnail(album.obama)
        assert (refused.value.status, refused.value.code) == (403, "not_person_owner")
        assert theirs.list_people()["total"] == 0


# the command -----------------------------------------------------------------------------------


def test_people_list_prints_a_line_per_person_most_images_first(album: Album) -> None:
    result = cli(album, "people", "list")
    assert rows(result) == [
        [album.obama, "2", "2", "shown", ""],
        [album.biden, "1", "1", "shown", ""],
    ]
    assert result.stderr.strip() == "2 people"


def test_people_name_lists_the_person_by_name_until_cleared(album: Album) -> None:
    named = cli(album, "people", "name", album.biden, "Joe Biden")
    assert rows(named) == [[album.biden, "1", "1", "shown", "Joe Biden"]]
    assert f"named {album.biden} 'Joe Biden'" in named.stderr
    by_name = cli(album, "people", "list", "--name", "biden")
    assert [row[0] for row in rows(by_name)] == [album.biden]
    assert "1 person named 'biden'" in by_name.stderr
    shown = {field: value for field, value in rows(cli(album, "people", "show", album.biden))}
    assert (shown["name"], shown["hidden"], shown["image_count"]) == ("Joe Biden", "false", "1")
    assert shown["cover_face_id"] == album.faces["biden"]

    cleared = cli(album, "people", "name", album.biden, "--clear")
    assert rows(cleared) == [[album.biden, "1", "1", "shown", ""]]
    assert rows(cli(album, "people", "list", "--name", "biden")) == []
    assert_one_line_error(cli(album, "people", "name", album.biden), 2, "--clear")
    too_long = cli(album, "people", "name", album.biden, "x" * 101)
    assert_one_line_error(too_long, 1, "name: ", "(validation_error)")


def test_people_hide_leaves_a_person_out_until_unhidden(album: Album) -> None:
    hidden = cli(album, "people", "hide", album.biden)
    assert rows(hidden) == [[album.biden, "1", "1", "hidden", ""]]
    assert [row[0] for row in rows(cli(album, "people", "list"))] == [album.obama]
    everyone = cli(album, "people", "list", "--hidden")
    assert [(row[0], row[3]) for row in rows(everyone)] == [
        (album.obama, "shown"),
        (album.biden, "hidden"),
    ]
    assert "2 people, hidden ones included" in everyone.stderr
    assert rows(cli(album, "people", "unhide", album.biden))[0][3] == "shown"
    assert len(rows(cli(album, "people", "list"))) == 2


def test_people_images_and_faces_say_who_is_in_which_image(album: Album) -> None:
    images = cli(album, "people", "images", album.obama)
    assert rows(images) == [
        [album.images["obama2"], album.faces["obama2"], "obama2.jpg"],
        [album.images["obama"], album.faces["obama"], "obama.jpg"],
    ]
    assert f"2 image(s) of {album.obama}" in images.stderr
    faces = cli(album, "faces", album.images["biden"])
    [[face, person, box, name]] = rows(faces)
    assert (face, person, name) == (album.faces["biden"], album.biden, "")
    x, y, width, height = map(int, box.split(","))
    assert min(x, y) >= 0
    assert min(width, height) > 50
    assert f"1 face(s) in {album.images['biden']}" in faces.stderr


def test_people_thumbnail_writes_the_persons_face_as_webp(
    album: Album, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "obama.webp"
    result = cli(album, "people", "thumbnail", album.obama, "-o", str(target))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target)
    assert is_webp(target.read_bytes())
    assert Image.open(target).size == (160, 160)
    monkeypatch.chdir(tmp_path)
    here = cli(album, "people", "thumbnail", album.biden)
    assert here.exit_code == 0, here.output
    assert is_webp((tmp_path / f"{album.biden}.webp").read_bytes())


def test_unknown_ids_exit_1_with_the_servers_one_line(album: Album) -> None:
    unknown = str(uuid.uuid4())
    for args, fragments in [
        (["people", "show", unknown], ("No person has that id", "(person_not_found)")),
        (["people", "images", unknown], ("(person_not_found)",)),
        (["people", "thumbnail", unknown], ("(person_not_found)",)),
        (["people", "merge", unknown, "--into", album.obama], ("(person_not_found)",)),
        (["people", "remove-face", album.obama, unknown], ("(face_not_found)",)),
        (["people", "merge", album.obama, "--into", album.obama], ("(merge_into_itself)",)),
        (["people", "hide", "not-an-id"], ("person_id: ", "UUID", "(validation_error)")),
        (["faces", unknown], ("(image_not_found)",)),
    ]:
        assert_one_line_error(cli(album, *args), 1, *fragments)
    no_token = CliRunner().invoke(app, ["people", "list", "--server", album.server], env=CLEAN_ENV)
    assert_one_line_error(no_token, 2, "--token", "--api-key")


def test_remove_face_then_merge_leaves_one_person(album: Album) -> None:
    """Last: it changes the album for good."""
    removed = cli(album, "people", "remove-face", album.obama, album.faces["obama2"])
    assert removed.exit_code == 0, removed.output
    assert f"took face {album.faces['obama2']} out of {album.obama}" in removed.stderr
    [[_, nobody, _, _]] = rows(cli(album, "faces", album.images["obama2"]))
    assert nobody == ""
    left = {row[0]: row for row in rows(cli(album, "people", "list"))}  # one image each now
    assert left[album.obama] == [album.obama, "1", "1", "shown", ""]

    merged = cli(album, "people", "merge", album.biden, "--into", album.obama)
    assert rows(merged) == [[album.obama, "2", "2", "shown", ""]]
    assert f"merged {album.biden} into {album.obama}: 2 face(s) in 2 image(s)" in merged.stderr
    assert_one_line_error(cli(album, "people", "show", album.biden), 1, "(person_not_found)")
    assert [row[0] for row in rows(cli(album, "people", "list"))] == [album.obama]
