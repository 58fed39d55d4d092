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
out over photos without faces, the astronaut's portrait (cut to 4:3, and whole: its mission
patch is the kind of pattern a detector takes for a face), real photos of people
(``face_photos``: fetched once from a pinned archive, as they were taken, faces boxed by eye),
and pictures without faces (the subset's 100 non-face crops; grass, gravel and brick
textures). Scored by recall (true faces matched by a detection: IoU ≥ 0.3 or the detection's
centre inside the true box, one detection per face) and false positives (every detection left
unmatched, a second box on an already matched face included).

Identity set, for grouping faces into people: one face a picture, each labelled with who it
is. The real photos (Barack Obama in three photos and two crops of the first, Joe Biden) and
the astronaut (Eileen Collins), each as taken and in variants (other sizes, mirrored, a low
JPEG quality, lighter or darker, turned, placed small in a 12 MP scene), all labelled with the
photo's person; and the LFW subset's faces, one a picture, each taken as a different person
(the subset does not say who they are, and LFW has many photos of a few people: by eye, crops
0, 36 and 90 seem to be one man, and 3 and 97 another).
Scored by the distances between embeddings of the same and of different people, and by what
the clustering (``iap.people.clustering``) makes of the whole set: people made, faces in a
person that are not its majority identity, identities split over several people.
"""

from __future__ import annotations

import functools
import io
import itertools
import time
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps
from skimage import data as skimage_data

from iap.analysis.analysers.base import Analyser
from iap.analysis.analysers.faces import decode_embedding
from iap.analysis.pipeline import run_pass
from iap.people.clustering import NewFace, cluster
from tests.analysis import face_photos

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
# The whole portrait, mission patch included: as shipped and enlarged.
PORTRAIT_SIZES = {"0.26 MP": (512, 512), "9 MP": (3000, 3000)}
# A real photo keeps its own size.
AS_TAKEN = "as taken"
# The faces in the real photos (face_photos), ear to ear and hairline to chin, by eye, in
# pixels of the photo as fetched. The partial faces are obama.jpg cut at x = 419 (the left
# ear and cheek gone) and at x = 551 (the right ones gone).
PHOTO_FACES: dict[str, Box] = {
    "obama.jpg": (345, 95, 640, 415),
    "obama2.jpg": (200, 240, 540, 620),
    "obama3.jpg": (590, 260, 920, 600),
    "obama_partial_face.jpg": (0, 95, 221, 415),
    "obama_partial_face2.jpg": (345, 95, 551, 415),
    "biden.jpg": (395, 175, 710, 560),
}
PARTIAL_FACES = ("obama_partial_face.jpg", "obama_partial_face2.jpg")
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


def jpeg(image: Image.Image, quality: int = JPEG_QUALITY) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
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


def _portrait(side: int) -> Image.Image:
    """The astronaut's whole 512x512 portrait, enlarged (with grain) to ``side`` if larger."""
    source = Image.fromarray(_sample("astronaut"), "RGB")
    if side == source.width:
        return source
    return _grain(source.resize((side, side), Image.Resampling.BICUBIC), seed=side)


