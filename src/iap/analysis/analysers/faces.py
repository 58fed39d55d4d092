"""Faces: found by dlib's HOG detector, each with a 128-number embedding and a thumbnail.

- Detection: dlib's frontal face detector (HOG features, five linear filters: looking ahead,
  left, right, and ahead but tilted either way), run on a greyscale copy at most
  ``DETECT_SIDE`` long, enlarged once, so that faces down to about 40 px of that copy (3 % of
  its long side) are found.
- Embedding: five landmarks (eye corners and nose) from dlib's 5-point shape predictor align a
  150 px chip of the face, and dlib's ResNet turns the chip into 128 numbers. Two faces of the
  same person lie close together: the people domain (``iap.people``) groups faces by it.
- Thumbnail: the aligned face with a margin, as a small WebP stored with the image's
  derivatives (``face-<n>.webp``), shown for the face and its person.

The models come with the ``face_recognition_models`` package (its 68-point predictor, under a
non-commercial licence, is never loaded): nothing is downloaded at run time. Boxes are in
pixels of the original image once upright (EXIF orientation applied).

Version 1 used OpenCV's Haar cascade: frontal faces only, no embedding. ``bench/accuracy.py``
measures both on the accuracy set (tests/analysis/accuracy.py): the cascade found 79 % of its
faces with 2 false ones. A 12 MP photo costs about 400 ms of detection and 90 ms a face.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import io
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from iap.analysis.analysers.base import AnalyserResult, DerivedFile, Output
from iap.analysis.decode import DecodedImage

try:
    import dlib
except ImportError:  # no dlib-bin wheel for this platform: the analyser says it is unavailable
    dlib = None

# Measured on the accuracy set's 610 faces (12 MP and 2 MP scenes, real photos), the score at
# least 0: a 1024 px copy found 83 % of them, missing most faces under 140 px of a 12 MP
# photo (27 of 100); 1280 px finds 90.5 % (79 of those 100) and nothing else, in 400 ms
# rather than 260 ms a 12 MP photo; 1536 px found 95 % in 580 ms, with five false faces.
DETECT_SIDE = 1280
UPSAMPLE = 1
# Detector scores above which a window is a face: dlib's customary 0. At 1280 px, -0.05
# found 0.8 % more faces and a mission patch on the astronaut's suit; -0.15 found 2 % more,
# the patch and a tuft of grass.
MIN_SCORE = 0.0
# Confidence = logistic((score - MIN_SCORE) / SPREAD): a face just at the threshold is 0.5,
# a clear one (score 1 and up) above 0.9.
SPREAD = 0.5
# Landmarks, chips and thumbnails come from the working image (at most 2048 px long).
CHIP_SIZE = 150
CHIP_PADDING = 0.25
THUMB_SIZE = 160
THUMB_PADDING = 0.6
THUMB_QUALITY = 80
# A crowd is embedded up to this many faces (the most confident); the rest are boxes only.
MAX_EMBEDDED = 64
EMBEDDING_SIZE = 128
# dlib's filters, in the order of the detector's index.
POSES = ("ahead", "left", "right", "ahead, tilted left", "ahead, tilted right")

_MODEL_FILES = {
    "landmarks": "shape_predictor_5_face_landmarks.dat",
    "embedding": "dlib_face_recognition_resnet_model_v1.dat",
}


def models_dir() -> Path | None:
    """Where ``face_recognition_models`` keeps its models, found without importing it (its
    ``__init__`` needs setuptools' ``pkg_resources``, which the service does not install)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def thumbnail_name(index: int) -> str:
    """Name of face ``index``'s thumbnail among the image's derivatives."""
    return f"face-{index}.webp"


def encode_embedding(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_embedding(text: str) -> np.ndarray:
    vector = np.frombuffer(base64.b64decode(text), dtype="<f4")
    if vector.shape != (EMBEDDING_SIZE,):
        raise ValueError(f"an embedding has {EMBEDDING_SIZE} numbers, not {vector.size}")
    return vector.astype(np.float32)


class Face(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    x: int = Field(description="Left edge, pixels of the upright original.")
    y: int = Field(description="Top edge, pixels of the upright original.")
    width: int = Field(description="Box width in pixels.")
    height: int = Field(description="Box height in pixels.")
    confidence: float = Field(
        description="0-1, from the detector's score through a logistic: a face at the "
        "detection threshold is 0.5, clear faces score above 0.9."
    )
    pose: str | None = Field(
        None, description=f"Which of the detector's filters found it: {', '.join(POSES)}."
    )
    embedding: str | None = Field(
        None,
        description=f"The face's {EMBEDDING_SIZE}-number embedding (dlib's ResNet), base64 of "
        "little-endian float32. Photos of one person measured 0.31-0.46 apart (Euclidean "
        "distance); sharp photos of different people 0.78 and more, small blurred faces of "
        f"different people from 0.37. Null past the first {MAX_EMBEDDED} faces of a crowd.",
    )
    thumbnail: str | None = Field(
        None, description="The face's thumbnail among the image's derivatives (WebP)."
    )


class FacesResult(AnalyserResult):
    count: int = Field(description="Number of faces found (the length of faces).")
    faces: list[Face] = Field(description="Faces found, most confident first.")


class _Models:
    """One set of dlib's models. dlib does not document them as thread-safe, and the
    embedding network keeps each run's activations, so a set serves one pass at a time; the
    predictor and network (about 0.8 s to load) load when a first face needs them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.detector = dlib.get_frontal_face_detector()
        self._landmarks: Any = None
        self._embedder: Any = None

    @property
    def landmarks(self) -> Any:
        if self._landmarks is None:
            self._landmarks = dlib.shape_predictor(str(self.directory / _MODEL_FILES["landmarks"]))
        return self._landmarks

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            path = self.directory / _MODEL_FILES["embedding"]
            self._embedder = dlib.face_recognition_model_v1(str(path))
        return self._embedder


class FacesAnalyser:
    name: ClassVar[str] = "faces"
    version: ClassVar[int] = 2
    result_model: ClassVar[type[AnalyserResult]] = FacesResult

    def __init__(self, models: Path | None = None) -> None:
        self._models_dir = models
        # Sets not in use: a pass takes one (or makes one) and gives it back, so that the
        # passes of a process share what it loaded, whichever thread they run in.
        self._idle: list[_Models] = []
        self._idle_lock = threading.Lock()

    @property
    def models(self) -> Path | None:
        return self._models_dir if self._models_dir is not None else models_dir()

    def unavailable(self) -> str | None:
        if dlib is None:
            return "dlib is not installed (the dlib-bin package)"
        directory = self.models
        if directory is None:
            return "the face_recognition_models package is not installed"
        missing = [name for name in _MODEL_FILES.values() if not (directory / name).is_file()]
        if missing:
            return f"face models missing from {directory}: {', '.join(missing)}"
        return None

    @contextlib.contextmanager
    def _models(self) -> Iterator[_Models]:
        with self._idle_lock:
            models = self._idle.pop() if self._idle else None
        if models is None:
            directory = self.models
            assert directory is not None
            models = _Models(directory)
        try:
            yield models
        finally:
            with self._idle_lock:
                self._idle.append(models)

    def analyse(self, image: DecodedImage) -> Output:
        with self._models() as models:
            return self._analyse(image, models)

    def _analyse(self, image: DecodedImage, models: _Models) -> Output:
        grey = image.grey_at(DETECT_SIDE)
        rects, scores, poses = models.detector.run(np.asarray(grey), UPSAMPLE, MIN_SCORE)
        found = sorted(
            zip(rects, scores, poses, strict=True), key=lambda item: item[1], reverse=True
        )
        working = image.rgb
        pixels = np.asarray(working)
        # Detection pixels -> working pixels, and working pixels -> original (upright) pixels.
        to_working = working.width / grey.width
        to_original = 1 / image.scale
        faces: list[Face] = []
        files: dict[str, DerivedFile] = {}
        for index, (rect, score, pose) in enumerate(found):
            left, top = rect.left() * to_working, rect.top() * to_working
            right, bottom = rect.right() * to_working, rect.bottom() * to_working
            x0, y0 = max(0.0, left), max(0.0, top)
            x1, y1 = min(float(working.width), right), min(float(working.height), bottom)
            extra: dict[str, Any] = {}
            if index < MAX_EMBEDDED:
                shape = models.landmarks(
                    pixels, dlib.rectangle(round(left), round(top), round(right), round(bottom))
                )
                chip = dlib.get_face_chip(pixels, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
                vector = np.asarray(models.embedder.compute_face_descriptor(chip))
                name = thumbnail_name(index)
                thumb = dlib.get_face_chip(pixels, shape, size=THUMB_SIZE, padding=THUMB_PADDING)
                files[name] = DerivedFile(_webp(thumb), "image/webp")
                extra = {"embedding": encode_embedding(vector), "thumbnail": name}
            faces.append(
                Face(
                    x=round(x0 * to_original),
                    y=round(y0 * to_original),
                    width=round((x1 - x0) * to_original),
                    height=round((y1 - y0) * to_original),
                    confidence=round(_confidence(float(score)), 4),
                    pose=POSES[int(pose)] if 0 <= int(pose) < len(POSES) else None,
                    **extra,
                )
            )
        return Output(FacesResult(count=len(faces), faces=faces), files)


def _confidence(score: float) -> float:
    return 1 / (1 + math.exp(-(score - MIN_SCORE) / SPREAD))


def _webp(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "WEBP", quality=THUMB_QUALITY, method=2)
    return buffer.getvalue()
