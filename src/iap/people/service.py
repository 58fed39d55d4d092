"""People: recording an image's faces, clustering an owner's new faces, and the owner's edits.

Every change that can take a person's last face (an image deleted or analysed again, a merge,
a face taken out) removes the people it left empty in the same transaction
(``prune_people``), so a person without faces is never seen.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from anyio import to_thread
from sqlalchemy import (
    ColumnElement,
    Text,
    delete,
    exists,
    func,
    insert,
    select,
    text,
    type_coerce,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from iap.analysis.analysers.faces import EMBEDDING_SIZE, decode_embedding
from iap.auth.models import User
from iap.db import utcnow
from iap.finding import words
from iap.finding.indexing import is_postgres
from iap.images.models import Image
from iap.people.clustering import SAME_PERSON_DISTANCE, KnownFaces, NewFace, NewPerson, cluster
from iap.people.errors import (
    FaceNotFound,
    MergeIntoItself,
    NotFaceOwner,
    NotPersonOwner,
    PersonNotFound,
)
from iap.people.models import Face, Person

# A face found again at nearly the same place (intersection over union) when an image is
# analysed again is the same face: it keeps its id and its person.
SAME_FACE_IOU = 0.5


# The people locks' space of PostgreSQL's two-number advisory locks ("peop").
_LOCK_SPACE = 0x70656F70


# Recording -----------------------------------------------------------------------------------


def _iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    width = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    height = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = width * height
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union else 0.0


async def record_faces(
    session: AsyncSession, image_id: uuid.UUID, user_id: uuid.UUID, result: dict[str, Any]
) -> bool:
    """Replace the image's faces by those of a faces result (version 2: with embeddings), in
    the caller's transaction. A face found again where one was keeps its id, its person and
    whether it was clustered; the others wait for clustering. Returns whether any face does."""
    await lock_people(session, user_id)
    old = list(await session.scalars(select(Face).where(Face.image_id == image_id)))
    boxes = {face.id: (face.x, face.y, face.width, face.height) for face in old}
    rows: list[dict[str, Any]] = []
    taken: set[uuid.UUID] = set()
    for position, found in enumerate(result.get("faces") or []):
        if not found.get("embedding"):
            continue
        vector = decode_embedding(found["embedding"])
        box = (found["x"], found["y"], found["width"], found["height"])
        same = max(
            (face for face in old if face.id not in taken),
            key=lambda face: _iou(boxes[face.id], box),
            default=None,
        )
        if same is not None and _iou(boxes[same.id], box) >= SAME_FACE_IOU:
            taken.add(same.id)
            kept = {"id": same.id, "person_id": same.person_id, "clustered": same.clustered}
        else:
            kept = {"id": uuid.uuid4(), "person_id": None, "clustered": False}
        rows.append(
            {
                **kept,
                "image_id": image_id,
                "user_id": user_id,
                "position": position,
                "x": box[0],
                "y": box[1],
                "width": box[2],
                "height": box[3],
                "confidence": float(found["confidence"]),
                "embedding": vector.astype("<f4").tobytes(),
                "created_at": utcnow(),
            }
        )
    touched = {face.person_id for face in old if face.person_id is not None}
    if old:
        await session.execute(delete(Face).where(Face.image_id == image_id))
    if rows:
        await session.execute(insert(Face), rows)
    await prune_people(session, Person.id.in_(touched))
    return any(not row["clustered"] for row in rows)


async def prune_people(session: AsyncSession, among: ColumnElement[bool]) -> int:
    """Delete the people (of those ``among`` selects) that have no face left."""
    has_face = exists().where(Face.person_id == Person.id)
    deleted = await session.execute(delete(Person).where(among, ~has_face))
    return int(deleted.rowcount or 0)  # type: ignore[attr-defined]


# Clustering ----------------------------------------------------------------------------------


async def lock_people(session: AsyncSession, user_id: uuid.UUID) -> None:
    """Take the owner's people for the rest of the transaction: what changes an owner's faces
    or people (grouping, recording an image's faces, deleting an image, a merge, taking a
    face out) does so one at a time, or grouping could place a face that is being deleted
    into a person it just made. PostgreSQL: an advisory lock on the owner, held to the end of
    the transaction. SQLite: a write first, which takes the database's single write lock at
    once (a deferred transaction would take it only at its first write, after reading what
    another writer is about to change)."""
    if is_postgres(session):
        # The two-number form, in a space of its own: the one-number locks are the hashes'.
        key = int.from_bytes(user_id.bytes[:4], "big", signed=True)
        statement = text("SELECT pg_advisory_xact_lock(:space, :key)")
        await session.execute(statement.bindparams(space=_LOCK_SPACE, key=key))
    else:
        nothing = update(Person).where(Person.id.is_(None)).values(hidden=False)
        await session.execute(nothing.execution_options(synchronize_session=False))


async def pending_owners(
    session: AsyncSession, waited: timedelta, limit: int = 1_000
) -> list[uuid.UUID]:
    """Owners with faces that have waited for clustering ``waited`` or longer."""
    rows = await session.scalars(
        select(Face.user_id)
        .where(Face.clustered.is_(False), Face.created_at <= utcnow() - waited)
        .distinct()
        .limit(limit)
    )
    return list(rows)


@dataclass(frozen=True)
class Waiting:
    oldest: datetime  # when the face waiting longest was recorded
    newest: datetime


async def waiting_since(session: AsyncSession, user_id: uuid.UUID) -> Waiting | None:
    """When the owner's waiting faces were recorded (None: none waits)."""
    row = (
        await session.execute(
            select(func.min(Face.created_at), func.max(Face.created_at)).where(
                Face.user_id == user_id, Face.clustered.is_(False)
            )
        )
    ).one()
    if row[0] is None:
        return None
    return Waiting(_aware(row[0]), _aware(row[1]))


