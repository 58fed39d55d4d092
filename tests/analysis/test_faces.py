"""The faces analyser finds a real face, in original-image coordinates, and none in a gradient;
each face has an embedding (close for the same face, far for another person's) and a
thumbnail."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from iap.analysis.analysers.faces import (
    EMBEDDING_SIZE,
    THUMB_SIZE,
    Face,
    FacesAnalyser,
    FacesResult,
    decode_embedding,
    thumbnail_name,
)
from tests.analysis.face_photos import photo
from tests.analysis.factories import ASTRONAUT_FACE, astronaut, colour_gradient, decoded, overlap

ANALYSER = FacesAnalyser()


def faces_of(image: Image.Image, fmt: str = "JPEG", **options: object) -> FacesResult:
    result = ANALYSER.analyse(decoded(image, fmt, **options)).result
    assert isinstance(result, FacesResult)
    return result


def box(face: Face) -> tuple[float, float, float, float]:
    return (face.x, face.y, face.x + face.width, face.y + face.height)


def scaled(region: tuple[int, int, int, int], factor: float) -> tuple[float, ...]:
    return tuple(v * factor for v in region)


def test_astronaut_face_is_found_with_high_confidence() -> None:
    result = faces_of(astronaut())
    assert result.count == len(result.faces) >= 1
    face = result.faces[0]  # the most confident
    assert overlap(box(face), ASTRONAUT_FACE) > 0.5
    assert face.confidence > 0.8
    assert face.pose == "ahead"


def test_each_face_has_an_embedding_and_a_thumbnail() -> None:
    output = ANALYSER.analyse(decoded(astronaut(), "JPEG"))
    assert isinstance(output.result, FacesResult)
    for n, face in enumerate(output.result.faces):
        assert face.embedding is not None
        assert decode_embedding(face.embedding).shape == (EMBEDDING_SIZE,)
        assert face.thumbnail == thumbnail_name(n)
        stored = output.files[face.thumbnail]
        assert stored.content_type == "image/webp"
        assert Image.open(io.BytesIO(stored.data)).size == (THUMB_SIZE, THUMB_SIZE)
    assert len(output.files) == output.result.count


def _embedding(image: Image.Image) -> np.ndarray:
    face = faces_of(image, quality=90).faces[0]
    assert face.embedding is not None
    return decode_embedding(face.embedding)


def test_the_same_face_embeds_close_and_another_persons_far() -> None:
    original = _embedding(astronaut())
    smaller = _embedding(astronaut(384))
    mirrored = _embedding(astronaut().transpose(Image.Transpose.FLIP_LEFT_RIGHT))
    other = _embedding(Image.open(io.BytesIO(photo("biden.jpg"))))
    assert np.linalg.norm(original - smaller) < 0.3
    assert np.linalg.norm(original - mirrored) < 0.4
    assert np.linalg.norm(original - other) > 0.7


def test_box_is_in_original_pixels_when_decoding_shrinks_the_image() -> None:
    # 3072 px: decoding works on a copy at most 2048 px long, the box must still be in 3072 px.
    result = faces_of(astronaut(3072), quality=90)
    assert result.count >= 1
    assert overlap(box(result.faces[0]), scaled(ASTRONAUT_FACE, 6)) > 0.5


def test_box_is_in_upright_coordinates_for_rotated_photos() -> None:
    # Stored lying on its side, with EXIF orientation 6 saying "turn 90° clockwise to view".
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = astronaut(1024).transpose(Image.Transpose.ROTATE_90)
    result = faces_of(stored, exif=exif)
    assert result.count >= 1
    assert overlap(box(result.faces[0]), scaled(ASTRONAUT_FACE, 2)) > 0.5


def test_plain_gradient_has_no_faces() -> None:
    result = faces_of(colour_gradient())
    assert result.count == 0
    assert result.faces == []


def test_missing_models_make_the_analyser_unavailable(tmp_path: Path) -> None:
    assert ANALYSER.unavailable() is None
    reason = FacesAnalyser(models=tmp_path).unavailable()
    assert reason is not None
    assert "face models missing" in reason
    assert "shape_predictor_5_face_landmarks.dat" in reason
