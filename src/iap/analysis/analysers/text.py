"""Text (OCR): lines of printed text, with RapidOCR (PP-OCRv4 models on ONNX Runtime, CPU).

The models ship inside the ``rapidocr-onnxruntime`` wheel (~16 MB), so nothing is downloaded
at run time. The recogniser is PP-OCR's Chinese/English one: Latin letters and digits read
well, accents and other scripts less so. The engine is loaded once per process, on first use.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage

PACKAGE = "rapidocr_onnxruntime"
# The pipeline's three models, by the part of their file names that says which is which.
MODEL_KINDS = ("det", "cls", "rec")
# OCR reads a copy at most this long: enough for text a few tens of pixels high in a photo,
# while the detector's cost (it grows with the pixel count) stays near a second on a CPU.
OCR_SIDE = 1600
MIN_CONFIDENCE = 0.5
_MAX_LINE = 1000

_engine: Any = None
_engine_lock = threading.Lock()


class TextLine(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str = Field(description="The recognised text of the line.")
    confidence: float = Field(description="Recogniser confidence, 0-1.")
    polygon: list[tuple[float, float]] = Field(
        description="The line's four corners (x, y), clockwise from top-left, in pixels of the "
        "upright original (text may be rotated)."
    )
    x: int = Field(description="Left edge of the polygon's bounding box.")
    y: int = Field(description="Top edge of the bounding box.")
    width: int = Field(description="Bounding box width.")
    height: int = Field(description="Bounding box height.")


class TextResult(AnalyserResult):
    lines: list[TextLine] = Field(
        description=f"Text lines read with confidence ≥ {MIN_CONFIDENCE:g}, in reading order "
        "(top to bottom, left to right)."
    )
    full_text: str = Field(
        description="All the text in reading order: lines side by side on the same row joined "
        "with spaces (the detector often boxes widely spaced words apart), rows with newlines."
    )


class TextAnalyser:
    name: ClassVar[str] = "text"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = TextResult

    def __init__(self, package: str = PACKAGE) -> None:
        self.package = package

    def unavailable(self) -> str | None:
        spec = importlib.util.find_spec(self.package)
        if spec is None or spec.origin is None:
            return f"OCR needs the {self.package.replace('_', '-')} package, not installed"
        if importlib.util.find_spec("onnxruntime") is None:
            return "OCR needs onnxruntime, not installed"
        models = Path(spec.origin).parent / "models"
        names = [path.name for path in models.glob("*.onnx")]
        missing = [kind for kind in MODEL_KINDS if not any(f"_{kind}_" in n for n in names)]
        if missing:
            return f"OCR models missing from {models}: {', '.join(missing)}"
        return None

    def analyse(self, image: DecodedImage) -> Output:
        sample = image.rgb.copy()
        sample.thumbnail((OCR_SIDE, OCR_SIDE), Image.Resampling.LANCZOS, reducing_gap=3.0)
        bgr = np.ascontiguousarray(np.asarray(sample)[:, :, ::-1])
        found, _timings = _load_engine()(bgr)
        to_original = 1 / ((sample.width / image.rgb.width) * image.scale)
        lines = [
            line
            for entry in found or []
            if (line := _line(entry, to_original)) is not None and line.confidence >= MIN_CONFIDENCE
        ]
        return Output(TextResult(lines=lines, full_text=_full_text(lines)))


def _load_engine() -> Any:
    """The process's OCR engine: loading it reads the three models (about half a second)."""
    global _engine
    with _engine_lock:
        if _engine is None:
            from rapidocr_onnxruntime import RapidOCR

            _engine = RapidOCR(text_score=MIN_CONFIDENCE)
        return _engine


def _line(entry: Any, to_original: float) -> TextLine | None:
    """One engine result ([corners, text, score]) as a line, or None if it is malformed or
    has no printable text."""
    try:
        corners, raw_text, raw_score = entry
        points = [(float(x) * to_original, float(y) * to_original) for x, y in corners]
        score = float(raw_score)
    except (TypeError, ValueError):
        return None
    text = "".join(ch for ch in str(raw_text) if ch.isprintable()).strip()[:_MAX_LINE]
    if not text or not points:
        return None
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    left, top = min(xs), min(ys)
    return TextLine(
        text=text,
        confidence=round(min(max(score, 0.0), 1.0), 4),
        polygon=[(round(x, 1), round(y, 1)) for x, y in points],
        x=round(left),
        y=round(top),
        width=round(max(xs) - left),
        height=round(max(ys) - top),
    )


def _full_text(lines: list[TextLine]) -> str:
    rows: list[list[TextLine]] = []
    for line in lines:
        if rows and _same_row(rows[-1][-1], line):
            rows[-1].append(line)
        else:
            rows.append([line])
    return "\n".join(
        " ".join(line.text for line in sorted(row, key=lambda line: line.x)) for row in rows
    )


def _same_row(a: TextLine, b: TextLine) -> bool:
    """Vertical centres closer than half the smaller line height."""
    centre_a, centre_b = a.y + a.height / 2, b.y + b.height / 2
    return abs(centre_a - centre_b) < min(a.height, b.height) / 2
