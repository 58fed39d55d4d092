"""Text (OCR): lines of printed text, with RapidOCR (PP-OCRv4 models on ONNX Runtime, CPU).

The models ship inside the ``rapidocr-onnxruntime`` wheel (~16 MB), so nothing is downloaded
at run time. The recogniser is PP-OCR's Chinese/English one: Latin letters and digits read
well, accents and other scripts less so. The engine is loaded once per process, on first use.

Two steps at two sizes: the detector, whose cost grows with the pixel count, looks for lines
on a small copy (DETECT_SIDE); the angle classifier and the recogniser then read only the
boxes it found, cut from the working image (up to 2048 px), so small text keeps its detail.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage
from iap.analysis.process import pass_cores

PACKAGE = "rapidocr_onnxruntime"
# The pipeline's three models, by the part of their file names that says which is which.
MODEL_KINDS = ("det", "cls", "rec")
# The detector's copy is at most this long. Measured on the accuracy set (tests/analysis/
# accuracy.py): text whose capitals are 1 % of the image high reads at 0.98 of its characters
# from 1024 px, 0.94 from 960 and 0.55 from 736 (Immich's default), where letters are 7 px.
DETECT_SIDE = 1024
MIN_CONFIDENCE = 0.5
# The recogniser reads lines 48 px high, a batch at the width of its widest line. ONNX
# Runtime plans every new input shape on its first run, at three to five times the cost of
# a run (measured: 160-300 ms against 49 for one line): lines are scaled to that height
# here, the way the recogniser would, and padded with grey (what it pads a batch's shorter
# lines with) to a multiple of LINE_WIDTH_STEP, so that shapes repeat from image to image.
LINE_HEIGHT = 48
LINE_WIDTH_STEP = 96
_PADDING_GREY = 128

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
        missing = [kind for kind in MODEL_KINDS if _model_file(models, kind) is None]
        if missing:
            return f"OCR models missing from {models}: {', '.join(missing)}"
        return None

    def analyse(self, image: DecodedImage) -> Output:
        engine = _load_engine()
        small = image.rgb_at(DETECT_SIDE)
        # Boxes in reading order (the engine sorts them), in pixels of the small copy.
        boxes, _timings = engine(_bgr(small), use_cls=False, use_rec=False)
        if not boxes:
            return Output(TextResult(lines=[], full_text=""))
        to_working = image.rgb.width / small.width
        corners = [np.asarray(box, dtype=np.float32) * to_working for box in boxes]
        # Cut from RGB and turned to BGR crop by crop: cheaper than the whole working image.
        crops = [
            np.ascontiguousarray(crop[:, :, ::-1])
            for crop in engine.get_crop_img_list(np.asarray(image.rgb), corners)
        ]
        crops, _angles, _elapsed = engine.text_cls(crops)
        read, _elapsed = engine.text_rec([_line_for_recogniser(crop) for crop in crops])
        to_original = 1 / image.scale
        lines = [
            line
            for box, (text, score, *_rest) in zip(corners, read, strict=True)
            if (line := _line((box.tolist(), text, score), to_original)) is not None
            and line.confidence >= MIN_CONFIDENCE
        ]
        return Output(TextResult(lines=lines, full_text=_full_text(lines)))


def _bgr(image: Image.Image) -> np.ndarray[Any, np.dtype[np.uint8]]:
    return np.ascontiguousarray(np.asarray(image)[:, :, ::-1])


def _line_for_recogniser(crop: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``crop`` at LINE_HEIGHT, padded on the right to a multiple of LINE_WIDTH_STEP."""
    height, width = crop.shape[:2]
    scaled = max(1, math.ceil(LINE_HEIGHT * width / max(1, height)))
    line = cv2.resize(crop, (scaled, LINE_HEIGHT))
    padded = math.ceil(scaled / LINE_WIDTH_STEP) * LINE_WIDTH_STEP
    if padded == scaled:
        return line
    grey = np.full((LINE_HEIGHT, padded - scaled, line.shape[2]), _PADDING_GREY, line.dtype)
    return np.concatenate([line, grey], axis=1)


def _load_engine() -> Any:
    """The process's OCR engine: loading it reads the three models (about half a second).

    The detector is told to keep the size it is given (it enlarges only images whose short
    side is under 32 px): ``analyse`` hands it the copy it should work on."""
    global _engine
    with _engine_lock:
        if _engine is None:
            import rapidocr_onnxruntime
            from rapidocr_onnxruntime import RapidOCR

            models = Path(rapidocr_onnxruntime.__file__).parent / "models"
            paths = {kind: _model_file(models, kind) for kind in MODEL_KINDS}
            engine = RapidOCR(
                text_score=MIN_CONFIDENCE,
                det_limit_type="min",
                det_limit_side_len=32,
                intra_op_num_threads=1,
                inter_op_num_threads=1,
                **{f"{kind}_model_path": str(path) for kind, path in paths.items()},
            )
            # One thread per session (``process.prepare_process``). Without ONNX Runtime's
            # memory arena (RapidOCR's choice) every run asks the system for its
            # activations (hundreds of MB for a 1024 px detection) and faults each page in
            # anew: measured on the detector at 1024 x 768, 200-240 ms a run against
            # 145-150 with the arena. But the arena keeps what it took: a worker process
            # held 125 MiB more between passes, and its peak over 12 and 100 MP images
            # rose from 389 to 429 MiB, as the next pass's images came on top. So the
            # arena is for processes whose passes use several cores (the embedded
            # deployment's analysis process, where the pass is what the user waits for),
            # and worker processes, sized by their peak, go without. With the arena, the
            # memory pattern (a plan per input shape) is off: once the shapes vary, it
            # raised the peak by 100 MB and saved nothing.
            holders = {
                "det": engine.text_det.infer,
                "cls": engine.text_cls.infer,
                "rec": engine.text_rec.session,
            }
            for kind, holder in holders.items():
                holder.session = _session(paths[kind])
            _engine = engine
        return _engine


def _model_file(models: Path, kind: str) -> Path | None:
    """The model of ``kind`` (det, cls or rec) in ``models``, if there is one."""
    return next(iter(sorted(models.glob(f"*_{kind}_*.onnx"))), None)


def _session(path: Path | None) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    arena = pass_cores() > 1
    options.enable_cpu_mem_arena = arena
    # Without the arena, the memory pattern is what keeps a run's activations in one block:
    # without either, the detector took 980 ms a run.
    options.enable_mem_pattern = not arena
    provider = ("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})
    return onnxruntime.InferenceSession(str(path), options, providers=[provider])


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
