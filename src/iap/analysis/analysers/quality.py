"""Quality: brightness, contrast, sharpness, exposure clipping and a blur flag.

Everything is measured on luma (ITU-R 601, Pillow's "L"). Sharpness is the variance of the
Laplacian, which grows with the amount of fine edge detail; it depends on the scale it is
measured at, so it is always measured on a copy whose long side is SHARPNESS_SIDE (smaller
images at their own size: upscaling would itself blur them).
"""

from __future__ import annotations

from typing import ClassVar

import cv2
import numpy as np
from PIL import Image
from pydantic import Field

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage

SHARPNESS_SIDE = 512
# Brightness, contrast and clipping are read off a copy this long: a million pixels give the
# same statistics as the full image to three decimals.
STATS_SIDE = 1024
# Laplacian variance below which an image is called blurry. 100 is the customary threshold for
# this measure at about this scale: in-focus photographs score in the hundreds to thousands,
# defocused or motion-blurred ones in the tens. Flat images (a clear sky, a solid colour)
# score low too: "blurry" here means "no sharp detail anywhere".
BLUR_THRESHOLD = 100.0
# Luma at or below / at or above these counts as clipped shadows / highlights (a few levels of
# slack for JPEG noise around pure black and white).
SHADOW_CLIP = 4
HIGHLIGHT_CLIP = 251


class QualityResult(AnalyserResult):
    brightness: float = Field(description="Mean luma, 0 (black) to 1 (white).")
    contrast: float = Field(
        description="RMS contrast: standard deviation of luma on a 0-1 scale (0 flat, 0.5 max)."
    )
    sharpness: float = Field(
        description=f"Variance of the Laplacian of luma (0-255) at {SHARPNESS_SIDE} px long side. "
        "Higher is sharper; comparable across images of different sizes."
    )
    is_blurry: bool = Field(description="sharpness < blur_threshold.")
    blur_threshold: float = Field(description="The threshold is_blurry was decided with.")
    shadows_clipped: float = Field(
        description=f"Fraction of pixels with luma ≤ {SHADOW_CLIP} of 255 (crushed blacks)."
    )
    highlights_clipped: float = Field(
        description=f"Fraction of pixels with luma ≥ {HIGHLIGHT_CLIP} of 255 (blown highlights)."
    )


class QualityAnalyser:
    name: ClassVar[str] = "quality"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = QualityResult

    def unavailable(self) -> str | None:
        return None

    def analyse(self, image: DecodedImage) -> Output:
        luma = np.asarray(image.grey_at(STATS_SIDE))
        sharpness = _laplacian_variance(image.grey_at(SHARPNESS_SIDE))
        return Output(
            QualityResult(
                brightness=round(float(luma.mean()) / 255, 4),
                contrast=round(float(luma.std()) / 255, 4),
                sharpness=round(sharpness, 2),
                is_blurry=sharpness < BLUR_THRESHOLD,
                blur_threshold=BLUR_THRESHOLD,
                shadows_clipped=round(float(np.mean(luma <= SHADOW_CLIP)), 4),
                highlights_clipped=round(float(np.mean(luma >= HIGHLIGHT_CLIP)), 4),
            )
        )


def _laplacian_variance(grey: Image.Image) -> float:
    # The pyramid reduces with Lanczos, which keeps the fine detail the measure is about; a
    # softer filter (bilinear) would make the same picture score half as sharp when uploaded
    # at a larger size.
    laplacian = cv2.Laplacian(np.asarray(grey), cv2.CV_64F)
    return float(laplacian.var())
