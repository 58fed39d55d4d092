"""Client file names are made safe to store and to echo in a header, whatever they contain."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from iap.images.filenames import MAX_FILENAME_LENGTH, clean_filename, content_disposition


@given(st.text(max_size=600))
def test_cleaned_names_are_safe(raw: str) -> None:
    name = clean_filename(raw, "PNG")
    assert name
    assert len(name) <= MAX_FILENAME_LENGTH
    assert "/" not in name
    assert "\\" not in name
    assert not any(unicodedata.category(ch).startswith("C") for ch in name)
    assert name not in {".", ".."}


@given(st.text(max_size=300))
def test_content_disposition_is_one_ascii_header_line(raw: str) -> None:
    header = content_disposition(clean_filename(raw, "JPEG"))
    assert header.isascii()
    assert "\r" not in header
    assert "\n" not in header
    assert header.startswith('attachment; filename="')


def test_control_characters_and_paths_are_dropped() -> None:
    assert clean_filename("C:\\Users\\me\\sun\x00set\x1b.jpg") == "sunset.jpg"
    assert clean_filename("../../etc/passwd") == "passwd"


def test_empty_names_get_a_name_from_the_format() -> None:
    assert clean_filename("", "JPEG") == "image.jpg"
    assert clean_filename("...", "HEIF") == "image.heic"
    assert clean_filename(None) == "image"


def test_long_names_keep_their_extension() -> None:
    name = clean_filename("x" * 400 + ".jpeg")
    assert len(name) == MAX_FILENAME_LENGTH
    assert name.endswith(".jpeg")
