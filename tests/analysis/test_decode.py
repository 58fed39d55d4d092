"""The one decode per pass: shrink on load, upright, and every pixel format brought to 8 bits."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from iap.analysis.decode import MIN_WORKING_SIDE, WORKING_MAX_SIDE, decode


def encoded(image: Image.Image, fmt: str, **save: object) -> io.BytesIO:
    out = io.BytesIO()
    image.save(out, fmt, **save)
    out.seek(0)
    return out


def test_sixteen_bit_greyscale_keeps_its_tones() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256, dtype=np.uint16), (16, 1))
    decoded = decode(encoded(Image.fromarray(ramp), "PNG"))
    row = np.asarray(decoded.rgb)[0, :, 0]
    assert row[0] == 0
    assert row[-1] == 255
    assert 120 <= row[128] <= 135  # mid-grey stays mid-grey, not white


def test_large_jpeg_is_shrunk_on_load_within_the_working_bounds() -> None:
    decoded = decode(encoded(Image.new("RGB", (6000, 4000), "teal"), "JPEG"))
    assert (decoded.width, decoded.height) == (6000, 4000)
    assert MIN_WORKING_SIDE <= max(decoded.rgb.size) <= WORKING_MAX_SIDE
    assert decoded.rgb.size[0] / decoded.rgb.size[1] == 1.5


def test_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to view
    decoded = decode(encoded(Image.new("RGB", (300, 100), "red"), "JPEG", exif=exif))
    assert decoded.orientation == 6
    assert decoded.rgb.size == (100, 300)


def test_alpha_is_kept_apart() -> None:
    decoded = decode(encoded(Image.new("RGBA", (40, 20), (255, 0, 0, 64)), "PNG"))
    assert decoded.rgb.mode == "RGB"
    assert decoded.alpha is not None
    assert decoded.alpha.getextrema() == (64, 64)


def test_pyramid_copies_are_shared_and_never_enlarged() -> None:
    decoded = decode(encoded(Image.new("RGB", (1600, 1200), "teal"), "JPEG"))
    small = decoded.rgb_at(256)
    assert small.size == (256, 192)
    assert decoded.rgb_at(256) is small  # made once per pass
    assert decoded.grey_at(256).mode == "L"
    assert decoded.grey_at(256).size == (256, 192)
    assert decoded.rgb_at(4000) is decoded.rgb  # no copy larger than the working image
    assert decoded.alpha_at(256) is None


def test_pyramid_keeps_the_picture() -> None:
    left_red = Image.new("RGB", (1200, 600), (220, 20, 30))
    left_red.paste((20, 40, 210), (600, 0, 1200, 600))
    decoded = decode(encoded(left_red, "PNG"))
    small = np.asarray(decoded.rgb_at(100)).astype(int)
    assert small.shape == (50, 100, 3)
    assert abs(small[25, 10] - (220, 20, 30)).max() <= 3
    assert abs(small[25, 90] - (20, 40, 210)).max() <= 3


def test_pyramid_alpha_follows_the_pixels() -> None:
    image = Image.new("RGBA", (800, 400), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (400, 0, 800, 400))
    decoded = decode(encoded(image, "PNG"))
    alpha = decoded.alpha_at(200)
    assert alpha is not None
    assert alpha.size == decoded.rgb_at(200).size == (200, 100)
    assert alpha.getpixel((20, 50)) == 255
    assert alpha.getpixel((180, 50)) == 0


def test_large_png_is_streamed_to_the_working_size_with_its_alpha_and_orientation() -> None:
    # Larger than the working size: libvips reads it (shrinking as it streams).
    image = Image.new("RGBA", (3000, 1000), (0, 200, 0, 255))
    image.paste((0, 0, 0, 0), (0, 0, 1500, 1000))
    exif = Image.Exif()
    exif[0x0112] = 6
    decoded = decode(encoded(image, "PNG", exif=exif))
    assert (decoded.width, decoded.height) == (3000, 1000)
    assert decoded.orientation == 6
    assert decoded.rgb.size == (683, WORKING_MAX_SIDE)  # upright: turned a quarter
    assert decoded.alpha is not None
    # Rotated 90° clockwise: the transparent left half is now the top.
    assert decoded.alpha.getpixel((300, 100)) == 0
    assert decoded.alpha.getpixel((300, 1900)) == 255
    assert np.asarray(decoded.rgb)[1900, 300].tolist() == [0, 200, 0]


def test_large_sixteen_bit_png_is_streamed_to_eight_bits() -> None:
    ramp = np.tile(np.linspace(0, 65535, 2500, dtype=np.uint16), (8, 1))
    decoded = decode(encoded(Image.fromarray(ramp), "PNG"))
    row = np.asarray(decoded.rgb)[0, :, 0]
    assert decoded.rgb.mode == "RGB"
    assert row[0] <= 2
    assert row[-1] >= 253
    assert 115 <= row[len(row) // 2] <= 140
