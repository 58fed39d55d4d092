"""The faces analyser finds a real face, in original-image coordinates, and none in a gradient."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from iap.analysis.analysers.faces import Face, FacesAnalyser, FacesResult
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
    assert result.count == len(result.faces) == 1
    (face,) = result.faces
    assert overlap(box(face), ASTRONAUT_FACE) > 0.5
    assert face.confidence > 0.8


def test_box_is_in_original_pixels_when_decoding_shrinks_the_image() -> None:
    # 3072 px: decoding works on a copy at most 2048 px long, the box must still be in 3072 px.
    result = faces_of(astronaut(3072), quality=90)
    assert result.count == 1
    assert overlap(box(result.faces[0]), scaled(ASTRONAUT_FACE, 6)) > 0.5


def test_box_is_in_upright_coordinates_for_rotated_photos() -> None:
    # Stored lying on its side, with EXIF orientation 6 saying "turn 90° clockwise to view".
    exif = Image.Exif()
    exif[0x0112] = 6
    stored = astronaut(1024).transpose(Image.Transpose.ROTATE_90)
    result = faces_of(stored, exif=exif)
    assert result.count == 1
    assert overlap(box(result.faces[0]), scaled(ASTRONAUT_FACE, 2)) > 0.5


def test_plain_gradient_has_no_faces() -> None:
    result = faces_of(colour_gradient())
    assert result.count == 0
    assert result.faces == []


def test_missing_cascade_makes_the_analyser_unavailable() -> None:
    assert ANALYSER.unavailable() is None
    reason = FacesAnalyser(cascade_path=Path("/nonexistent/cascade.xml")).unavailable()
    assert reason is not None
    assert "cascade" in reason
