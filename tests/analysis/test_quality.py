"""The quality analyser measures light, contrast, clipping and sharpness."""

from __future__ import annotations

import pytest
from PIL import Image

from iap.analysis.analysers.quality import BLUR_THRESHOLD, QualityAnalyser, QualityResult
from tests.analysis.factories import astronaut, blurred, checkerboard, decoded, halves, solid

ANALYSER = QualityAnalyser()


def quality_of(image: Image.Image, fmt: str = "PNG", **options: object) -> QualityResult:
    result = ANALYSER.analyse(decoded(image, fmt, **options)).result
    assert isinstance(result, QualityResult)
    return result


def test_blurred_checkerboard_is_blurry_and_sharp_one_is_not() -> None:
    sharp = quality_of(checkerboard(), "JPEG", quality=90)
    soft = quality_of(blurred(checkerboard()), "JPEG", quality=90)
    assert not sharp.is_blurry
    assert soft.is_blurry
    assert sharp.sharpness > BLUR_THRESHOLD > soft.sharpness
    assert sharp.sharpness > 10 * soft.sharpness
    assert soft.blur_threshold == BLUR_THRESHOLD


def test_sharpness_does_not_depend_on_resolution() -> None:
    small = quality_of(astronaut(1000), "JPEG", quality=95)
    large = quality_of(astronaut(3000), "JPEG", quality=95)
    assert large.sharpness == pytest.approx(small.sharpness, rel=0.2)


def test_photo_in_focus_is_not_blurry() -> None:
    assert not quality_of(astronaut(), "JPEG").is_blurry


def test_black_image_is_dark_flat_and_clipped() -> None:
    result = quality_of(solid((0, 0, 0)))
    assert (result.brightness, result.contrast) == (0.0, 0.0)
    assert (result.shadows_clipped, result.highlights_clipped) == (1.0, 0.0)
    assert result.is_blurry  # no detail at all


def test_mid_grey_is_half_bright_with_nothing_clipped() -> None:
    result = quality_of(solid((128, 128, 128)))
    assert result.brightness == pytest.approx(128 / 255, abs=0.001)
    assert result.contrast == 0.0
    assert (result.shadows_clipped, result.highlights_clipped) == (0.0, 0.0)


def test_black_and_white_halves_have_full_contrast_and_clip_both_ends() -> None:
    result = quality_of(halves((0, 0, 0), (255, 255, 255)))
    assert result.brightness == pytest.approx(0.5, abs=0.01)
    assert result.contrast == pytest.approx(0.5, abs=0.01)
    assert result.shadows_clipped == pytest.approx(0.5, abs=0.01)
    assert result.highlights_clipped == pytest.approx(0.5, abs=0.01)
