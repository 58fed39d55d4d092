"""The text analyser reads drawn words offline, with boxes in original-image coordinates."""

from __future__ import annotations

from PIL import Image

from iap.analysis.analysers.text import TextAnalyser, TextResult
from tests.analysis.factories import decoded, overlap, solid, with_text

ANALYSER = TextAnalyser()


def text_of(image: Image.Image, fmt: str = "PNG", **options: object) -> TextResult:
    result = ANALYSER.analyse(decoded(image, fmt, **options)).result
    assert isinstance(result, TextResult)
    return result


def test_drawn_word_is_read_where_it_was_drawn() -> None:
    image, drawn = with_text("HARBOUR", (1200, 400), 120, (150, 120))
    result = text_of(image)
    assert [line.text for line in result.lines] == ["HARBOUR"]
    assert result.full_text == "HARBOUR"
    (line,) = result.lines
    assert line.confidence > 0.8
    found = (line.x, line.y, line.x + line.width, line.y + line.height)
    assert overlap(found, drawn) > 0.5
    assert len(line.polygon) == 4


def test_boxes_are_in_original_pixels_when_decoding_shrinks_the_image() -> None:
    # 4000 px wide: decoding works on a copy at most 2048 px long.
    image, drawn = with_text("INVOICE", (4000, 1000), 240, (600, 350))
    result = text_of(image, "JPEG", quality=90)
    assert result.full_text == "INVOICE"
    (line,) = result.lines
    found = (line.x, line.y, line.x + line.width, line.y + line.height)
    assert overlap(found, drawn) > 0.5


def test_words_on_one_row_make_one_line_of_full_text() -> None:
    image, _ = with_text("Total due: 42.50 EUR", (1600, 400), 72, (100, 150))
    assert text_of(image, "JPEG", quality=90).full_text == "Total due: 42.50 EUR"


def test_several_lines_come_in_reading_order() -> None:
    image = Image.new("RGB", (1000, 600), "white")
    first, _ = with_text("FIRST", (1000, 300), 110, (100, 80))
    second, _ = with_text("SECOND", (1000, 300), 110, (100, 80))
    image.paste(first, (0, 0))
    image.paste(second, (0, 300))
    assert text_of(image).full_text.splitlines() == ["FIRST", "SECOND"]


def test_image_without_text_has_no_lines() -> None:
    result = text_of(solid((70, 140, 90), (800, 600)), "JPEG")
    assert result.lines == []
    assert result.full_text == ""


def test_missing_ocr_package_makes_the_analyser_unavailable() -> None:
    assert ANALYSER.unavailable() is None
    reason = TextAnalyser(package="no_such_ocr_package").unavailable()
    assert reason is not None
    assert "not installed" in reason
