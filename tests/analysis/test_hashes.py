"""Perceptual hashes recognise the same picture after re-encoding and tell others apart."""

from __future__ import annotations

import blurhash
import imagehash
import numpy as np
from PIL import Image

from iap.analysis.analysers.hashes import HashesAnalyser, HashesResult
from tests.analysis.factories import BLUE, RED, astronaut, coffee, decoded, halves, solid

ANALYSER = HashesAnalyser()


def hashes_of(image: Image.Image, fmt: str = "PNG", **options: object) -> HashesResult:
    result = ANALYSER.analyse(decoded(image, fmt, **options)).result
    assert isinstance(result, HashesResult)
    return result


def distance(a: str, b: str) -> int:
    return int(imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b))


def test_reencoded_jpeg_has_the_same_perceptual_hashes() -> None:
    original = hashes_of(astronaut(), "PNG")
    reencoded = hashes_of(astronaut(), "JPEG", quality=70)
    assert reencoded.phash == original.phash
    assert reencoded.dhash == original.dhash


def test_resized_copy_stays_within_a_few_bits() -> None:
    original = hashes_of(astronaut(), "PNG")
    smaller = hashes_of(astronaut().resize((300, 300)), "JPEG", quality=50)
    assert distance(original.phash, smaller.phash) <= 4
    assert distance(original.dhash, smaller.dhash) <= 4


def test_another_image_has_distant_hashes() -> None:
    one, other = hashes_of(astronaut(), "JPEG"), hashes_of(coffee(), "JPEG")
    assert distance(one.phash, other.phash) > 16
    assert distance(one.dhash, other.dhash) > 16


def test_hashes_are_64_bit_hex() -> None:
    result = hashes_of(astronaut())
    for value in (result.phash, result.dhash):
        assert len(value) == 16
        int(value, 16)


def test_blurhash_is_4x3_and_decodes_to_the_image_colour() -> None:
    result = hashes_of(solid(RED, (640, 480)), "JPEG", quality=95)
    assert len(result.blurhash) == 28  # 4 + 2 characters per component
    assert blurhash.components(result.blurhash) == (4, 3)
    pixels = [pixel for row in blurhash.decode(result.blurhash, 8, 6) for pixel in row]
    mean = [sum(channel) / len(pixels) for channel in zip(*pixels, strict=True)]
    assert all(abs(a - b) <= 6 for a, b in zip(mean, RED, strict=True))


def test_blurhash_keeps_the_layout() -> None:
    result = hashes_of(halves(RED, BLUE, (640, 320)))
    row = blurhash.decode(result.blurhash, 8, 4)[2]
    left, right = row[0], row[-1]
    assert left[0] > left[2] + 80  # red on the left
    assert right[2] > right[0] + 80  # blue on the right


def test_phash_is_imagehash_phash_of_the_same_copy() -> None:
    # The analyser computes imagehash's pHash with OpenCV's DCT (SciPy stays unloaded): the
    # bits must be the very ones imagehash gives for the copy it hashes.
    from iap.analysis.analysers.hashes import HASH_SIDE

    rng = np.random.default_rng(5)
    noise = [Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)) for _ in range(8)]
    for image in (astronaut(), coffee(), halves(RED, BLUE), *noise):
        decoded_image = decoded(image, "PNG")
        expected = str(imagehash.phash(decoded_image.grey_at(HASH_SIDE)))
        assert hashes_of(image).phash == expected