def _aware(moment: datetime | str) -> datetime:
    """SQLite's aggregates give the stored text back, without the column's type."""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Clustered:
    faces: int  # faces placed
    people: int  # people started
    images: tuple[uuid.UUID, ...] = ()  # the images of the faces placed


async def cluster_owner(
    session: AsyncSession, user_id: uuid.UUID, threshold: float = SAME_PERSON_DISTANCE
) -> Clustered:
    """Place the owner's waiting faces into people, in one transaction: each joins the person
    of its nearest placed face within ``threshold``, or starts a person. Faces are taken in
    the order they were recorded, so a run killed before it commits changes nothing and the
    next run places the same faces the same way; a run that finds nothing waiting does
    nothing (idempotent), and takes no lock when nothing waits."""
    if await waiting_since(session, user_id) is None:
        await session.rollback()
        return Clustered(0, 0)
    await lock_people(session, user_id)
    waiting = list(
        await session.execute(
            select(Face.id, Face.image_id, Face.embedding)
            .where(Face.user_id == user_id, Face.clustered.is_(False))
            .order_by(Face.created_at, Face.image_id, Face.position)
        )
    )
    if not waiting:
        await session.rollback()
        return Clustered(0, 0)
    # Every placed face's person and embedding: the person's id as the driver gives it (a
    # hex string on SQLite), not made into a UUID a row, which took longer than the rest.
    raw_person = type_coerce(Face.person_id, Text)
    rows = (
        await session.execute(
            select(raw_person, Face.embedding).where(
                Face.user_id == user_id, Face.person_id.is_not(None)
            )
        )
    ).all()
    in_images: dict[Hashable, set[Hashable]] = {}
    waiting_images = list({image_id for _, image_id, _ in waiting})
    for start in range(0, len(waiting_images), 500):
        for someone, image_id in await session.execute(
            select(raw_person, Face.image_id).where(
                Face.image_id.in_(waiting_images[start : start + 500]),
                Face.person_id.is_not(None),
            )
        ):
            in_images.setdefault(image_id, set()).add(someone)

    def place() -> list[Hashable]:
        known = KnownFaces(
            [someone for someone, _ in rows],
            _matrix([embedding for _, embedding in rows]),
            in_images,
        )
        new = [NewFace(image_id, _matrix([embedding])[0]) for _, image_id, embedding in waiting]
        return cluster(known, new, threshold)

    # Off the event loop: on the embedded deployment it is the API's (0.5 s at 100k faces).
    placed = await to_thread.run_sync(place)
    started: dict[NewPerson, uuid.UUID] = {}
    now = utcnow()
    for person in placed:
        if isinstance(person, NewPerson) and person not in started:
            started[person] = uuid.uuid4()
    if started:
        await session.execute(
            insert(Person),
            [
                {
                    "id": person_id,
                    "user_id": user_id,
                    "hidden": False,
                    "created_at": now,
                    "updated_at": now,
                }
                for person_id in started.values()
            ],
        )
    by_person: dict[uuid.UUID, list[uuid.UUID]] = {}
    for (face_id, _, _), person in zip(waiting, placed, strict=True):
        key = started[person] if isinstance(person, NewPerson) else _uuid(person)
        by_person.setdefault(key, []).append(face_id)
    for person_id, face_ids in by_person.items():
        await session.execute(
            update(Face).where(Face.id.in_(face_ids)).values(person_id=person_id, clustered=True)
        )
    await session.commit()
    images = tuple(dict.fromkeys(image_id for _, image_id, _ in waiting))
    return Clustered(len(waiting), len(started), images)


