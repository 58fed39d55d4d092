"""The colours analyser finds the colours a person would name, in the right proportions."""

from __future__ import annotations

from PIL import Image, ImageDraw

from iap.analysis.analysers.colours import ColoursAnalyser, ColoursResult, DominantColour
from tests.analysis.factories import (
    BLUE,
    RED,
    astronaut,
    colour_gradient,
    decoded,
    grey_gradient,
    halves,
    solid,
)

ANALYSER = ColoursAnalyser()


def colours_of(image: Image.Image, fmt: str = "PNG", **options: object) -> ColoursResult:
    result = ANALYSER.analyse(decoded(image, fmt, **options)).result
    assert isinstance(result, ColoursResult)
    return result


def near(colour: DominantColour, rgb: tuple[int, int, int], tolerance: int = 25) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour.rgb, rgb, strict=True))


def test_half_red_half_blue_jpeg_has_both_at_half_share() -> None:
    result = colours_of(halves(RED, BLUE), "JPEG", quality=90)
    top_two = result.dominant[:2]
    assert any(near(c, RED) for c in top_two)
    assert any(near(c, BLUE) for c in top_two)
    for colour in top_two:
        assert 0.45 <= colour.share <= 0.55
    assert abs(sum(c.share for c in result.dominant) - 1) < 0.001
    assert [c.share for c in result.dominant] == sorted(
        (c.share for c in result.dominant), reverse=True
    )


def test_solid_colour_is_one_colour_equal_to_the_average() -> None:
    result = colours_of(solid((30, 120, 200)))
    assert len(result.dominant) == 1
    (only,) = result.dominant
    assert only.share == 1.0
    assert only.hex == "#1e78c8"
    assert only.rgb == (30, 120, 200)
    assert result.average.rgb == (30, 120, 200)


def test_average_is_taken_in_linear_light() -> None:
    # Half black, half white looks like a ~74 % grey from afar (sRGB 188), not 50 % (128).
    result = colours_of(halves((0, 0, 0), (255, 255, 255)))
    assert all(abs(channel - 188) <= 2 for channel in result.average.rgb)


def test_greyscale_image_is_flagged_and_not_colourful() -> None:
    result = colours_of(grey_gradient())
    assert result.is_greyscale
    assert result.colourfulness < 1
    assert result.colourfulness_label == "not colourful"
    assert all(abs(c.lab[1]) < 1 and abs(c.lab[2]) < 1 for c in result.dominant)


def test_colourful_images_are_not_greyscale() -> None:
    split = colours_of(halves(RED, BLUE))
    assert not split.is_greyscale
    assert split.colourfulness_label == "extremely colourful"
    photo = colours_of(astronaut(), "JPEG")
    assert not photo.is_greyscale
    assert 15 < photo.colourfulness < split.colourfulness


def test_transparent_pixels_do_not_count() -> None:
    image = Image.new("RGBA", (200, 100), (255, 0, 0, 0))  # invisible red
    ImageDraw.Draw(image).rectangle((0, 0, 99, 99), fill=(0, 160, 60, 255))
    result = colours_of(image)
    assert len(result.dominant) == 1
    assert near(result.dominant[0], (0, 160, 60), tolerance=3)


def test_gradient_gives_several_colours() -> None:
    result = colours_of(colour_gradient())
    assert 3 <= len(result.dominant) <= 6
    assert len({c.hex for c in result.dominant}) == len(result.dominant)


def test_same_image_always_gives_the_same_palette() -> None:
    image = decoded(astronaut(), "JPEG")
    assert ANALYSER.analyse(image).result == ANALYSER.analyse(image).result
