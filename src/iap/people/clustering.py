"""Faces into people: the pure part of clustering, with no database.

Incremental and order-fixed: each new face, in the order given, joins the person of its
nearest face (Euclidean distance between embeddings) if that face is within ``threshold``,
and starts a new person otherwise; a face placed is "known" to the faces after it. Two faces
of one image are never one person (nobody appears twice in a photo), so a person who already
has a face in the new face's image is passed over. The same inputs always give the same
people, which is what makes re-clustering idempotent.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

# dlib's ResNet puts photos of one person within 0.6 of each other (its authors' figure on
# LFW). The threshold iap uses was measured on the accuracy set (bench/accuracy.py).
SAME_PERSON_DISTANCE = 0.5


@dataclass(frozen=True)
class KnownFace:
    person: Hashable
    image: Hashable
    embedding: np.ndarray


@dataclass(frozen=True)
class NewFace:
    image: Hashable
    embedding: np.ndarray


@dataclass(frozen=True)
class NewPerson:
    """A person that a run of ``cluster`` starts: the same ``number`` is the same new person."""

    number: int


def cluster(
    known: Sequence[KnownFace],
    new: Sequence[NewFace],
    threshold: float = SAME_PERSON_DISTANCE,
) -> list[Hashable]:
    """The person of each face of ``new``: a ``person`` of ``known``, or a ``NewPerson``."""
    vectors = [np.asarray(face.embedding, dtype=np.float32) for face in known]
    people: list[Hashable] = [face.person for face in known]
    images: list[Hashable] = [face.image for face in known]
    matrix = np.stack(vectors) if vectors else np.empty((0, 0), dtype=np.float32)
    placed: list[Hashable] = []
    started = 0
    for face in new:
        vector = np.asarray(face.embedding, dtype=np.float32)
        person: Hashable | None = None
        if people:
            distances = np.linalg.norm(matrix - vector, axis=1)
            in_this_image = {
                p for p, image in zip(people, images, strict=True) if image == face.image
            }
            for n in np.argsort(distances, kind="stable"):
                if distances[n] > threshold:
                    break
                if people[n] not in in_this_image:
                    person = people[n]
                    break
        if person is None:
            person = NewPerson(started)
            started += 1
        placed.append(person)
        people.append(person)
        images.append(face.image)
        matrix = vector[None, :] if matrix.size == 0 else np.vstack([matrix, vector])
    return placed