def _uuid(value: Hashable) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _matrix(embeddings: list[bytes]) -> np.ndarray:
    """Stored embeddings as the rows of one array."""
    if not embeddings:
        return np.empty((0, EMBEDDING_SIZE), dtype=np.float32)
    if any(len(embedding) != EMBEDDING_SIZE * 4 for embedding in embeddings):
        raise ValueError(f"a stored embedding is not {EMBEDDING_SIZE} float32 numbers")
    joined = np.frombuffer(b"".join(embeddings), dtype="<f4")
    return joined.reshape(len(embeddings), EMBEDDING_SIZE).astype(np.float32)


# Reading -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonView:
    person: Person
    faces: int
    images: int
    cover: Face | None


async def get_owned_person(
    session: AsyncSession, user: User, person_id: uuid.UUID, *, reread: bool = False
) -> Person:
    """The person ``person_id``, if it is ``user``'s (else 404 or 403); ``reread``: from the
    database even if the session holds it."""
    person = await session.get(Person, person_id, populate_existing=reread)
    if person is None:
        raise PersonNotFound()
    if person.user_id != user.id:
        raise NotPersonOwner()
    return person


def _counts(*where: ColumnElement[bool]) -> Any:
    """Faces and images per person, of the faces ``where`` selects."""
    return (
        select(
            Face.person_id.label("person_id"),
            func.count().label("faces"),
            func.count(func.distinct(Face.image_id)).label("images"),
        )
        .where(Face.person_id.is_not(None), *where)
        .group_by(Face.person_id)
        .subquery()
    )


async def _covers(session: AsyncSession, person_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Face]:
    """Each person's most confident face (its thumbnail), one row read per person."""
    if not person_ids:
        return {}
    ranked = (
        select(
            Face.id,
            func.row_number()
            .over(partition_by=Face.person_id, order_by=(Face.confidence.desc(), Face.id))
            .label("rank"),
        )
        .where(Face.person_id.in_(person_ids))
        .subquery()
    )
    faces = await session.scalars(
        select(Face).join(ranked, ranked.c.id == Face.id).where(ranked.c.rank == 1)
    )
    return {face.person_id: face for face in faces if face.person_id is not None}


async def list_people(
    session: AsyncSession,
    user: User,
    *,
    page: int,
    limit: int,
    include_hidden: bool = False,
    name: words.Query | None = None,
) -> tuple[int, list[PersonView]]:
    """The owner's people, those in the most images first (named ones before unnamed among
    equals), a page of ``limit``; hidden ones only when asked for; with ``name``, those whose
    name holds it."""
    counts = _counts(Face.user_id == user.id)
    query = (
        select(Person, counts.c.faces, counts.c.images)
        .join(counts, counts.c.person_id == Person.id)
        .where(Person.user_id == user.id)
    )
    if not include_hidden:
        query = query.where(Person.hidden.is_(False))
    if name is not None:
        wanted = [person.id for person in await people_named(session, user, name)]
        query = query.where(Person.id.in_(wanted))
    total = await session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(
        await session.execute(
            query.order_by(counts.c.images.desc(), Person.name.is_(None), Person.name, Person.id)
            .offset((page - 1) * limit)
            .limit(limit)
        )
    )
    covers = await _covers(session, [person.id for person, _, _ in rows])
    return total, [
        PersonView(person, faces, images, covers.get(person.id)) for person, faces, images in rows
    ]


async def view_person(session: AsyncSession, person: Person) -> PersonView:
    """The person with its counts and cover face."""
    counts = _counts(Face.person_id == person.id)
    row = (
        await session.execute(
            select(counts.c.faces, counts.c.images).where(counts.c.person_id == person.id)
        )
    ).first()
    faces, images = (row[0], row[1]) if row else (0, 0)
    covers = await _covers(session, [person.id])
    return PersonView(person, faces, images, covers.get(person.id))


@dataclass(frozen=True)
class PersonImage:
    image: Image
    faces: list[Face]


