"""Properties: what the file is (format, size, mode, depth, alpha, frames, colour profile)."""

from __future__ import annotations

import io
from typing import ClassVar

from PIL import Image, ImageCms
from pydantic import Field

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage

# Bits per channel of Pillow's modes; anything else (the 8-bit modes) is 8.
_MODE_BIT_DEPTH = {"1": 1, "I": 32, "F": 32, "I;16": 16, "I;16B": 16, "I;16L": 16, "I;16N": 16}
_MAX_DESCRIPTION = 200


class PropertiesResult(AnalyserResult):
    format: str = Field(description="Container format as Pillow names it, e.g. JPEG, PNG, WEBP.")
    width: int = Field(description="Width of the original in pixels, as stored (before rotation).")
    height: int = Field(description="Height of the original in pixels, as stored.")
    upright_width: int = Field(description="Width once the EXIF orientation is applied.")
    upright_height: int = Field(description="Height once the EXIF orientation is applied.")
    megapixels: float = Field(description="width × height / 1,000,000, two decimals.")
    mode: str = Field(description="Pillow mode of the original, e.g. RGB, RGBA, L, P, CMYK.")
    channels: int = Field(description="Number of bands in that mode.")
    bit_depth: int = Field(
        description="Bits per channel of the decoded mode (1, 8, 16 or 32). Pillow reads some "
        "high-depth files (16-bit RGB PNG, 10-bit HEIF) as 8-bit, and then this says 8."
    )
    has_alpha: bool = Field(description="The image has transparency (alpha or a transparent key).")
    frames: int = Field(description="Number of frames (1 for still images).")
    animated: bool = Field(description="More than one frame.")
    orientation: int = Field(description="EXIF orientation, 1 (upright) to 8.")
    icc_profile: bool = Field(description="An embedded ICC colour profile is present.")
    icc_description: str | None = Field(
        description="The profile's description (e.g. 'Display P3'), when it can be read."
    )


class PropertiesAnalyser:
    name: ClassVar[str] = "properties"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = PropertiesResult

    def unavailable(self) -> str | None:
        return None

    def analyse(self, image: DecodedImage) -> Output:
        rotated = image.orientation in (5, 6, 7, 8)
        return Output(
            PropertiesResult(
                format=image.format,
                width=image.width,
                height=image.height,
                upright_width=image.height if rotated else image.width,
                upright_height=image.width if rotated else image.height,
                megapixels=round(image.width * image.height / 1_000_000, 2),
                mode=image.mode,
                channels=_channels(image.mode),
                bit_depth=_MODE_BIT_DEPTH.get(image.mode, 8),
                has_alpha=image.alpha is not None,
                frames=image.frames,
                animated=image.frames > 1,
                orientation=image.orientation if 1 <= image.orientation <= 8 else 1,
                icc_profile=image.icc_profile is not None,
                icc_description=_icc_description(image.icc_profile),
            )
        )


def _channels(mode: str) -> int:
    try:
        return Image.getmodebands(mode)
    except (KeyError, ValueError):
        return 1


def _icc_description(profile: bytes | None) -> str | None:
    """The profile's description tag; None when absent or unreadable (a broken profile is the
    file's problem, not a reason to fail the analyser)."""
    if not profile:
        return None
    try:
        description = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(profile)))
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        return None
    text = "".join(ch for ch in description if ch.isprintable()).strip()
    return text[:_MAX_DESCRIPTION] or None
