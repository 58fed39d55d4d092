"""One decode per analysis pass: every analyser reads the same ``DecodedImage``.

The original is opened once; JPEGs are decoded at a reduced DCT scale straight to about the
working size (shrink-on-load), other formats are reduced right after decoding. Metadata the
analysers need (EXIF, ICC, mode, frames) is read from the same open file before conversion.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pillow_heif
from PIL import Image, ImageOps

from iap.images.inspection import ALLOWED_FORMATS

pillow_heif.register_heif_opener()

# Long side of the working image: at most WORKING_MAX_SIDE, and (when the original is larger)
# at least MIN_WORKING_SIDE, enough for 1024 px previews and every measurement.
WORKING_MAX_SIDE = 2048
MIN_WORKING_SIDE = 1024


@dataclass(frozen=True)
class DecodedImage:
    """An original, decoded once for all analysers of a pass.

    ``rgb`` is upright (EXIF orientation applied), RGB, at most ``WORKING_MAX_SIDE`` on its
    long side; ``alpha`` is its alpha channel at the same size when the original has one.
    Everything else describes the original file.
    """

    rgb: Image.Image
    alpha: Image.Image | None
    format: str
    width: int
    height: int
    mode: str
    frames: int
    orientation: int
    exif: Image.Exif
    icc_profile: bytes | None
    info: dict[str, object] = field(default_factory=dict)

    @property
    def scale(self) -> float:
        """Working size / original size, upright (1.0 when no reduction happened)."""
        upright_width = self.height if self.orientation in (5, 6, 7, 8) else self.width
        return self.rgb.width / upright_width if upright_width else 1.0


def decode(source: BinaryIO, max_side: int = WORKING_MAX_SIDE) -> DecodedImage:
    """Decode ``source`` once into a ``DecodedImage``. Blocking: run it in a worker thread."""
    source.seek(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(source, formats=list(ALLOWED_FORMATS)) as image:
            width, height = image.size
            exif = image.getexif()
            orientation = int(exif.get(0x0112, 1) or 1)
            mode = image.mode
            frames = int(getattr(image, "n_frames", 1))
            icc = image.info.get("icc_profile")
            info: dict[str, object] = {
                str(k): v for k, v in image.info.items() if isinstance(v, (int, float, str))
            }
            fmt = image.format or ""
            if fmt == "JPEG":
                # DCT scaling (1/2, 1/4, 1/8) picks the smallest scale that still covers the
                # requested size: ask for the least any analyser needs, get 1x-2x of it.
                ratio = max(width, height) / MIN_WORKING_SIDE
                if ratio > 1:
                    image.draft("RGB", (int(width / ratio), int(height / ratio)))
            image.seek(0)
            has_alpha = "A" in image.getbands() or "transparency" in image.info
            frame = _to_8_bit(image).convert("RGBA" if has_alpha else "RGB")
    frame = ImageOps.exif_transpose(frame) if orientation != 1 else frame
    if max(frame.size) > max_side:
        frame.thumbnail((max_side, max_side), Image.Resampling.LANCZOS, reducing_gap=3.0)
    alpha = frame.getchannel("A") if has_alpha else None
    rgb = frame.convert("RGB") if has_alpha else frame
    return DecodedImage(
        rgb=rgb,
        alpha=alpha,
        format=fmt,
        width=width,
        height=height,
        mode=mode,
        frames=frames,
        orientation=orientation,
        exif=exif,
        icc_profile=icc if isinstance(icc, bytes) else None,
        info=info,
    )


def _to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale scaled to 8 bits (Pillow's own conversion clips it at 255, so nearly
    every pixel of a 16-bit image would turn white)."""
    if image.mode not in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        return image
    pixels = np.asarray(image, dtype=np.uint32) if image.mode != "I" else np.asarray(image)
    top = 65535 if image.mode != "I" or pixels.max(initial=0) > 255 else 255
    scaled = np.clip(pixels.astype(np.float64) * (255 / top), 0, 255).round().astype(np.uint8)
    return Image.fromarray(scaled, mode="L")