async def person_images(
    session: AsyncSession, person: Person, *, page: int, limit: int
) -> tuple[int, list[PersonImage]]:
    """The images a person is in, newest upload first, each with the person's faces in it."""
    in_person = select(Face.image_id).where(Face.person_id == person.id)
    base = select(Image).where(Image.user_id == person.user_id, Image.id.in_(in_person))
    total = await session.scalar(select(func.count()).select_from(base.subquery())) or 0
    images = list(
        await session.scalars(
            base.order_by(Image.upload_date.desc(), Image.id.desc())
            .offset((page - 1) * limit)
            .limit(limit)
        )
    )
    faces: dict[uuid.UUID, list[Face]] = {}
    if images:
        for face in await session.scalars(
            select(Face)
            .where(Face.person_id == person.id, Face.image_id.in_([i.id for i in images]))
            .order_by(Face.position)
        ):
            faces.setdefault(face.image_id, []).append(face)
    return total, [PersonImage(image, faces.get(image.id, [])) for image in images]


@dataclass(frozen=True)
class ImageFace:
    face: Face
    person: Person | None


async def image_faces(session: AsyncSession, image: Image) -> list[ImageFace]:
    """The image's recorded faces in result order, each with its person (hidden ones too)."""
    rows = await session.execute(
        select(Face, Person)
        .outerjoin(Person, Person.id == Face.person_id)
        .where(Face.image_id == image.id)
        .order_by(Face.position)
    )
    return [ImageFace(face, person) for face, person in rows]


async def get_owned_face(session: AsyncSession, user: User, face_id: uuid.UUID) -> Face:
    """The face ``face_id``, if it is ``user``'s (else 404 or 403)."""
    face = await session.get(Face, face_id)
    if face is None:
        raise FaceNotFound()
    if face.user_id != user.id:
        raise NotFaceOwner()
    return face


async def people_named(session: AsyncSession, user: User, query: words.Query) -> list[Person]:
    """The owner's people whose name holds every term of a search query: a word, a prefix
    (``ali*``) or words in a row; case and accents do not matter."""
    named = await session.scalars(
        select(Person).where(Person.user_id == user.id, Person.name.is_not(None))
    )
    return [person for person in named if query.held_by(person.name or "")]


# Changing --------------------------------------------------------------------------------------


async def _relocked(session: AsyncSession, user: User, person_id: uuid.UUID) -> Person:
    """The owner's person as it is once the owner's people are locked: a merge, a prune or
    another change may have removed it since it was read."""
    await lock_people(session, user.id)
    return await get_owned_person(session, user, person_id, reread=True)


async def update_person(
    session: AsyncSession, user: User, person: Person, changes: dict[str, Any]
) -> Person:
    """Set the person's ``name`` and/or ``hidden`` (the keys of ``changes``)."""
    person = await _relocked(session, user, person.id)
    for field in ("name", "hidden"):
        if field in changes:
            setattr(person, field, changes[field])
    person.updated_at = utcnow()
    await session.commit()
    return person


async def merge_people(
    session: AsyncSession, user: User, person: Person, into_id: uuid.UUID
) -> Person:
    """Move every face of ``person`` to the person ``into_id`` and delete ``person``. The
    merged person keeps its name (or takes ``person``'s if it has none) and whether it is
    hidden."""
    if into_id == person.id:
        raise MergeIntoItself()
    await get_owned_person(session, user, into_id)  # 404/403 before anything is locked
    person = await _relocked(session, user, person.id)
    into = await _relocked(session, user, into_id)
    await session.execute(
        update(Face).where(Face.person_id == person.id).values(person_id=into.id, clustered=True)
    )
    if into.name is None and person.name is not None:
        into.name = person.name
    into.updated_at = utcnow()
    await session.execute(delete(Person).where(Person.id == person.id))
    await session.commit()
    return into


async def remove_face(
    session: AsyncSession, user: User, person: Person, face_id: uuid.UUID
) -> bool:
    """Take a face out of a person: it belongs to nobody from then on, and clustering leaves
    it so. Returns whether the person is gone (that was its last face)."""
    await lock_people(session, user.id)
    face = await get_owned_face(session, user, face_id)
    if face.person_id != person.id:
        raise FaceNotFound("This person has no such face.")
    face.person_id = None
    face.clustered = True
    await session.flush()
    gone = await prune_people(session, Person.id == person.id)
    await session.commit()
    return gone > 0


async def images_of_people(
    session: AsyncSession, person_ids: Sequence[uuid.UUID], image_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Per image of ``image_ids``, the people (of ``person_ids``) in it."""
    found: dict[uuid.UUID, list[uuid.UUID]] = {}
    if person_ids and image_ids:
        rows = await session.execute(
            select(Face.image_id, Face.person_id)
            .where(Face.person_id.in_(person_ids), Face.image_id.in_(image_ids))
            .distinct()
        )
        for image_id, person_id in rows:
            if person_id is not None:
                found.setdefault(image_id, []).append(person_id)
    return found
