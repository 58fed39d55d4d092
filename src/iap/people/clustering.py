"""Faces into people: the pure part of clustering, with no database.

Incremental and order-fixed: each new face, in the order given, joins the person of its
nearest face (Euclidean distance between embeddings) if that face is within ``threshold``,
and starts a new person otherwise; a face placed is "known" to the faces after it. Two faces
of one image are never one person (nobody appears twice in a photo), so a person who already
has a face in the new face's image is passed over. The same inputs always give the same
people, which is what makes re-clustering idempotent.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Measured on the identity set (tests/analysis/accuracy.py; bench/accuracy.py prints it): other
# photos of one person were 0.31-0.46 from each other, sharp photos of different people 0.78
# and more, but the set's small, blurred faces (LFW's 25 px crops, enlarged) of different
# people came as close as 0.37-0.45. At 0.40 one pair of those joins (by eye the same man;
# LFW repeats people), and from 0.425 different people do; a wrong merge shows a stranger's
# faces as someone's, a split is joined by hand once. dlib's customary 0.6 made 28 people
# of the set's 99.
SAME_PERSON_DISTANCE = 0.4


@dataclass(frozen=True)
class KnownFace:
    person: Hashable
    image: Hashable
    embedding: np.ndarray


@dataclass(frozen=True)
class KnownFaces:
    """Placed faces as arrays: ``embeddings`` row n is a face of ``people[n]``; ``in_images``
    holds, for the images of the new faces at least, the people already in them (what a
    database read gives, without an object per face)."""

    people: Sequence[Hashable]
    embeddings: np.ndarray
    in_images: Mapping[Hashable, set[Hashable]]

    @classmethod
    def of(cls, faces: Sequence[KnownFace]) -> KnownFaces:
        vectors = [np.asarray(face.embedding, dtype=np.float32) for face in faces]
        in_images: dict[Hashable, set[Hashable]] = {}
        for face in faces:
            in_images.setdefault(face.image, set()).add(face.person)
        return cls(
            [face.person for face in faces],
            np.stack(vectors) if vectors else np.empty((0, 0), dtype=np.float32),
            in_images,
        )


@dataclass(frozen=True)
class NewFace:
    image: Hashable
    embedding: np.ndarray


@dataclass(frozen=True)
class NewPerson:
    """A person that a run of ``cluster`` starts: the same ``number`` is the same new person."""

    number: int


def cluster(
    known: KnownFaces | Sequence[KnownFace],
    new: Sequence[NewFace],
    threshold: float = SAME_PERSON_DISTANCE,
) -> list[Hashable]:
    """The person of each face of ``new``: a person of ``known``, or a ``NewPerson``.

    Costs one matrix-vector product over the known faces per new face (squared distances as
    |a|² - 2a·b + |b|², the known faces' norms computed once)."""
    if not isinstance(known, KnownFaces):
        known = KnownFaces.of(known)
    matrix = np.asarray(known.embeddings, dtype=np.float32)
    norms = np.einsum("ij,ij->i", matrix, matrix, dtype=np.float64) if len(matrix) else None
    people: list[Hashable] = list(known.people)
    in_image = {image: set(them) for image, them in known.in_images.items()}
    placed_vectors: list[np.ndarray] = []
    placed: list[Hashable] = []
    started = 0
    limit = threshold * threshold
    for face in new:
        vector = np.asarray(face.embedding, dtype=np.float32)
        squared = np.empty(0)
        if norms is not None:
            squared = norms - 2 * (matrix @ vector).astype(np.float64) + float(vector @ vector)
        if placed_vectors:
            apart = np.stack(placed_vectors) - vector
            squared = np.concatenate(
                [squared, np.einsum("ij,ij->i", apart, apart, dtype=np.float64)]
            )
        # The expansion rounds: the faces it finds near are measured again exactly, so that
        # the threshold and ties (the earliest face first) are decided on true distances.
        near = np.flatnonzero(squared <= limit + 1e-4)
        exact = np.array(
            [
                np.linalg.norm(
                    (matrix[n] if n < len(matrix) else placed_vectors[n - len(matrix)]) - vector
                )
                for n in near
            ]
        )
        near, exact = near[exact <= threshold], exact[exact <= threshold]
        taken = in_image.get(face.image, set())
        person: Hashable | None = None
        for n in near[np.argsort(exact, kind="stable")]:
            if people[n] not in taken:
                person = people[n]
                break
        if person is None:
            person = NewPerson(started)
            started += 1
        placed.append(person)
        people.append(person)
        placed_vectors.append(vector)
        in_image.setdefault(face.image, set()).add(person)
    return placed
