"""Perceptual-hash arithmetic: hex digests to signed 64-bit integers and 16-bit bands, Hamming
distances, the band values a multi-index lookup asks for."""

from __future__ import annotations

import itertools
from functools import cache

BANDS = 4
BAND_BITS = 16
# Measured on scikit-image's photos (tests/finding): copies resized to 1/2 and 1/4, recompressed
# at JPEG quality 20-50, or both, are within 4 of their original; 5% crops within 12 (mean 8);
# the nearest unrelated photos 20 apart. Near-duplicate groups join images this close.
DUPLICATE_DISTANCE = 10
# The farthest /similar looks (4 bits per band: 2,517 band values per band to ask for).
MAX_DISTANCE = 16


def to_int(hex_digest: str) -> int:
    """A 64-bit hash in 16 hex digits as the signed integer a BIGINT column holds."""
    value = int(hex_digest, 16)
    if not 0 <= value < 1 << 64 or len(hex_digest) != 16:
        raise ValueError(f"not a 64-bit hash: {hex_digest!r}")
    return value - (1 << 64) if value >= 1 << 63 else value


def bands(value: int) -> tuple[int, ...]:
    unsigned = value & ((1 << 64) - 1)
    mask = (1 << BAND_BITS) - 1
    return tuple((unsigned >> (BAND_BITS * n)) & mask for n in range(BANDS))


def distance(a: int, b: int) -> int:
    return ((a ^ b) & ((1 << 64) - 1)).bit_count()


@cache
def _flips(radius: int) -> tuple[int, ...]:
    """Every 16-bit mask of at most ``radius`` set bits."""
    return tuple(
        sum(1 << bit for bit in bits)
        for r in range(radius + 1)
        for bits in itertools.combinations(range(BAND_BITS), r)
    )


def band_values(value: int, max_distance: int) -> list[list[int]]:
    """Per band, the values a hash within ``max_distance`` of ``value`` may have in that band
    for at least one band (pigeonhole: some band holds at most max_distance // 4 of the
    differing bits)."""
    flips = _flips(max_distance // BANDS)
    return [sorted(band ^ flip for flip in flips) for band in bands(value)]
