"""Accuracy of the text (OCR) and faces analysers, and of grouping faces into people, on the
accuracy set, run on demand: `.venv/bin/python bench/accuracy.py` (`--only faces people`
picks sections: ocr, faces, people, cost).

The set is made by ``tests/analysis/accuracy.py`` (also used by the floors in
``tests/analysis/test_accuracy.py``); its real photos come from ``tests/analysis/face_photos.py``
(`make pytest` fetches them). Every picture goes through the whole pass (decode, then the
analyser) as a JPEG. Prints:

- ocr: per case and per group, character accuracy (case kept and ignored) and the share of
  words found.
- faces: per case and per group, recall, false positives and precision (matched / (matched +
  false)) of the faces analyser before (version 1: OpenCV's Haar cascade with its exact
  parameters, rebuilt here) and now (the registry's analyser).
- people: on the identity set, the embeddings' distances between faces of one photo, of one
  person in other photos and of different people; a sweep of thresholds with the precision
  and recall of taking pairs within it as one person, and what ``iap.people.clustering``
  makes of the whole set at each (people made, faces in someone else's person, identities
  split); the recommended threshold.
- cost: the faces analyser on a 12 MP photo with a few real faces, whole and split into its
  steps (detection, and per face the embedding and the thumbnail), medians of several runs.

Times are wall-clock, warm (each analyser runs once before the timed cases): run it on an
otherwise idle machine.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import platform
import statistics
import sys
import textwrap
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import cv2
import cv2.data
import dlib
import numpy as np
import onnxruntime
import PIL
from PIL import Image
from skimage import data as skimage_data

# The set lives with the tests (it is test data, not part of iap): import it from the checkout.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.analysis import accuracy, face_photos

from iap.analysis import analysers
from iap.analysis.analysers import faces as faces_module
from iap.analysis.analysers.base import Analyser, AnalyserResult, Output
from iap.analysis.analysers.faces import Face, FacesAnalyser, FacesResult
from iap.analysis.analysers.text import TextAnalyser
from iap.analysis.decode import DecodedImage, decode
from iap.people import clustering

SECTIONS = ("ocr", "faces", "people", "cost")
THRESHOLDS = [round(0.35 + 0.025 * n, 3) for n in range(13)]  # 0.35 to 0.65
# A merge of two people is worse than a split (a split person is joined with a click, a merged
# one has to be taken apart face by face): the recommended threshold is the highest at which
# the clustering puts at most this many faces into another identity's person.
MERGED_FACES_ALLOWED = 1
COST_RUNS = 7
# The threshold sweep names this many of the people it mixed (the smallest first), and this
# many of the photos in each.
MIXED_SHOWN = 3
MIXED_NAMED = 4


def ms(values: Sequence[float]) -> str:
    return f"{statistics.mean(values):>7.0f}" if values else f"{'-':>7}"


def warm_up(analyser: Analyser) -> None:
    """One pass on a picture with a face and text (the astronaut's portrait and name badge),
    so that every model an analyser loads on first need is loaded before the timed cases."""
    accuracy.analyse(accuracy.jpeg(Image.fromarray(skimage_data.astronaut(), "RGB")), analyser)


# Version 1 of the faces analyser --------------------------------------------------------------


class HaarCascadeV1:
    """The faces analyser as version 1 was: OpenCV's frontal Haar cascade on a greyscale copy
    at most 1024 px long, histogram-equalised; faces of 24 px and up, scale step 1.1, 7
    neighbours; confidence the logistic of the last stage's level weight (centre 3.5, spread
    1.5), and detections under 0.5 dropped. Loaded anew for each image, as version 1 did."""

    name: ClassVar[str] = "faces"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = FacesResult

    CASCADE = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
    DETECT_SIDE = 1024
    MIN_FACE = 24
    SCALE_FACTOR = 1.1
    MIN_NEIGHBOURS = 7
    CENTRE = 3.5
    SPREAD = 1.5
    MIN_CONFIDENCE = 0.5

    def unavailable(self) -> str | None:
        return None if self.CASCADE.is_file() else f"no Haar cascade at {self.CASCADE}"

    def analyse(self, image: DecodedImage) -> Output:
        grey = image.grey_at(self.DETECT_SIDE)
        classifier = cv2.CascadeClassifier(str(self.CASCADE))
        boxes, _levels, weights = classifier.detectMultiScale3(
            cv2.equalizeHist(np.asarray(grey)),
            scaleFactor=self.SCALE_FACTOR,
            minNeighbors=self.MIN_NEIGHBOURS,
            minSize=(self.MIN_FACE, self.MIN_FACE),
            outputRejectLevels=True,
        )
        to_original = 1 / ((grey.width / image.rgb.width) * image.scale)
        found = []
        for (x, y, w, h), weight in zip(boxes, np.ravel(weights), strict=True):
            confidence = 1 / (1 + math.exp(-(float(weight) - self.CENTRE) / self.SPREAD))
            if confidence >= self.MIN_CONFIDENCE:
                found.append(
                    Face(
                        x=round(x * to_original),
                        y=round(y * to_original),
                        width=round(w * to_original),
                        height=round(h * to_original),
                        confidence=round(confidence, 4),
                    )
                )
        found.sort(key=lambda face: face.confidence, reverse=True)
        return Output(FacesResult(count=len(found), faces=found))


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


# Faces --------------------------------------------------------------------------------------


def precision(totals: dict[str, float]) -> str:
    taken = totals["matched"] + totals["false_positives"]
    return f"{totals['matched'] / taken:>6.3f}" if taken else f"{'-':>6}"


def report_faces(
    before: list[accuracy.FaceScore], now: list[accuracy.FaceScore], labels: tuple[str, str]
) -> None:
    one, two = labels
    print(f"\n== Faces, per case: {one} | {two} (ms: the analyser alone)")
    print(
        f"  {'case':<27}{'group':<42}{'faces':>5} |{'found':>6}{'match':>6}{'FP':>4}{'ms':>6}"
        f" |{'found':>6}{'match':>6}{'FP':>4}{'ms':>6}"
    )
    for b, n in zip(before, now, strict=True):
        print(
            f"  {b.case.name:<27}{b.case.group:<42}{b.true:>5} |"
            f"{b.found:>6}{b.matched:>6}{b.false_positives:>4}{b.timed.analyse_ms:>6.0f} |"
            f"{n.found:>6}{n.matched:>6}{n.false_positives:>4}{n.timed.analyse_ms:>6.0f}"
        )
    print(
        "\n== Faces by group (recall: true faces matched / faces; FP: unmatched boxes; "
        "prec: matched / (matched + FP))"
    )
    print(f"  {'':<47}{'':>5}{'':>6} | {one:<25}| {two}")
    print(
        f"  {'group':<47}{'pics':>5}{'faces':>6} |{'recall':>7}{'FP':>4}{'prec':>7}{'ms':>6}"
        f" |{'recall':>7}{'FP':>4}{'prec':>7}{'ms':>6}"
    )
    groups: dict[str, list[int]] = defaultdict(list)
    for index, score in enumerate(now):
        groups[score.case.group].append(index)
    everything = list(range(len(now)))
    rows = [
        *groups.items(),
        ("pictures with faces", [i for i in everything if now[i].true]),
        (
            "real photos and the whole astronaut portrait",
            [
                i
                for i in everything
                if now[i].case.size in (accuracy.AS_TAKEN, *accuracy.PORTRAIT_SIZES)
            ],
        ),
        ("pictures without faces", [i for i in everything if not now[i].true]),
        ("TOTAL", everything),
    ]
    for name, members in rows:
        cells = []
        for scores in (before, now):
            chosen = [scores[i] for i in members]
            t = accuracy.face_totals(chosen)
            recall = f"{t['recall']:>7.3f}" if t["faces"] else f"{'-':>7}"
            cells.append(
                f"{recall}{t['false_positives']:>4}{precision(t):>7}"
                f"{ms([s.timed.analyse_ms for s in chosen]):>6}"
            )
        t = accuracy.face_totals([now[i] for i in members])
        print(f"  {name:<47}{t['cases']:>5}{t['faces']:>6} |" + " |".join(cells))


# People -------------------------------------------------------------------------------------


def say(text: str) -> None:
    """``text`` as an indented paragraph."""
    print(textwrap.fill(text, width=100, initial_indent="  ", subsequent_indent="  "))


def spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    p = np.percentile(values, [1, 5, 25, 50, 75, 95, 99])
    return (
        f"{len(values):>6} {min(values):>6.3f} "
        + " ".join(f"{v:>6.3f}" for v in p)
        + f" {max(values):>6.3f}"
    )


def lfw(case: accuracy.IdentityCase) -> bool:
    return case.source.startswith("lfw-")


def report_people(embedded: list[accuracy.Embedded]) -> float:
    """Prints the people section; returns the recommended threshold."""
    found = [e for e in embedded if e.vector is not None]
    missed = [e.case.name for e in embedded if e.vector is None]
    identities = {e.case.identity for e in embedded}
    print("\n== People: the identity set (one labelled face a picture)")
    print(
        f"  {len(embedded)} pictures of {len(identities)} identities; the labelled face was "
        f"found and embedded in {len(found)}; missed: {', '.join(missed) or 'none'}"
    )
    by_identity: dict[str, int] = defaultdict(int)
    for e in found:
        by_identity["LFW faces (one each)" if lfw(e.case) else e.case.identity] += 1
    print("  embedded: " + ", ".join(f"{k} {v}" for k, v in sorted(by_identity.items())))

    all_pairs = accuracy.pairs(embedded)
    print("\n== Distances between embeddings (Euclidean), by kind of pair")
    print(
        f"  {'pairs':<40}{'count':>6} {'min':>6} {'p1':>6} {'p5':>6} {'p25':>6} {'median':>6} "
        f"{'p75':>6} {'p95':>6} {'p99':>6} {'max':>6}"
    )

    def kind(pair: accuracy.Pair) -> str:
        if pair.same:
            return pair.kind
        real = (not lfw(pair.a)) + (not lfw(pair.b))
        return (
            "different people: LFW and LFW",
            "different people: real and LFW",
            "different people: real and real",
        )[real]

    kinds = [
        "same photo",
        "same person, other photo",
        "different people: real and real",
        "different people: real and LFW",
        "different people: LFW and LFW",
    ]
    for name in kinds:
        print(f"  {name:<40}{spread([p.distance for p in all_pairs if kind(p) == name])}")
    same = [p.distance for p in all_pairs if p.same]
    different = [p.distance for p in all_pairs if not p.same]
    print(f"  {'all same person':<40}{spread(same)}")
    print(f"  {'all different people':<40}{spread(different)}")
    print("\n  nearest pairs of different people:")
    for pair in [p for p in all_pairs if not p.same][:10]:
        print(f"    {pair.distance:.3f}  {pair.a.name}  /  {pair.b.name}")
    print("  farthest pairs of one person:")
    for pair in [p for p in all_pairs if p.same][-5:]:
        print(f"    {pair.distance:.3f}  {pair.a.name}  /  {pair.b.name}  ({pair.kind})")

    order = accuracy.clustering_order(embedded)
    print(
        f"\n== Threshold sweep: pairs within the threshold taken as one person; the people "
        f"domain's cluster() run on all {len(order)} faces (a fixed shuffled order, each in "
        "its own picture)"
    )
    real_order = [e for e in order if not lfw(e.case)]
    print(
        f"  {'':>9}{'pairs of faces':<27} | {'cluster(), all faces':<31}| {'real photos only':<19}|"
    )
    print(
        f"  {'threshold':>9}{'pairs':>7}{'wrong':>6}{'prec':>7}{'recall':>7} |"
        f"{'people':>7}{'true':>5}{'merged':>7}{'mixed':>6}{'split':>6} |"
        f"{'people':>7}{'merged':>7}{'split':>6} |  mixed people (by photo)"
    )
    scores = {}
    for threshold in THRESHOLDS:
        p = accuracy.pair_scores(all_pairs, threshold)
        c = scores[threshold] = accuracy.score_clustering(order, threshold)
        r = accuracy.score_clustering(real_order, threshold)
        mixed = mixed_people(order, threshold)
        print(
            f"  {threshold:>9.3f}{p['taken']:>7}{p['wrong']:>6}{p['precision']:>7.3f}"
            f"{p['recall']:>7.3f} |{c.people:>7}{c.identities:>5}{c.impure:>7}{c.mixed:>6}"
            f"{c.split:>6} |{r.people:>7}{r.impure:>7}{r.split:>6} |  {mixed}"
        )
    say(
        "pairs: pairs within the threshold; wrong: of different people; prec, recall: of "
        "the pairs of one person. people: people made; true: identities; merged: faces in a "
        "person whose majority is someone else; mixed: people of more than one identity; "
        "split: identities spread over more than one person. Real photos only: the "
        f"{len(real_order)} faces of Obama, Biden and Collins, in the same order"
    )
    allowed = [t for t in THRESHOLDS if scores[t].impure <= MERGED_FACES_ALLOWED]
    recommended = max(allowed) if allowed else min(THRESHOLDS)
    first_merge = min((t for t in THRESHOLDS if scores[t].impure), default=None)
    chosen = scores[recommended]
    print()
    say(
        f"recommended SAME_PERSON_DISTANCE: {recommended:.3f} — the highest threshold of "
        f"the sweep at which at most {MERGED_FACES_ALLOWED} face joins another identity's "
        f"person (here {chosen.impure}: {mixed_people(order, recommended)}; merges start at "
        f"{'-' if first_merge is None else f'{first_merge:.3f}'} and grow above "
        f"{recommended:.3f}). There it makes {chosen.people} people of {chosen.identities} "
        f"identities, identities split: {chosen.split}. A merge is worse than a split: a "
        "split person is joined by hand once, a merged one shows a stranger's faces as "
        "someone's and has to be taken apart face by face. Currently in "
        f"iap.people.clustering: {clustering.SAME_PERSON_DISTANCE}"
    )
    return recommended


def by_number(source: str) -> tuple[str, int]:
    """ "lfw-7" before "lfw-12"."""
    stem, _, number = source.rpartition("-")
    return (stem, int(number)) if number.isdigit() else (source, -1)


def mixed_people(order: Sequence[accuracy.Embedded], threshold: float) -> str:
    """The people of more than one identity that cluster() makes at ``threshold``, by the
    photos their faces come from."""
    found = [(e.case, e.vector) for e in order if e.vector is not None]
    people = clustering.cluster(
        [], [clustering.NewFace(image=c.name, embedding=v) for c, v in found], threshold
    )
    members: dict[object, list[accuracy.IdentityCase]] = defaultdict(list)
    for (case, _), person in zip(found, people, strict=True):
        members[person].append(case)
    mixed = [
        sorted({c.source.removesuffix(".jpg") for c in cases}, key=by_number)
        for cases in members.values()
        if len({c.identity for c in cases}) > 1
    ]
    mixed.sort(key=lambda sources: (len(sources), sources))

    def named(sources: list[str]) -> str:
        if len(sources) <= MIXED_NAMED:
            return "+".join(sources)
        return "+".join(sources[:MIXED_NAMED]) + f"+{len(sources) - MIXED_NAMED} more"

    shown = ", ".join(named(sources) for sources in mixed[:MIXED_SHOWN])
    more = f" and {len(mixed) - MIXED_SHOWN} more people" if len(mixed) > MIXED_SHOWN else ""
    return (shown + more) or "-"


# Cost ---------------------------------------------------------------------------------------

# Real photos composited into a 12 MP scene, with each face this many pixels wide.
COST_PHOTOS = (("obama2.jpg", 360), ("biden.jpg", 300), ("obama3.jpg", 260), ("obama.jpg", 220))


def cost_scene() -> tuple[bytes, int]:
    """A 12 MP JPEG of the coffee photo with the real photos pasted side by side, scaled so
    their faces are 220-360 px wide; and the number of faces."""
    scene = accuracy.photo("coffee", accuracy.SIZES["12 MP"]).copy()
    left = 80
    for name, face_width in COST_PHOTOS:
        with Image.open(io.BytesIO(face_photos.photo(name))) as opened:
            image = opened.convert("RGB")
        x0, _, x1, _ = accuracy.PHOTO_FACES[name]
        factor = min(face_width / (x1 - x0), 2800 / image.height)
        image = image.resize(
            (round(image.width * factor), round(image.height * factor)), Image.Resampling.BICUBIC
        )
        scene.paste(image, (left, 3000 - image.height - 60))
        left += image.width + 60
    assert left <= scene.width, "the photos do not fit side by side"
    return accuracy.jpeg(scene), len(COST_PHOTOS)


class Models:
    """dlib's models as the faces analyser uses them, loaded here from the folder it reads
    (the files are face_recognition_models' own names), to time each step alone."""

    LANDMARKS = "shape_predictor_5_face_landmarks.dat"
    EMBEDDING = "dlib_face_recognition_resnet_model_v1.dat"

    def __init__(self, analyser: FacesAnalyser) -> None:
        directory = analyser.models
        assert directory is not None, analyser.unavailable()
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(str(directory / self.LANDMARKS))
        self.embedder = dlib.face_recognition_model_v1(str(directory / self.EMBEDDING))


def median_ms(run: Callable[[], object], runs: int = COST_RUNS) -> float:
    run()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def report_cost(analyser: FacesAnalyser) -> None:
    data, faces = cost_scene()
    print(
        f"\n== Faces analyser cost: 12 MP (4000x3000) JPEG with {faces} real faces "
        f"(220-360 px wide), median of {COST_RUNS} runs after one"
    )
    passes = [accuracy.analyse(data, analyser) for _ in range(COST_RUNS + 1)][1:]
    found = passes[-1].result["faces"]
    assert isinstance(found, list)
    analyser_ms = statistics.median(t.analyse_ms for t in passes)
    print(
        f"  whole pass: decode {statistics.median(t.decode_ms for t in passes):.0f} ms, "
        f"faces analyser {analyser_ms:.0f} ms "
        f"({len(found)} faces found, {sum(bool(f['embedding']) for f in found)} embedded)"
    )
    # The steps, on the same decoded image, with the analyser's own models and settings.
    decoded = decode(io.BytesIO(data))
    models = Models(analyser)
    grey = decoded.grey_at(faces_module.DETECT_SIDE)
    pixels = np.asarray(decoded.rgb)
    grey_pixels = np.asarray(grey)
    detect_ms = median_ms(
        lambda: models.detector.run(grey_pixels, faces_module.UPSAMPLE, faces_module.MIN_SCORE)
    )
    rects, _, _ = models.detector.run(grey_pixels, faces_module.UPSAMPLE, faces_module.MIN_SCORE)
    to_working = decoded.rgb.width / grey.width
    embed_ms, thumb_ms = [], []
    for rect in rects:
        box = dlib.rectangle(
            round(rect.left() * to_working),
            round(rect.top() * to_working),
            round(rect.right() * to_working),
            round(rect.bottom() * to_working),
        )

        def embed(box: dlib.rectangle = box) -> dlib.full_object_detection:
            shape = models.landmarks(pixels, box)
            chip = dlib.get_face_chip(
                pixels, shape, size=faces_module.CHIP_SIZE, padding=faces_module.CHIP_PADDING
            )
            models.embedder.compute_face_descriptor(chip)
            return shape

        shape = embed()
        embed_ms.append(median_ms(embed))

        def thumbnail(shape: dlib.full_object_detection = shape) -> None:
            chip = dlib.get_face_chip(
                pixels, shape, size=faces_module.THUMB_SIZE, padding=faces_module.THUMB_PADDING
            )
            Image.fromarray(chip).save(
                io.BytesIO(), "WEBP", quality=faces_module.THUMB_QUALITY, method=2
            )

        thumb_ms.append(median_ms(thumbnail))
    per_face = statistics.median(embed_ms) if embed_ms else 0.0
    per_thumb = statistics.median(thumb_ms) if thumb_ms else 0.0
    print(
        f"  detection alone (dlib HOG on the {max(grey.size)} px grey copy, upsampled "
        f"{2**faces_module.UPSAMPLE}x): {detect_ms:.0f} ms, {len(rects)} faces"
    )
    print(
        f"  per face: embedding (5 landmarks, {faces_module.CHIP_SIZE} px chip, ResNet) "
        f"{per_face:.0f} ms, thumbnail (chip and WebP) {per_thumb:.1f} ms "
        f"(median over the faces of each one's median)"
    )
    print(
        f"  detection + {len(rects)} x (embedding + thumbnail) = "
        f"{detect_ms + len(rects) * (per_face + per_thumb):.0f} ms, against "
        f"{analyser_ms:.0f} ms for the whole analyser in the pass (grey copy included)"
    )


# Main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-text", action="store_true", help="leave out what OCR read")
    parser.add_argument("--only", nargs="+", choices=SECTIONS, default=SECTIONS)
    args = parser.parse_args()
    started_all = time.perf_counter()
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"Pillow {PIL.__version__}, NumPy {np.__version__}, OpenCV {cv2.__version__}, "
        f"dlib {dlib.__version__}, ONNX Runtime {onnxruntime.__version__}"
    )
    faces = analysers.producing(FacesResult)
    assert isinstance(faces, FacesAnalyser), "the registry's faces analyser is not dlib's"
    before = HaarCascadeV1()
    timings: list[tuple[str, list[float]]] = []
    if "ocr" in args.only:
        text = TextAnalyser()
        warm_up(text)
        started = time.perf_counter()
        ocr_cases = accuracy.ocr_cases()
        ocr_scores = [accuracy.score_ocr(case, text) for case in ocr_cases]
        print(
            f"run: OCR {len(ocr_cases)} images in {time.perf_counter() - started:.1f} s "
            "(wall, making the images included)\n"
        )
        report_ocr(ocr_scores, show_text=not args.no_text)
        timings.append(("OCR", [s.timed.total_ms for s in ocr_scores]))
    if "faces" in args.only:
        warm_up(before)
        warm_up(faces)
        face_cases = accuracy.face_cases()
        started = time.perf_counter()
        before_scores = [accuracy.score_faces(case, before) for case in face_cases]
        before_seconds = time.perf_counter() - started
        started = time.perf_counter()
        now_scores = [accuracy.score_faces(case, faces) for case in face_cases]
        print(
            f"\nrun: faces {len(face_cases)} images, version 1 in {before_seconds:.1f} s, "
            f"version {faces.version} in {time.perf_counter() - started:.1f} s (wall, making "
            "the images included in version 1's)"
        )
        labels = ("before: v1 Haar cascade", f"now: v{faces.version} dlib HOG + ResNet")
        report_faces(before_scores, now_scores, labels)
        timings.append(("faces v1", [s.timed.total_ms for s in before_scores]))
        timings.append((f"faces v{faces.version}", [s.timed.total_ms for s in now_scores]))
    if "people" in args.only:
        warm_up(faces)
        started = time.perf_counter()
        embedded = [accuracy.embed_identity(case, faces) for case in accuracy.identity_cases()]
        print(
            f"\nrun: identity set, {len(embedded)} images in "
            f"{time.perf_counter() - started:.1f} s (wall, making the images included)"
        )
        report_people(embedded)
    if "cost" in args.only:
        report_cost(faces)
    if timings:
        print("\n== Time per image, whole pass (decode + analyser), warm")
        for label, values in timings:
            print(
                f"  {label:<9} mean {statistics.mean(values):>6.0f} ms, median "
                f"{statistics.median(values):>6.0f} ms, max {max(values):>6.0f} ms "
                f"over {len(values)} images"
            )
    print(f"\ntotal: {time.perf_counter() - started_all:.0f} s")


if __name__ == "__main__":
    main()
