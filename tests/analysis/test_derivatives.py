"""The derivatives analyser makes WebP thumbnails that are never upscaled."""

from __future__ import annotations

import io

from PIL import Image, ImageCms

from iap.analysis.analysers.base import Output
from iap.analysis.analysers.derivatives import DerivativesAnalyser, DerivativesResult
from tests.analysis.factories import astronaut, colour_gradient, decoded, solid

ANALYSER = DerivativesAnalyser()


def derivatives_of(image: Image.Image, fmt: str = "PNG", **options: object) -> Output:
    return ANALYSER.analyse(decoded(image, fmt, **options))


def sizes(output: Output) -> dict[str, tuple[int, int]]:
    result = output.result
    assert isinstance(result, DerivativesResult)
    return {t.name: (t.width, t.height) for t in result.thumbnails}


def opened(output: Output, name: str) -> Image.Image:
    derived = output.files[name]
    assert derived.content_type == "image/webp"
    image = Image.open(io.BytesIO(derived.data))
    assert image.format == "WEBP"
    image.load()
    return image


def test_large_image_gets_a_thumbnail_and_a_preview() -> None:
    output = derivatives_of(colour_gradient((3000, 1500)), "JPEG", quality=90)
    assert sizes(output) == {"thumb-256.webp": (256, 128), "thumb-1024.webp": (1024, 512)}
    assert set(output.files) == {"thumb-256.webp", "thumb-1024.webp"}
    assert isinstance(output.result, DerivativesResult)
    for thumbnail in output.result.thumbnails:
        assert opened(output, thumbnail.name).size == (thumbnail.width, thumbnail.height)
        assert thumbnail.bytes == len(output.files[thumbnail.name].data)


def test_small_image_is_never_upscaled() -> None:
    output = derivatives_of(solid((10, 20, 30), (300, 150)))
    assert sizes(output) == {"thumb-256.webp": (256, 128), "thumb-1024.webp": (300, 150)}
    assert opened(output, "thumb-1024.webp").size == (300, 150)


def test_thumbnails_are_upright() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown portrait
    output = derivatives_of(solid((90, 90, 90), (400, 200)), "JPEG", exif=exif)
    assert sizes(output)["thumb-256.webp"] == (128, 256)


def test_transparency_is_kept() -> None:
    image = Image.new("RGBA", (600, 400), (0, 128, 255, 0))
    image.paste((255, 200, 0, 255), (0, 0, 300, 400))
    thumb = opened(derivatives_of(image), "thumb-256.webp")
    assert thumb.mode == "RGBA"
    assert thumb.getpixel((10, 10))[3] == 255
    assert thumb.getpixel((thumb.width - 10, 10))[3] == 0


def test_opaque_image_has_no_alpha_and_looks_the_same() -> None:
    thumb = opened(derivatives_of(astronaut(), "JPEG"), "thumb-256.webp")
    assert thumb.mode == "RGB"
    face = thumb.getpixel((112, 55))  # her cheek, in a 256x256 thumbnail
    assert isinstance(face, tuple)
    assert face[0] > face[2] + 40  # skin: much more red than blue


def test_rgb_colour_profile_is_carried_over() -> None:
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    output = derivatives_of(astronaut(), "JPEG", icc_profile=profile)
    assert opened(output, "thumb-1024.webp").info.get("icc_profile") == profile