@dataclass(frozen=True)
class FaceCase:
    name: str
    group: str
    # A key of SIZES; of PORTRAIT_SIZES for "astronaut portrait"; AS_TAKEN for a real photo.
    size: str
    # A sample photo, a texture, "astronaut" (its 4:3 cut), "astronaut portrait" (all of it),
    # or a real photo (a key of face_photos.PHOTOS).
    background: str
    crops: tuple[int, ...] = ()  # LFW indices laid out over the background, in grid order
    crop_sides: tuple[int, int] = (0, 0)  # smallest and largest side of a placed crop, pixels
    seed: int = 0

    @functools.cached_property
    def _drawn(self) -> tuple[bytes, tuple[Box, ...]]:
        if self.background in face_photos.PHOTOS:
            # As uploaded: the photo's own bytes, not re-encoded.
            return face_photos.photo(self.background), (PHOTO_FACES[self.background],)
        if self.background == "astronaut portrait":
            side, _ = PORTRAIT_SIZES[self.size]
            f = side / 512
            fx0, fy0, fx1, fy1 = ASTRONAUT_FACE
            return jpeg(_portrait(side)), ((fx0 * f, fy0 * f, fx1 * f, fy1 * f),)
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
    astronaut at both sizes, cut to 4:3 and whole; the real photos as taken; the 100 non-face
    crops in two pictures; three textures at both sizes."""
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
            name=f"astronaut-portrait-{size[:-3]}mp",
            group=f"{size} astronaut portrait, mission patch",
            size=size,
            background="astronaut portrait",
        )
        for size in PORTRAIT_SIZES
    ]
    cases += [
        FaceCase(
            name=name.removesuffix(".jpg").replace("_", "-"),
            group="real photos" + (", face cut by the edge" if name in PARTIAL_FACES else ""),
            size=AS_TAKEN,
            background=name,
        )
        for name in face_photos.PHOTOS
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


# Identity cases ----------------------------------------------------------------------------

# Who is in each real photo; the partial faces are crops of obama.jpg, so they count as that
# photo when pairs of one photo are told apart from pairs of two photos of one person.
PEOPLE = {
    "obama.jpg": "Barack Obama",
    "obama2.jpg": "Barack Obama",
    "obama3.jpg": "Barack Obama",
    "obama_partial_face.jpg": "Barack Obama",
    "obama_partial_face2.jpg": "Barack Obama",
    "biden.jpg": "Joe Biden",
}
SAME_PHOTO = {"obama_partial_face.jpg": "obama.jpg", "obama_partial_face2.jpg": "obama.jpg"}
ASTRONAUT_PERSON = "Eileen Collins"
ASTRONAUT_PHOTO = "astronaut"
LFW_PERSON = "LFW face {index}"
# An LFW crop, enlarged to this side, on a part of a sample photo of LFW_PICTURE.
LFW_SIDE = 160
LFW_PICTURE = (480, 360)
LOW_QUALITY = 15
TURN_DEGREES = 8.0
# In the 12 MP scene the face is this wide (about 77 px of the detector's 1024 px copy).
SCENE_FACE_WIDTH = 300
SCENE_BACKGROUNDS = ("coffee", "rocket")
VARIANTS = (
    AS_TAKEN,
    "half size",
    "2048 px long",
    "mirrored",
    f"JPEG quality {LOW_QUALITY}",
    "darker, more contrast",
    "lighter, less contrast",
    f"turned {TURN_DEGREES:g}°",
    "small in a 12 MP scene",
)


def _scaled(image: Image.Image, box: Box, factor: float) -> tuple[Image.Image, Box]:
    size = (round(image.width * factor), round(image.height * factor))
    resized = image.resize(size, Image.Resampling.BICUBIC)
    fx, fy = size[0] / image.width, size[1] / image.height
    return resized, (box[0] * fx, box[1] * fy, box[2] * fx, box[3] * fy)


def _in_scene(image: Image.Image, box: Box, seed: int) -> tuple[Image.Image, Box]:
    """``image`` shrunk (or enlarged) until its face is SCENE_FACE_WIDTH wide, pasted at a
    random place into a 12 MP sample photo."""
    rng = np.random.default_rng(seed)
    background = SCENE_BACKGROUNDS[int(rng.integers(len(SCENE_BACKGROUNDS)))]
    scene = photo(background, SIZES["12 MP"]).copy()
    factor = SCENE_FACE_WIDTH / (box[2] - box[0])
    factor = min(factor, 0.9 * scene.width / image.width, 0.9 * scene.height / image.height)
    small, (x0, y0, x1, y1) = _scaled(image, box, factor)
    left = int(rng.integers(0, scene.width - small.width + 1))
    top = int(rng.integers(0, scene.height - small.height + 1))
    scene.paste(small, (left, top))
    return scene, (x0 + left, y0 + top, x1 + left, y1 + top)


def _variant(image: Image.Image, box: Box, variant: str, seed: int) -> tuple[Image.Image, Box]:
    """``image`` (whose face is ``box``) changed as ``variant`` says; the face's new box."""
    x0, y0, x1, y1 = box
    if variant == "half size":
        return _scaled(image, box, 0.5)
    if variant == "2048 px long":
        return _scaled(image, box, 2048 / max(image.size))
    if variant == "mirrored":
        return ImageOps.mirror(image), (image.width - x1, y0, image.width - x0, y1)
    if variant == "darker, more contrast":
        darker = ImageEnhance.Brightness(image).enhance(0.6)
        return ImageEnhance.Contrast(darker).enhance(1.4), box
    if variant == "lighter, less contrast":
        lighter = ImageEnhance.Brightness(image).enhance(1.35)
        return ImageEnhance.Contrast(lighter).enhance(0.7), box
    if variant == f"turned {TURN_DEGREES:g}°":
        # About the face's centre, so that the face stays in its box (turned within it).
        centre = ((x0 + x1) / 2, (y0 + y1) / 2)
        turned = image.rotate(
            TURN_DEGREES, Image.Resampling.BICUBIC, center=centre, fillcolor=(128, 128, 128)
        )
        return turned, box
    if variant == "small in a 12 MP scene":
        return _in_scene(image, box, seed)
    # AS_TAKEN, and the low JPEG quality, which only changes the encoding.
    return image, box


