"""The properties analyser describes the original file, not the working copy."""

from __future__ import annotations

import io

from PIL import Image, ImageCms

from iap.analysis.analysers.properties import PropertiesAnalyser, PropertiesResult
from tests.analysis.factories import decoded, solid

ANALYSER = PropertiesAnalyser()


def properties_of(image: Image.Image, fmt: str = "PNG", **options: object) -> PropertiesResult:
    result = ANALYSER.analyse(decoded(image, fmt, **options)).result
    assert isinstance(result, PropertiesResult)
    return result


def test_rgba_png_reports_size_mode_and_alpha() -> None:
    image = Image.new("RGBA", (300, 200), (10, 200, 30, 0))
    result = properties_of(image)
    assert (result.format, result.width, result.height) == ("PNG", 300, 200)
    assert (result.mode, result.channels, result.bit_depth) == ("RGBA", 4, 8)
    assert result.has_alpha
    assert result.megapixels == 0.06
    assert (result.frames, result.animated) == (1, False)
    assert result.icc_profile is False
    assert result.icc_description is None


def test_jpeg_has_no_alpha() -> None:
    result = properties_of(solid((1, 2, 3)), "JPEG")
    assert (result.format, result.mode, result.has_alpha) == ("JPEG", "RGB", False)


def test_animated_gif_counts_its_frames() -> None:
    frames = [solid(colour, (64, 64)) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    result = properties_of(Image.open(io.BytesIO(buffer.getvalue())), "GIF", save_all=True)
    assert result.format == "GIF"
    assert result.mode == "P"
    assert (result.frames, result.animated) == (3, True)


def test_rotated_jpeg_reports_orientation_and_upright_size() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    result = properties_of(solid((90, 90, 90), (400, 200)), "JPEG", exif=exif)
    assert result.orientation == 6
    assert (result.width, result.height) == (400, 200)
    assert (result.upright_width, result.upright_height) == (200, 400)


def test_icc_profile_description_is_read() -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    result = properties_of(solid((200, 100, 50)), "JPEG", icc_profile=srgb)
    assert result.icc_profile is True
    assert result.icc_description is not None
    assert "sRGB" in result.icc_description


def test_unreadable_icc_profile_is_present_without_description() -> None:
    result = properties_of(solid((200, 100, 50)), "JPEG", icc_profile=b"not a profile at all")
    assert result.icc_profile is True
    assert result.icc_description is None


def test_greyscale_and_bilevel_modes_have_their_bit_depth() -> None:
    grey = properties_of(Image.new("L", (20, 10), 128))
    assert (grey.mode, grey.channels, grey.bit_depth) == ("L", 1, 8)
    bilevel = properties_of(Image.new("1", (20, 10), 1))
    assert (bilevel.mode, bilevel.bit_depth) == ("1", 1)
    deep = properties_of(Image.new("I;16", (20, 10), 3000))
    assert deep.bit_depth == 16
