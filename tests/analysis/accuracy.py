"""Accuracy set for the text (OCR) and faces analysers, made here from fixed seeds.

Shared by ``tests/analysis/test_accuracy.py`` (floors on the totals) and ``bench/accuracy.py``
(the full table). Nothing is downloaded and nothing is stored: backgrounds are scikit-image's
bundled sample photos and textures (files inside the wheel), the faces its bundled LFW subset,
the font Pillow's own scalable default (Aileron Regular, inside Pillow), and every image is
drawn, encoded as a JPEG (quality 90) and read back through the whole analysis pass
(``run_pass``: decode, then the analyser), as an upload is.

OCR cases: known phrases drawn on a contrasting plate or with an outline, at several text
heights (the height of a capital letter as a share of the image height) and angles, on
12 MP (4000x3000) and 2 MP (1632x1224) pictures. Scored by character accuracy: 1 - edit
distance / expected length, whitespace collapsed, with and without case, clipped at 0; and by
the share of expected words found anywhere in the text (order-free).

Face cases: the LFW subset's 100 face crops (25x25 greyscale) enlarged to 60-300 px and laid
out over photos without faces, the astronaut's portrait, and pictures without faces (the
subset's 100 non-face crops; grass, gravel and brick textures). Scored by recall (true faces
matched by a detection: IoU ≥ 0.3 or the detection's centre inside the true box, one
detection per face) and false positives (every detection left unmatched, a second box on an
already matched face included).
"""

from __future__ import annotations

import functools
import io
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from skimage import data as skimage_data

from iap.analysis.analysers.base import Analyser
from iap.analysis.pipeline import run_pass

Box = tuple[float, float, float, float]  # x0, y0, x1, y1

SIZES = {"12 MP": (4000, 3000), "2 MP": (1632, 1224)}
JPEG_QUALITY = 90
# Film-like grain added to every enlarged background (standard deviation, 0-255 levels).
GRAIN = 3.0

# Short phrases of capitals, lower case and digits; each case draws the ones that fit, in order.
PHRASES = (
    "HARBOUR MARKET 1984",
    "Open daily 9am to 5pm",
    "PLATFORM 7",
    "Fresh bread",
    "NO PARKING 24H",
    "Gate B12",
    "Welcome home",
    "EXIT 3",
    "Since 1921",
    "LOW BRIDGE",
    "Route 66",
    "Tickets 450",
)
TEXT_HEIGHTS = (0.01, 0.02, 0.04, 0.08)
TEXT_ANGLES = (0, 5, 15, 30)
# Photos without text of their own (the astronaut wears a name badge, the motorcycle a brand).
OCR_BACKGROUNDS = ("coffee", "rocket", "chelsea")
TEXT_STYLES = ("light plate", "outline", "dark plate")
MAX_PHRASES = 3

# Greyscale LFW crops: the first 100 are faces, the other 100 are background patches.
LFW_FACES = range(100)
LFW_NON_FACES = range(100, 200)
TEXTURES = ("grass", "gravel", "brick")
# The astronaut's face, hairline to chin, in skimage's 512x512 portrait, by eye.
ASTRONAUT_FACE: Box = (172, 70, 282, 180)
# The part of the portrait used (x0, y0, x1, y1): 4:3, face and shoulders.
ASTRONAUT_CROP = (0, 0, 512, 384)
MIN_IOU = 0.3


# Backgrounds -------------------------------------------------------------------------------


def _sample(name: str) -> np.ndarray:
    pixels: np.ndarray = getattr(skimage_data, name)()
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return pixels


def _crop_4_3(image: Image.Image) -> Image.Image:
    """The largest centred 4:3 part of ``image``."""
    width, height = image.size
    if width * 3 > height * 4:
        new_width = height * 4 // 3
        left = (width - new_width) // 2
        return image.crop((left, 0, left + new_width, height))
    new_height = width * 3 // 4
    top = (height - new_height) // 2
    return image.crop((0, top, width, top + new_height))


