"""Hashes: perceptual hashes to find near-duplicates, and a blurhash placeholder.

pHash and dHash (64 bits each, as 16 hex digits) survive re-encoding, resizing and small
edits: compare them by Hamming distance (a few bits apart = the same picture). The blurhash is
a ~30-character string a client decodes into a blurred placeholder while the image loads.
"""

from __future__ import annotations

from typing import ClassVar

import blurhash
import imagehash
import numpy as np
from PIL import Image
from pydantic import Field

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage

BLURHASH_COMPONENTS = (4, 3)
# The blurhash keeps only 4x3 cosine components: a tiny copy loses nothing it could encode.
BLURHASH_SIDE = 64


class HashesResult(AnalyserResult):
    phash: str = Field(description="Perceptual (DCT) hash, 64 bits as 16 hex digits.")
    dhash: str = Field(description="Difference (gradient) hash, 64 bits as 16 hex digits.")
    blurhash: str = Field(
        description=f"BlurHash with {BLURHASH_COMPONENTS[0]}x{BLURHASH_COMPONENTS[1]} "
        "components (see blurha.sh)."
    )


class HashesAnalyser:
    name: ClassVar[str] = "hashes"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = HashesResult

    def unavailable(self) -> str | None:
        return None

    def analyse(self, image: DecodedImage) -> Output:
        return Output(
            HashesResult(
                phash=str(imagehash.phash(image.rgb)),
                dhash=str(imagehash.dhash(image.rgb)),
                blurhash=_blurhash(image.rgb),
            )
        )


def _blurhash(rgb: Image.Image) -> str:
    small = rgb.copy()
    small.thumbnail((BLURHASH_SIDE, BLURHASH_SIDE), Image.Resampling.BILINEAR)
    x_components, y_components = BLURHASH_COMPONENTS
    # The encoder is pure Python and indexes rows/pixels: plain lists are much faster for it
    # than numpy scalars.
    pixels = np.asarray(small).tolist()
    return str(blurhash.encode(pixels, components_x=x_components, components_y=y_components))
