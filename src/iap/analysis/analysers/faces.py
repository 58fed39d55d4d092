"""Faces: frontal faces found by OpenCV's bundled Haar cascade.

A classic, small (~1 MB), CPU-only detector: good at frontal faces of reasonable size, blind to
profiles and small faces, and it sees the odd face in texture; the confidence helps tell these
apart. Boxes are in pixels of the original image once upright (EXIF orientation applied).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import cv2
import cv2.data
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage

CASCADE_PATH = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
# Detection runs on a greyscale copy at most this long: faces smaller than MIN_FACE pixels of
# it (about 2 % of the long side) are not looked for.
DETECT_SIDE = 1024
MIN_FACE = 24
SCALE_FACTOR = 1.1
# Calibrated on skimage's sample photos (astronaut at 1024 px and textures: grass, gravel,
# brick, cells) and its LFW subset of 100 frontal faces: requiring 7 overlapping hits instead of
# OpenCV's customary 5 removes the small false faces on clothing and badges and still finds 87
# of the 100 LFW faces (89 with 5).
MIN_NEIGHBOURS = 7
# Confidence = logistic((weight - CENTRE) / SPREAD) of the cascade's last-stage level weight.
# Measured weights: frontal faces median 7, 10th percentile 4.6; false detections mostly -1 to
# 3 (textures up to 6). A weight of CENTRE is 0.5; typical faces land near 0.9.
CENTRE = 3.5
SPREAD = 1.5
# Detections below this confidence are not reported: too many are texture, not faces.
MIN_CONFIDENCE = 0.5


class Face(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    x: int = Field(description="Left edge, pixels of the upright original.")
    y: int = Field(description="Top edge, pixels of the upright original.")
    width: int = Field(description="Box width in pixels.")
    height: int = Field(description="Box height in pixels.")
    confidence: float = Field(
        description="0-1, from the cascade's level weight through a logistic centred at "
        f"{CENTRE:g} (spread {SPREAD:g}): clear frontal faces score about 0.9; detections "
        f"below {MIN_CONFIDENCE:g} are not reported."
    )


class FacesResult(AnalyserResult):
    count: int = Field(description="Number of faces found (the length of faces).")
    faces: list[Face] = Field(
        description=f"Faces with confidence ≥ {MIN_CONFIDENCE:g}, most confident first."
    )


class FacesAnalyser:
    name: ClassVar[str] = "faces"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = FacesResult

    def __init__(self, cascade_path: Path = CASCADE_PATH) -> None:
        self.cascade_path = cascade_path

    def unavailable(self) -> str | None:
        if not self.cascade_path.is_file():
            return f"OpenCV's Haar cascade is missing ({self.cascade_path})"
        return None

    def analyse(self, image: DecodedImage) -> Output:
        grey = image.grey_at(DETECT_SIDE)
        pixels = cv2.equalizeHist(np.asarray(grey))
        boxes, _levels, weights = self._classifier().detectMultiScale3(
            pixels,
            scaleFactor=SCALE_FACTOR,
            minNeighbors=MIN_NEIGHBOURS,
            minSize=(MIN_FACE, MIN_FACE),
            outputRejectLevels=True,
        )
        # Detection pixels -> working pixels -> original (upright) pixels.
        to_original = 1 / ((grey.width / image.rgb.width) * image.scale)
        candidates = [
            Face(
                x=round(x * to_original),
                y=round(y * to_original),
                width=round(w * to_original),
                height=round(h * to_original),
                confidence=round(_confidence(float(weight)), 4),
            )
            for (x, y, w, h), weight in zip(boxes, np.ravel(weights), strict=True)
        ]
        faces = sorted(
            (face for face in candidates if face.confidence >= MIN_CONFIDENCE),
            key=lambda face: face.confidence,
            reverse=True,
        )
        return Output(FacesResult(count=len(faces), faces=faces))

    def _classifier(self) -> cv2.CascadeClassifier:
        """A classifier for one detection. Not one kept per process or thread: once it has run,
        a classifier keeps the integral images of every scale it searched (56 MB for 1024 px)
        until it is dropped, while loading one takes about 10 ms. It is not documented as
        thread-safe either."""
        classifier = cv2.CascadeClassifier(str(self.cascade_path))
        if classifier.empty():
            raise RuntimeError(f"cannot load the Haar cascade {self.cascade_path}")
        return classifier


def _confidence(weight: float) -> float:
    return 1 / (1 + math.exp(-(weight - CENTRE) / SPREAD))