def _lfw_picture(index: int, seed: int) -> tuple[Image.Image, Box]:
    """LFW face ``index`` enlarged to LFW_SIDE on a random part of a sample photo."""
    rng = np.random.default_rng(seed)
    background = photo("coffee", SIZES["2 MP"])
    width, height = LFW_PICTURE
    left = int(rng.integers(0, background.width - width + 1))
    top = int(rng.integers(0, background.height - height + 1))
    picture = background.crop((left, top, left + width, top + height))
    tile = Image.fromarray(_lfw()[index], "L").resize(
        (LFW_SIDE, LFW_SIDE), Image.Resampling.BICUBIC
    )
    x = int(rng.integers(0, width - LFW_SIDE + 1))
    y = int(rng.integers(0, height - LFW_SIDE + 1))
    picture.paste(tile.convert("RGB"), (x, y))
    return picture, (x, y, x + LFW_SIDE, y + LFW_SIDE)


@dataclass(frozen=True)
class IdentityCase:
    """One picture with one labelled face."""

    name: str
    identity: str
    # A key of face_photos.PHOTOS, ASTRONAUT_PHOTO, or "lfw-<index>".
    source: str
    variant: str  # one of VARIANTS
    seed: int

    @property
    def original(self) -> str:
        """The photo the picture was made from: variants (and crops) of one photo share it."""
        return SAME_PHOTO.get(self.source, self.source)

    @functools.cached_property
    def _drawn(self) -> tuple[bytes, Box]:
        if self.source.startswith("lfw-"):
            picture, box = _lfw_picture(int(self.source.removeprefix("lfw-")), self.seed)
            return jpeg(picture), box
        if self.source == ASTRONAUT_PHOTO:
            image, face = _portrait(512), ASTRONAUT_FACE
        else:
            data = face_photos.photo(self.source)
            if self.variant == AS_TAKEN:
                return data, PHOTO_FACES[self.source]
            with Image.open(io.BytesIO(data)) as opened:
                image, face = opened.convert("RGB"), PHOTO_FACES[self.source]
        changed, box = _variant(image, face, self.variant, self.seed)
        quality = LOW_QUALITY if self.variant == f"JPEG quality {LOW_QUALITY}" else JPEG_QUALITY
        return jpeg(changed, quality), box

    def jpeg(self) -> bytes:
        return self._drawn[0]

    @property
    def face(self) -> Box:
        """The labelled face's box, in pixels of the picture."""
        return self._drawn[1]


