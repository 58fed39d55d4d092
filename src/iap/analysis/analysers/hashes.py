"""Hashes: perceptual hashes to find near-duplicates, and a blurhash placeholder.

pHash and dHash (64 bits each, as 16 hex digits) survive re-encoding, resizing and small
edits: compare them by Hamming distance (a few bits apart = the same picture). The blurhash is
a ~30-character string a client decodes into a blurred placeholder while the image loads.
"""

from __future__ import annotations

from typing import ClassVar

import blurhash
import cv2
import imagehash
import numpy as np
from PIL import Image
from pydantic import Field

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage

BLURHASH_COMPONENTS = (4, 3)
# The blurhash keeps only 4x3 cosine components: a tiny copy loses nothing it could encode
# (and its encoder, pure Python, costs a few microseconds per pixel and component).
BLURHASH_SIDE = 32
# pHash reads a 32x32 greyscale copy and dHash a 9x8 one: both are made from a copy this
# long, itself a Lanczos reduction of the working image (the same low frequencies).
HASH_SIDE = 128
PHASH_SIDE = 32
# OpenCV's DCT-II is orthonormal; SciPy's, which imagehash uses, is not: scaling row and
# column k by √(2N) (√(4N) for k = 0) turns one into the other.
_DCT_SCALE = np.full(PHASH_SIDE, np.sqrt(2 * PHASH_SIDE))
_DCT_SCALE[0] = np.sqrt(4 * PHASH_SIDE)
_DCT_SCALE_2D = _DCT_SCALE[:, np.newaxis] * _DCT_SCALE[np.newaxis, :]


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
        grey = image.grey_at(HASH_SIDE)
        return Output(
            HashesResult(
                phash=_phash(grey),
                dhash=str(imagehash.dhash(grey)),
                blurhash=_blurhash(image.rgb_at(BLURHASH_SIDE)),
            )
        )


def _phash(grey: Image.Image) -> str:
    """``imagehash.phash``: the 8x8 lowest frequencies of the DCT of a 32x32 copy, each against
    their median; the same bits, with OpenCV's DCT instead of SciPy's, which a worker would
    otherwise load for this alone (about 30 MB of memory per process)."""
    small = grey.resize((PHASH_SIDE, PHASH_SIDE), Image.Resampling.LANCZOS)
    dct = cv2.dct(np.asarray(small, dtype=np.float64)) * _DCT_SCALE_2D
    low = dct[:8, :8]
    return str(imagehash.ImageHash(low > np.median(low)))


def _blurhash(small: Image.Image) -> str:
    x_components, y_components = BLURHASH_COMPONENTS
    # The encoder is pure Python and indexes rows/pixels: plain lists are much faster for it
    # than numpy scalars.
    pixels = np.asarray(small).tolist()
    return str(blurhash.encode(pixels, components_x=x_components, components_y=y_components))
