"""Accuracy of the text (OCR) and faces analysers on the accuracy set, run on demand:
`.venv/bin/python bench/accuracy.py`.

The set is made by ``tests/analysis/accuracy.py`` (also used by the floors in
``tests/analysis/test_accuracy.py``): known phrases drawn into enlarged sample photos at
several text heights and angles, and LFW face crops laid out over photos at several sizes, plus
pictures without faces. Every picture goes through the whole pass (decode, then the analyser)
as a JPEG. Prints, per case and per group, OCR character accuracy (case kept and ignored) and
the share of words found, face recall and false positives, the totals, and the time per image
(decode and analyser, warm: each analyser runs once before the timed cases).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime
import PIL
from PIL import Image

# The set lives with the tests (it is test data, not part of iap): import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.analysis import accuracy

from iap.analysis.analysers.faces import FacesAnalyser
from iap.analysis.analysers.text import TextAnalyser


def ms(values: Sequence[float]) -> str:
    return f"{statistics.mean(values):>7.0f}" if values else f"{'-':>7}"


def warm_up(analyser: TextAnalyser | FacesAnalyser) -> None:
    accuracy.analyse(accuracy.jpeg(Image.new("RGB", (640, 480), "grey")), analyser)


def report_ocr(scores: list[accuracy.OcrScore], show_text: bool) -> None:
    print("== OCR, per case (accuracy: 1 - edit distance / expected characters)")
    print(
        f"  {'case':<7}{'size':>6}{'height':>7}{'angle':>6}  {'background':<10} {'style':<12}"
        f"{'chars':>6}{'acc':>7}{'nocase':>7}{'words':>7}{'decode':>8}{'ocr':>7}"
    )
    for s in scores:
        c = s.case
        print(
            f"  {c.name:<7}{c.size:>6}{accuracy.percent(c.height):>7}{c.angle:>5g}°  "
            f"{c.background:<10} {c.style:<12}{s.chars:>6}"
            f"{s.accuracy:>7.3f}{s.accuracy_nocase:>7.3f}{s.words:>7.2f}{s.timed.decode_ms:>8.0f}{s.timed.analyse_ms:>7.0f}"
        )
        if show_text:
            print(f"      expected {c.expected!r}")
            print(f"      read     {s.found!r}")

    twelve = [s for s in scores if s.case.size == "12 MP"]
    angles = sorted({s.case.angle for s in twelve})
    heights = sorted({s.case.height for s in twelve})
    print("\n== OCR character accuracy (case kept), 12 MP: text height x angle")
    print(f"  {'height':<8}" + "".join(f"{a:>7g}°" for a in angles) + f"{'all':>8}")
    for height in heights:
        row = [s for s in twelve if s.case.height == height]
        cells = []
        for angle in angles:
            cell = [s for s in row if s.case.angle == angle]
            cells.append(f"{accuracy.ocr_totals(cell)['accuracy']:>8.3f}" if cell else f"{'':>8}")
        print(
            f"  {accuracy.percent(height):<8}"
            + "".join(cells)
            + f"{accuracy.ocr_totals(row)['accuracy']:>8.3f}"
        )

    print("\n== OCR by group")
    header = f"  {'group':<26}{'cases':>6}{'chars':>6}{'acc':>7}{'nocase':>7}{'words':>7}"
    print(header + f"{'decode':>8}{'ocr':>7}  (mean ms/image)")
    groups: dict[str, list[accuracy.OcrScore]] = defaultdict(list)
    for s in scores:
        groups[s.case.group].append(s)
    by_height: dict[str, list[accuracy.OcrScore]] = defaultdict(list)
    for s in scores:
        by_height[f"{s.case.size} {accuracy.percent(s.case.height)} (any angle)"].append(s)
    by_angle: dict[str, list[accuracy.OcrScore]] = defaultdict(list)
    for s in scores:
        by_angle[f"{s.case.angle:g}° (any height, size)"].append(s)
    rows = [*groups.items(), *by_height.items(), *by_angle.items(), ("TOTAL", scores)]
    for name, members in rows:
        t = accuracy.ocr_totals(members)
        print(
            f"  {name:<26}{t['cases']:>6}{t['chars']:>6}{t['accuracy']:>7.3f}"
            f"{t['accuracy_nocase']:>7.3f}{t['words']:>7.3f}"
            f"{ms([s.timed.decode_ms for s in members]):>8}"
            f"{ms([s.timed.analyse_ms for s in members]):>7}"
        )


def report_faces(scores: list[accuracy.FaceScore]) -> None:
    print("\n== Faces, per case")
    print(
        f"  {'case':<15}{'group':<40}{'faces':>6}{'found':>6}{'match':>6}{'FP':>4}"
        f"{'decode':>8}{'detect':>7}"
    )
    for s in scores:
        print(
            f"  {s.case.name:<15}{s.case.group:<40}{s.true:>6}{s.found:>6}{s.matched:>6}"
            f"{s.false_positives:>4}{s.timed.decode_ms:>8.0f}{s.timed.analyse_ms:>7.0f}"
        )
    print("\n== Faces by group (recall: true faces matched / faces placed; FP: unmatched boxes)")
    print(
        f"  {'group':<40}{'pics':>5}{'faces':>6}{'match':>6}{'recall':>7}{'FP':>4}"
        f"{'decode':>8}{'detect':>7}  (mean ms/image)"
    )
    groups: dict[str, list[accuracy.FaceScore]] = defaultdict(list)
    for s in scores:
        groups[s.case.group].append(s)
    with_faces = [s for s in scores if s.true]
    without = [s for s in scores if not s.true]
    rows = [
        *groups.items(),
        ("pictures with faces", with_faces),
        ("pictures without faces", without),
        ("TOTAL", scores),
    ]
    for name, members in rows:
        t = accuracy.face_totals(members)
        recall = f"{t['recall']:>7.3f}" if t["faces"] else f"{'-':>7}"
        print(
            f"  {name:<40}{t['cases']:>5}{t['faces']:>6}{t['matched']:>6}{recall}"
            f"{t['false_positives']:>4}{ms([s.timed.decode_ms for s in members]):>8}"
            f"{ms([s.timed.analyse_ms for s in members]):>7}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-text", action="store_true", help="leave out what OCR read")
    args = parser.parse_args()
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"Pillow {PIL.__version__}, NumPy {np.__version__}, OpenCV {cv2.__version__}, "
        f"ONNX Runtime {onnxruntime.__version__}"
    )
    text, faces = TextAnalyser(), FacesAnalyser()
    warm_up(text)
    warm_up(faces)
    started = time.perf_counter()
    ocr_cases, face_cases = accuracy.ocr_cases(), accuracy.face_cases()
    ocr_scores = [accuracy.score_ocr(case, text) for case in ocr_cases]
    ocr_seconds = time.perf_counter() - started
    started = time.perf_counter()
    face_scores = [accuracy.score_faces(case, faces) for case in face_cases]
    face_seconds = time.perf_counter() - started
    print(
        f"run: OCR {len(ocr_cases)} images in {ocr_seconds:.1f} s, faces {len(face_cases)} "
        f"images in {face_seconds:.1f} s (wall, making the images included)\n"
    )
    report_ocr(ocr_scores, show_text=not args.no_text)
    report_faces(face_scores)
    print("\n== Time per image, whole pass (decode + analyser), warm")
    for label, timings in (
        ("OCR", [s.timed.total_ms for s in ocr_scores]),
        ("faces", [s.timed.total_ms for s in face_scores]),
    ):
        print(
            f"  {label:<6} mean {statistics.mean(timings):>6.0f} ms, median "
            f"{statistics.median(timings):>6.0f} ms, max {max(timings):>6.0f} ms "
            f"over {len(timings)} images"
        )


if __name__ == "__main__":
    main()