def identity_cases() -> list[IdentityCase]:
    """The identity set: every real photo and the astronaut in every variant, then the LFW
    subset's faces, one a picture."""
    cases = [
        IdentityCase(
            name=f"{source.removesuffix('.jpg')} {variant}",
            identity=PEOPLE.get(source, ASTRONAUT_PERSON),
            source=source,
            variant=variant,
            seed=4000 + 100 * n + v,
        )
        for n, source in enumerate([*face_photos.PHOTOS, ASTRONAUT_PHOTO])
        for v, variant in enumerate(VARIANTS)
    ]
    cases += [
        IdentityCase(
            name=f"lfw-{index:02d}",
            identity=LFW_PERSON.format(index=index),
            source=f"lfw-{index}",
            variant=AS_TAKEN,
            seed=5000 + index,
        )
        for index in LFW_FACES
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


@dataclass(frozen=True)
class Embedded:
    case: IdentityCase
    # The embedding of the detection on the labelled face; None when none was found there.
    vector: np.ndarray | None
    timed: Timed


def embed_identity(case: IdentityCase, analyser: Analyser) -> Embedded:
    """The pass on ``case`` and the embedding of the detection that best matches its face
    (other detections in the picture are left out)."""
    timed = analyse(case.jpeg(), analyser)
    raw = timed.result["faces"]
    assert isinstance(raw, list)
    candidates = []
    for face in raw:
        box: Box = (face["x"], face["y"], face["x"] + face["width"], face["y"] + face["height"])
        if face.get("embedding") and _matches(box, case.face):
            candidates.append((iou(box, case.face), str(face["embedding"])))
    vector = decode_embedding(max(candidates)[1]) if candidates else None
    return Embedded(case, vector, timed)


PAIR_KINDS = ("same photo", "same person, other photo", "different people")


@dataclass(frozen=True)
class Pair:
    distance: float
    kind: str  # one of PAIR_KINDS
    a: IdentityCase
    b: IdentityCase

    @property
    def same(self) -> bool:
        return self.kind != "different people"


def pair_kind(a: IdentityCase, b: IdentityCase) -> str:
    if a.identity != b.identity:
        return "different people"
    return "same photo" if a.original == b.original else "same person, other photo"


def pairs(faces: Sequence[Embedded]) -> list[Pair]:
    """Every pair of embedded faces with its Euclidean distance, nearest first."""
    found = [(f.case, f.vector) for f in faces if f.vector is not None]
    out = [
        Pair(float(np.linalg.norm(va - vb)), pair_kind(a, b), a, b)
        for (a, va), (b, vb) in itertools.combinations(found, 2)
    ]
    return sorted(out, key=lambda pair: pair.distance)


def pair_scores(all_pairs: Sequence[Pair], threshold: float) -> dict[str, float]:
    """Taking pairs within ``threshold`` as one person: precision (share of them that are) and
    recall (share of the same-person pairs taken), and the different-people pairs taken."""
    taken = [p for p in all_pairs if p.distance <= threshold]
    right = sum(p.same for p in taken)
    same = sum(p.same for p in all_pairs)
    return {
        "taken": len(taken),
        "precision": right / len(taken) if taken else 1.0,
        "recall": right / same if same else 1.0,
        "wrong": len(taken) - right,
    }


@dataclass(frozen=True)
class ClusterScore:
    people: int  # people made
    identities: int  # true identities among the faces
    impure: int  # faces in a person that are not of its majority identity
    mixed: int  # people with faces of more than one identity
    split: int  # identities whose faces went to more than one person


def cluster_score(identities: Sequence[str], people: Sequence[Hashable]) -> ClusterScore:
    """How ``people`` (one per face) group faces of ``identities`` (one per face)."""
    members: dict[Hashable, Counter[str]] = {}
    spread: dict[str, set[Hashable]] = {}
    for identity, person in zip(identities, people, strict=True):
        members.setdefault(person, Counter())[identity] += 1
        spread.setdefault(identity, set()).add(person)
    return ClusterScore(
        people=len(members),
        identities=len(spread),
        impure=sum(c.total() - max(c.values()) for c in members.values()),
        mixed=sum(len(c) > 1 for c in members.values()),
        split=sum(len(p) > 1 for p in spread.values()),
    )


CLUSTER_ORDER_SEED = 6000


def clustering_order(faces: Sequence[Embedded]) -> list[Embedded]:
    """The embedded faces in the fixed order the clustering takes them: shuffled once (a
    library is not uploaded one person at a time), the same every run."""
    found = [f for f in faces if f.vector is not None]
    order = np.random.default_rng(CLUSTER_ORDER_SEED).permutation(len(found))
    return [found[int(n)] for n in order]


def score_clustering(faces: Sequence[Embedded], threshold: float) -> ClusterScore:
    """The people domain's ``cluster`` run from nothing on ``faces``, in their order, each in
    a picture of its own."""
    found = [(f.case, f.vector) for f in faces if f.vector is not None]
    people = cluster([], [NewFace(image=case.name, embedding=v) for case, v in found], threshold)
    return cluster_score([case.identity for case, _ in found], people)


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
