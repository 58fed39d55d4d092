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
