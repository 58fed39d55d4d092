"""Images for the analyser tests, drawn with Pillow and always passed through a real encode and
``decode()``, the path an upload takes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from skimage import data as skimage_data

from iap.analysis.decode import DecodedImage, decode

RED = (220, 20, 30)
BLUE = (20, 40, 210)
# The astronaut's face, hairline to chin, in skimage's 512x512 portrait (x0, y0, x1, y1), by eye.
ASTRONAUT_FACE = (172, 70, 282, 180)
_FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
)


def encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def decoded(image: Image.Image, fmt: str = "PNG", **options: Any) -> DecodedImage:
    return decode(io.BytesIO(encode(image, fmt, **options)))


def solid(colour: tuple[int, int, int], size: tuple[int, int] = (200, 100)) -> Image.Image:
    return Image.new("RGB", size, colour)


def halves(
    left: tuple[int, int, int], right: tuple[int, int, int], size: tuple[int, int] = (400, 200)
) -> Image.Image:
    image = Image.new("RGB", size, left)
    ImageDraw.Draw(image).rectangle((size[0] // 2, 0, size[0], size[1]), fill=right)
    return image


def grey_gradient(size: tuple[int, int] = (640, 480)) -> Image.Image:
    ramp = np.tile(np.linspace(0, 255, size[0]).astype(np.uint8), (size[1], 1))
    return Image.fromarray(ramp, "L")


def colour_gradient(size: tuple[int, int] = (640, 480)) -> Image.Image:
    x = np.linspace(0, 1, size[0])[np.newaxis, :]
    y = np.linspace(0, 1, size[1])[:, np.newaxis]
    pixels = np.stack(
        [
            np.broadcast_to(200 * x + 30, (size[1], size[0])),
            np.broadcast_to(180 * y + 40, (size[1], size[0])),
            np.full((size[1], size[0]), 150.0),
        ],
        axis=2,
    )
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def checkerboard(size: int = 800, square: int = 8) -> Image.Image:
    cells = (np.indices((size, size)) // square).sum(axis=0) % 2
    return Image.fromarray((cells * 255).astype(np.uint8), "L").convert("RGB")


def blurred(image: Image.Image, radius: float = 6) -> Image.Image:
    return image.filter(ImageFilter.GaussianBlur(radius))


def astronaut(side: int = 512) -> Image.Image:
    """skimage's astronaut portrait (Eileen Collins), shipped with scikit-image."""
    image = Image.fromarray(skimage_data.astronaut(), "RGB")
    return image if side == 512 else image.resize((side, side), Image.Resampling.LANCZOS)


def coffee() -> Image.Image:
    return Image.fromarray(skimage_data.coffee(), "RGB")


def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in _FONTS:
        if path.is_file():
            return ImageFont.truetype(str(path), size)
    return ImageFont.load_default(size=size)


def with_text(
    word: str, size: tuple[int, int], font_size: int, at: tuple[int, int]
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Black ``word`` on white; returns the image and the text's bounding box."""
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    typeface = font(font_size)
    draw.text(at, word, font=typeface, fill="black")
    left, top, right, bottom = draw.textbbox(at, word, font=typeface)
    return image, (int(left), int(top), int(right), int(bottom))


def overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0
