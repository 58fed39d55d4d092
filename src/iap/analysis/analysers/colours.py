"""Colours: dominant colours (k-means in CIELAB), average colour, colourfulness, greyscale.

Clustering runs in CIELAB, where Euclidean distance roughly follows perceived difference, on
a small copy (SAMPLE_SIDE), with a fixed seed so the same image always gives the same palette.
Fully transparent pixels carry no visible colour and are left out.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage

FloatArray = npt.NDArray[np.float64]

SAMPLE_SIDE = 128
CLUSTERS = 6
ITERATIONS = 25
SEED = 0
# Clusters closer than this (CIE76 ΔE) are one colour to the eye: merged after clustering, so
# a flat red area split in two by JPEG noise still counts as one colour.
MERGE_DELTA_E = 12.0
# A pixel is "grey" when its chroma (√(a²+b²)) is below GREY_CHROMA; the image is greyscale when
# 99 % of its pixels are.
GREY_CHROMA = 5.0
OPAQUE_ENOUGH = 128

# Hasler & Süsstrunk (2003), table 2: the metric's value for each perceived category.
_COLOURFULNESS_SCALE = (
    (0.0, "not colourful"),
    (15.0, "slightly colourful"),
    (33.0, "moderately colourful"),
    (45.0, "averagely colourful"),
    (59.0, "quite colourful"),
    (82.0, "highly colourful"),
    (109.0, "extremely colourful"),
)

# sRGB (D65) -> XYZ, and the D65 white point.
_RGB_TO_XYZ = np.array(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ]
)
_XYZ_TO_RGB = np.linalg.inv(_RGB_TO_XYZ)
_WHITE = np.array([0.95047, 1.0, 1.08883])
_EPSILON = 216 / 24389
_KAPPA = 24389 / 27


class Colour(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    hex: str = Field(description="sRGB as '#rrggbb'.")
    rgb: tuple[int, int, int] = Field(description="sRGB, 0-255 per channel.")
    lab: tuple[float, float, float] = Field(description="CIELAB (D65): L 0-100, a, b.")


class DominantColour(Colour):
    share: float = Field(description="Fraction of the (visible) pixels in this colour, 0-1.")


class ColoursResult(AnalyserResult):
    dominant: list[DominantColour] = Field(
        description=f"Up to {CLUSTERS} dominant colours, largest share first. Shares add up to 1."
    )
    average: Colour = Field(
        description="Mean colour, averaged in linear light (what the image looks like blurred "
        "to one pixel)."
    )
    colourfulness: float = Field(
        description="Hasler–Süsstrunk colourfulness M on 0-255 sRGB: 0 for grey, ~33 moderately, "
        "~59 quite, 109+ extremely colourful."
    )
    colourfulness_label: str = Field(
        description="The metric's perceptual category, from 'not colourful' to "
        "'extremely colourful'."
    )
    is_greyscale: bool = Field(
        description=f"99 % of the pixels have CIELAB chroma below {GREY_CHROMA:g} (no visible "
        "hue); tinted monochrome such as sepia is not greyscale."
    )


class ColoursAnalyser:
    name: ClassVar[str] = "colours"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = ColoursResult

    def unavailable(self) -> str | None:
        return None

    def analyse(self, image: DecodedImage) -> Output:
        srgb = _visible_pixels(image)
        linear = _srgb_to_linear(srgb / 255.0)
        lab = _linear_to_lab(linear)
        chroma = np.hypot(lab[:, 1], lab[:, 2])
        colourfulness = _colourfulness(srgb)
        return Output(
            ColoursResult(
                dominant=_dominant(lab),
                average=_colour(_linear_to_lab(linear.mean(axis=0, keepdims=True))[0]),
                colourfulness=round(colourfulness, 2),
                colourfulness_label=_colourfulness_label(colourfulness),
                is_greyscale=bool(np.percentile(chroma, 99) < GREY_CHROMA),
            )
        )


def _visible_pixels(image: DecodedImage) -> FloatArray:
    """The sample's pixels as an (n, 3) array of sRGB 0-255, without the transparent ones
    (unless everything is transparent)."""
    pixels = np.asarray(image.rgb_at(SAMPLE_SIDE), dtype=np.float64).reshape(-1, 3)
    alpha = image.alpha_at(SAMPLE_SIDE)
    if alpha is None:
        return pixels
    opaque = np.asarray(alpha).reshape(-1) >= OPAQUE_ENOUGH
    return pixels[opaque] if opaque.any() else pixels


def _srgb_to_linear(values: FloatArray) -> FloatArray:
    return np.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(values: FloatArray) -> FloatArray:
    values = np.clip(values, 0.0, 1.0)
    return np.where(values <= 0.0031308, values * 12.92, 1.055 * values ** (1 / 2.4) - 0.055)


def _linear_to_lab(linear: FloatArray) -> FloatArray:
    xyz = linear @ _RGB_TO_XYZ.T / _WHITE
    f = np.where(xyz > _EPSILON, np.cbrt(xyz), (_KAPPA * xyz + 16) / 116)
    return np.stack(
        [116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1
    )


def _lab_to_srgb(lab: FloatArray) -> FloatArray:
    fy = (lab[:, 0] + 16) / 116
    f = np.stack([fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200], axis=1)
    xyz = np.where(f**3 > _EPSILON, f**3, (116 * f - 16) / _KAPPA) * _WHITE
    return _linear_to_srgb(xyz @ _XYZ_TO_RGB.T) * 255.0


def _colour(lab: FloatArray) -> Colour:
    r, g, b = (int(v) for v in np.clip(np.rint(_lab_to_srgb(lab[np.newaxis])[0]), 0, 255))
    return Colour(
        hex=f"#{r:02x}{g:02x}{b:02x}",
        rgb=(r, g, b),
        lab=(round(float(lab[0]), 2), round(float(lab[1]), 2), round(float(lab[2]), 2)),
    )


def _dominant(lab: FloatArray) -> list[DominantColour]:
    centres, counts = _kmeans(lab, CLUSTERS, np.random.default_rng(SEED))
    centres, counts = _merge_close(centres, counts)
    total = float(counts.sum())
    return [
        DominantColour(**_colour(centres[i]).model_dump(), share=round(counts[i] / total, 4))
        for i in np.argsort(-counts, kind="stable")
    ]


def _kmeans(
    points: FloatArray, k: int, rng: np.random.Generator
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Lloyd's k-means with k-means++ seeding; returns the non-empty clusters' centres and
    sizes. Stops adding seeds when every point coincides with one (fewer distinct colours
    than k)."""
    centres = [points[rng.integers(len(points))]]
    # Each point's squared distance to its nearest seed so far.
    nearest = ((points - centres[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = nearest.sum()
        if total <= 0:
            break
        centres.append(points[rng.choice(len(points), p=nearest / total)])
        nearest = np.minimum(nearest, ((points - centres[-1]) ** 2).sum(axis=1))
    centre_array = np.array(centres)
    for _ in range(ITERATIONS):
        labels = _nearest(points, centre_array)
        counts = np.bincount(labels, minlength=len(centre_array))
        sums = np.stack(
            [
                np.bincount(labels, weights=points[:, c], minlength=len(centre_array))
                for c in range(3)
            ],
            axis=1,
        )
        # An empty cluster keeps its centre.
        moved = np.where(
            counts[:, np.newaxis] > 0, sums / np.maximum(counts, 1)[:, np.newaxis], centre_array
        )
        if np.allclose(moved, centre_array, atol=1e-3):
            break
        centre_array = moved
    labels = _nearest(points, centre_array)
    counts = np.bincount(labels, minlength=len(centre_array)).astype(np.int64)
    keep = counts > 0
    return centre_array[keep], counts[keep]


def _nearest(points: FloatArray, centres: FloatArray) -> npt.NDArray[np.intp]:
    """Index of each point's nearest centre. |p - c|² = |p|² - 2 p·c + |c|², and |p|² is the
    same for every centre: one matrix product instead of an (n, k, 3) array of differences."""
    return np.asarray(((centres**2).sum(axis=1) - 2 * points @ centres.T).argmin(axis=1))


def _merge_close(
    centres: FloatArray, counts: npt.NDArray[np.int64]
) -> tuple[FloatArray, npt.NDArray[np.int64]]:
    """Fold each cluster into a larger one closer than MERGE_DELTA_E (count-weighted centre)."""
    merged_centres: list[FloatArray] = []
    merged_counts: list[int] = []
    for i in np.argsort(-counts, kind="stable"):
        for j, centre in enumerate(merged_centres):
            if np.linalg.norm(centre - centres[i]) < MERGE_DELTA_E:
                weight = merged_counts[j] + int(counts[i])
                merged_centres[j] = (centre * merged_counts[j] + centres[i] * counts[i]) / weight
                merged_counts[j] = weight
                break
        else:
            merged_centres.append(centres[i])
            merged_counts.append(int(counts[i]))
    return np.array(merged_centres), np.array(merged_counts, dtype=np.int64)


def _colourfulness(srgb: FloatArray) -> float:
    """Hasler & Süsstrunk (2003): σ_rgyb + 0.3·μ_rgyb over the opponent channels
    rg = R − G and yb = (R + G)/2 − B."""
    rg = srgb[:, 0] - srgb[:, 1]
    yb = 0.5 * (srgb[:, 0] + srgb[:, 1]) - srgb[:, 2]
    spread = float(np.hypot(rg.std(), yb.std()))
    mean = float(np.hypot(rg.mean(), yb.mean()))
    return spread + 0.3 * mean


def _colourfulness_label(value: float) -> str:
    """The category whose reference value is nearest."""
    return min(_COLOURFULNESS_SCALE, key=lambda entry: abs(entry[0] - value))[1]