def _grain(image: Image.Image, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    pixels = np.asarray(image, dtype=np.float32)
    noise = rng.standard_normal(pixels.shape[:2], dtype=np.float32)[..., np.newaxis] * GRAIN
    return Image.fromarray(np.clip(pixels + noise, 0, 255).astype(np.uint8), "RGB")


@functools.lru_cache(maxsize=8)
def photo(name: str, size: tuple[int, int]) -> Image.Image:
    """skimage's sample ``name``, cut to 4:3, enlarged to ``size``, with grain. Cached: callers
    must copy it before drawing."""
    source = Image.fromarray(_sample(name), "RGB")
    cut = source.crop(ASTRONAUT_CROP) if name == "astronaut" else _crop_4_3(source)
    return _grain(cut.resize(size, Image.Resampling.BICUBIC), seed=len(name) * 7919 + size[0])


def texture(name: str, size: tuple[int, int]) -> Image.Image:
    """skimage's 512x512 texture ``name`` at twice its scale, repeated (mirrored, so no seams)
    to cover ``size``."""
    pixels = np.asarray(
        Image.fromarray(_sample(name), "RGB").resize((1024, 1024), Image.Resampling.BICUBIC)
    )
    tile = np.concatenate([pixels, pixels[:, ::-1]], axis=1)
    tile = np.concatenate([tile, tile[::-1]], axis=0)
    reps = (-(-size[1] // tile.shape[0]), -(-size[0] // tile.shape[1]), 1)
    covered = np.tile(tile, reps)[: size[1], : size[0]]
    return _grain(Image.fromarray(np.ascontiguousarray(covered), "RGB"), seed=len(name))


def jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


# OCR cases ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _font(size: int) -> ImageFont.FreeTypeFont:
    font = ImageFont.load_default(size=size)
    assert isinstance(font, ImageFont.FreeTypeFont), "Pillow lacks FreeType: no scalable font"
    return font


def font_for_cap_height(cap_height: float) -> ImageFont.FreeTypeFont:
    """The font whose capital letters are ``cap_height`` pixels high."""
    _, top, _, bottom = _font(100).getbbox("H")
    return _font(max(6, round(cap_height * 100 / (bottom - top))))


def _label(text: str, font: ImageFont.FreeTypeFont, style: str, angle: float) -> Image.Image:
    """``text`` on a transparent layer, in ``style``, turned ``angle`` degrees anticlockwise."""
    size = int(font.size)
    pad = max(2, round(size * 0.3))
    stroke = max(1, round(size / 14)) if style == "outline" else 0
    left, top, right, bottom = font.getbbox(text, stroke_width=stroke)
    layer = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    origin = (pad - left, pad - top)
    if style == "light plate":
        draw.rectangle((0, 0, *layer.size), fill=(250, 248, 240, 235))
        draw.text(origin, text, font=font, fill=(20, 20, 25, 255))
    elif style == "dark plate":
        draw.rectangle((0, 0, *layer.size), fill=(25, 30, 40, 225))
        draw.text(origin, text, font=font, fill=(255, 214, 40, 255))
    else:
        draw.text(
            origin,
            text,
            font=font,
            fill=(255, 255, 255, 255),
            stroke_width=stroke,
            stroke_fill=(0, 0, 0, 255),
        )
    if angle:
        layer = layer.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    return layer


def percent(share: float) -> str:
    return f"{share * 100:g}%"


@dataclass(frozen=True)
class OcrCase:
    name: str
    size: str  # a key of SIZES
    height: float  # capital letter height / image height
    angle: float  # degrees, anticlockwise
    background: str
    style: str
    seed: int
    first_phrase: int = 0  # where in PHRASES this case starts looking for phrases that fit

    @property
    def group(self) -> str:
        return f"{self.size} {percent(self.height)} {self.angle:g}°"

    @functools.cached_property
    def _drawn(self) -> tuple[bytes, tuple[str, ...]]:
        width, height = SIZES[self.size]
        image = photo(self.background, SIZES[self.size]).copy()
        font = font_for_cap_height(self.height * height)
        rng = np.random.default_rng(self.seed)
        margin = round(0.04 * width)
        order = PHRASES[self.first_phrase :] + PHRASES[: self.first_phrase]
        labels = []
        for phrase in order:
            label = _label(phrase, font, self.style, self.angle)
            if label.width <= width - 2 * margin:
                labels.append((phrase, label))
            if len(labels) == MAX_PHRASES:
                break
        # Stack them top to bottom, as many as fit with at least a third of a label's height
        # between two, so that the reading order is the order of the expected text.
        used: list[tuple[str, Image.Image]] = []
        gaps: list[int] = []
        for phrase, label in labels:
            gap = label.height // 3 if used else 0
            if sum(gaps) + sum(lb.height for _, lb in used) + gap + label.height > (
                height - 2 * margin
            ):
                break
            used.append((phrase, label))
            gaps.append(gap)
        assert used, f"{self.name}: no phrase fits"
        spare = height - 2 * margin - sum(gaps) - sum(label.height for _, label in used)
        if len(used) == 1:
            y, extra = margin + int(rng.integers(0, spare + 1)), 0
        else:
            y, extra = margin, spare // (len(used) - 1)
        for (_, label), gap in zip(used, gaps, strict=True):
            y += gap + (extra if gap else 0)
            x = margin + int(rng.integers(0, width - 2 * margin - label.width + 1))
            image.paste(label, (x, y), label)
            y += label.height
        return jpeg(image), tuple(phrase for phrase, _ in used)

    def jpeg(self) -> bytes:
        return self._drawn[0]

    @property
    def phrases(self) -> tuple[str, ...]:
        return self._drawn[1]

    @property
    def expected(self) -> str:
        return "\n".join(self.phrases)


def ocr_cases() -> list[OcrCase]:
    """The OCR set: every text height at every angle on 12 MP pictures; the smaller heights
    flat on 2 MP ones; one upright (90°) line."""
    cases: list[OcrCase] = []

    def add(size: str, height: float, angle: float) -> None:
        index = len(cases)
        cases.append(
            OcrCase(
                name=f"ocr-{index:02d}",
                size=size,
                height=height,
                angle=angle,
                background=OCR_BACKGROUNDS[index % len(OCR_BACKGROUNDS)],
                style=TEXT_STYLES[(index + index // len(OCR_BACKGROUNDS)) % len(TEXT_STYLES)],
                seed=1000 + index,
                first_phrase=(index * 5) % len(PHRASES),
            )
        )

    for height in TEXT_HEIGHTS:
        for angle in TEXT_ANGLES:
            add("12 MP", height, angle)
    for height in TEXT_HEIGHTS[:3]:
        add("2 MP", height, 0)
    add("12 MP", 0.04, 90)
    return cases


# Text metric -------------------------------------------------------------------------------


def normalise(text: str, casefold: bool = False) -> str:
    """Whitespace runs (line breaks too) collapsed to one space; optionally case-folded."""
    joined = " ".join(text.split())
    return joined.casefold() if casefold else joined


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions, each costing 1."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, char_a in enumerate(a, start=1):
        current = [i]
        for j, char_b in enumerate(b, start=1):
            current.append(
                min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (char_a != char_b))
            )
        previous = current
    return previous[-1]


def char_accuracy(expected: str, found: str, casefold: bool = False) -> float:
    want, got = normalise(expected, casefold), normalise(found, casefold)
    if not want:
        return 1.0 if not got else 0.0
    return max(0.0, 1 - edit_distance(want, got) / len(want))


def words_found(expected: str, found: str) -> float:
    """Share of the expected words (with repeats, case kept) found anywhere in ``found``."""
    want = expected.split()
    got = found.split()
    hits = 0
    for word in want:
        if word in got:
            got.remove(word)
            hits += 1
    return hits / len(want) if want else 1.0


# Face cases --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _lfw() -> np.ndarray:
    """The LFW subset as 8-bit greyscale (scikit-image gives floats scaled to 0-1)."""
    crops = np.asarray(skimage_data.lfw_subset(), dtype=np.float64)
    return np.clip(crops * 255 + 0.5, 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class FaceCase:
    name: str
    group: str
    size: str  # a key of SIZES
    background: str  # a sample photo, a texture, or "astronaut"
    crops: tuple[int, ...] = ()  # LFW indices laid out over the background, in grid order
    crop_sides: tuple[int, int] = (0, 0)  # smallest and largest side of a placed crop, pixels
    seed: int = 0

    @functools.cached_property
    def _drawn(self) -> tuple[bytes, tuple[Box, ...]]:
        width, height = SIZES[self.size]
        if self.background == "astronaut":
            image = photo("astronaut", SIZES[self.size])
            x0, y0, x1, y1 = ASTRONAUT_CROP
            sx, sy = width / (x1 - x0), height / (y1 - y0)
            fx0, fy0, fx1, fy1 = ASTRONAUT_FACE
            face = ((fx0 - x0) * sx, (fy0 - y0) * sy, (fx1 - x0) * sx, (fy1 - y0) * sy)
            return jpeg(image), (face,)
        if self.background in TEXTURES:
            image = texture(self.background, SIZES[self.size])
        else:
            image = photo(self.background, SIZES[self.size]).copy()
        boxes: list[Box] = []
        if self.crops:
            rng = np.random.default_rng(self.seed)
            columns = max(1, round(np.sqrt(len(self.crops) * width / height)))
            rows = -(-len(self.crops) // columns)
            cell_w, cell_h = width // columns, height // rows
            low, high = self.crop_sides
            assert high <= min(cell_w, cell_h), f"{self.name}: crops larger than their cells"
            crops = _lfw()
            for n, index in enumerate(self.crops):
                side = int(rng.integers(low, high + 1))
                row, column = divmod(n, columns)
                x = column * cell_w + int(rng.integers(0, cell_w - side + 1))
                y = row * cell_h + int(rng.integers(0, cell_h - side + 1))
                tile = Image.fromarray(crops[index], "L").resize(
                    (side, side), Image.Resampling.BICUBIC
                )
                image.paste(tile.convert("RGB"), (x, y))
                if index in LFW_FACES:
                    boxes.append((x, y, x + side, y + side))
        return jpeg(image), tuple(boxes)

    def jpeg(self) -> bytes:
        return self._drawn[0]

    @property
    def faces(self) -> tuple[Box, ...]:
        """The true faces' boxes, in pixels of the picture."""
        return self._drawn[1]


def face_cases() -> list[FaceCase]:
    """The faces set: for each size band, all 100 LFW faces over two pictures (50 each); the
    astronaut at both sizes; the 100 non-face crops in two pictures; three textures at both
    sizes."""
    bands = [
        ("12 MP", (100, 140), "coffee"),
        ("12 MP", (150, 220), "coffee"),
        ("12 MP", (230, 300), "coffee"),
        ("12 MP", (150, 220), "rocket"),
        ("2 MP", (60, 90), "coffee"),
        ("2 MP", (120, 170), "coffee"),
    ]
    faces = list(LFW_FACES)
    non_faces = list(LFW_NON_FACES)
    half = len(faces) // 2
    cases = [
        FaceCase(
            name=f"faces-{n:02d}{'ab'[part]}",
            group=f"{size} LFW {low}-{high} px on {background}",
            size=size,
            background=background,
            crops=tuple(faces[part * half : (part + 1) * half]),
            crop_sides=(low, high),
            seed=2000 + 2 * n + part,
        )
        for n, (size, (low, high), background) in enumerate(bands)
        for part in (0, 1)
    ]
    cases += [
        FaceCase(
            name=f"astronaut-{size[:-3]}mp",
            group=f"{size} astronaut",
            size=size,
            background="astronaut",
        )
        for size in SIZES
    ]
    cases += [
        FaceCase(
            name="non-faces-12mp",
            group="12 MP LFW non-faces 150-220 px on coffee",
            size="12 MP",
            background="coffee",
            crops=tuple(non_faces[:50]),
            crop_sides=(150, 220),
            seed=3000,
        ),
        FaceCase(
            name="non-faces-2mp",
            group="2 MP LFW non-faces 80-120 px on rocket",
            size="2 MP",
            background="rocket",
            crops=tuple(non_faces[50:]),
            crop_sides=(80, 120),
            seed=3001,
        ),
    ]
    cases += [
        FaceCase(
            name=f"{name}-{size[:-3]}mp", group=f"{size} texture {name}", size=size, background=name
        )
        for size in SIZES
        for name in TEXTURES
    ]
    return cases


# Face metric -------------------------------------------------------------------------------


def iou(a: Box, b: Box) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def _matches(found: Box, true: Box) -> bool:
    cx, cy = (found[0] + found[2]) / 2, (found[1] + found[3]) / 2
    centre_inside = true[0] <= cx <= true[2] and true[1] <= cy <= true[3]
    return centre_inside or iou(found, true) >= MIN_IOU


def match_faces(true: Sequence[Box], found: Sequence[Box]) -> tuple[int, int]:
    """(true faces matched, false positives). Detections are taken in the order given (most
    confident first) and each claims the unclaimed true face it overlaps most."""
    claimed: set[int] = set()
    false_positives = 0
    for box in found:
        candidates = [
            (iou(box, face), n)
            for n, face in enumerate(true)
            if n not in claimed and _matches(box, face)
        ]
        if candidates:
            claimed.add(max(candidates)[1])
        else:
            false_positives += 1
    return len(claimed), false_positives


# Running -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timed:
    result: dict[str, object]
    decode_ms: float
    analyse_ms: float
    total_ms: float


def analyse(data: bytes, analyser: Analyser) -> Timed:
    """The whole pass on ``data`` with one analyser; raises if the analyser did not succeed."""
    started = time.perf_counter()
    decode_ms, (outcome,) = run_pass(io.BytesIO(data), [analyser])
    total_ms = (time.perf_counter() - started) * 1000
    if outcome.status != "succeeded" or outcome.result is None:
        raise RuntimeError(f"{outcome.analyser} {outcome.status}: {outcome.error}")
    return Timed(outcome.result, decode_ms, outcome.duration_ms, total_ms)


@dataclass(frozen=True)
class OcrScore:
    case: OcrCase
    found: str
    accuracy: float
    accuracy_nocase: float
    words: float
    timed: Timed

    @property
    def chars(self) -> int:
        return len(normalise(self.case.expected))


def score_ocr(case: OcrCase, analyser: Analyser) -> OcrScore:
    data = case.jpeg()
    timed = analyse(data, analyser)
    found = str(timed.result["full_text"])
    return OcrScore(
        case=case,
        found=found,
        accuracy=char_accuracy(case.expected, found),
        accuracy_nocase=char_accuracy(case.expected, found, casefold=True),
        words=words_found(case.expected, found),
        timed=timed,
    )


@dataclass(frozen=True)
class FaceScore:
    case: FaceCase
    found: int
    matched: int
    false_positives: int
    timed: Timed

    @property
    def true(self) -> int:
        return len(self.case.faces)


def score_faces(case: FaceCase, analyser: Analyser) -> FaceScore:
    data = case.jpeg()
    timed = analyse(data, analyser)
    raw = timed.result["faces"]
    assert isinstance(raw, list)
    boxes: list[Box] = [(f["x"], f["y"], f["x"] + f["width"], f["y"] + f["height"]) for f in raw]
    matched, false_positives = match_faces(case.faces, boxes)
    return FaceScore(case, len(boxes), matched, false_positives, timed)


def ocr_totals(scores: Sequence[OcrScore]) -> dict[str, float]:
    """Character-weighted accuracies (a long phrase counts more than a short one) and the share
    of words found, over ``scores``."""
    chars = sum(s.chars for s in scores)
    words = sum(len(s.case.expected.split()) for s in scores)
    return {
        "cases": len(scores),
        "chars": chars,
        "accuracy": sum(s.accuracy * s.chars for s in scores) / chars,
        "accuracy_nocase": sum(s.accuracy_nocase * s.chars for s in scores) / chars,
        "words": sum(s.words * len(s.case.expected.split()) for s in scores) / words,
    }


def face_totals(scores: Sequence[FaceScore]) -> dict[str, float]:
    true = sum(s.true for s in scores)
    return {
        "cases": len(scores),
        "faces": true,
        "matched": sum(s.matched for s in scores),
        "recall": sum(s.matched for s in scores) / true if true else 1.0,
        "false_positives": sum(s.false_positives for s in scores),
    }
