"""Clustering faces into people: the rule itself, and a run on each database: runs at once
make no duplicate people, a run that dies before it commits changes nothing and the next one
places every face, and a run with nothing waiting does nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from iap.auth.models import User
from iap.config import Settings
from iap.people import service
from iap.people.clustering import SAME_PERSON_DISTANCE, KnownFace, NewFace, NewPerson, cluster
from iap.people.errors import PersonNotFound
from iap.people.models import Face, Person
from iap.people.tasks import wait_more
from iap.services import Services
from tests.factories import make_account, uploaded, wait_for_analysis

T = TypeVar("T")
RNG = np.random.default_rng(11)


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


# Two identities far apart (random directions in 128 dimensions: about 1.4), and faces of
# each within 0.1-0.2 of it, as photos of one person are.
IDENTITIES = [_unit(RNG.normal(size=128)) * 0.5 for _ in range(3)]


def face_of(identity: int, spread: float = 0.08) -> np.ndarray:
    return (IDENTITIES[identity] + RNG.normal(size=128) * spread / np.sqrt(128)).astype(np.float32)


def test_a_face_joins_the_person_of_its_nearest_face_within_the_threshold() -> None:
    known = [KnownFace("ada", "i1", face_of(0)), KnownFace("bob", "i2", face_of(1))]
    placed = cluster(known, [NewFace("i3", face_of(1)), NewFace("i4", face_of(0))], 0.5)
    assert placed == ["bob", "ada"]


def test_faces_far_from_everyone_start_people_and_later_faces_join_them() -> None:
    new = [NewFace("i1", face_of(2)), NewFace("i2", face_of(0)), NewFace("i3", face_of(2))]
    assert cluster([], new, 0.5) == [NewPerson(0), NewPerson(1), NewPerson(0)]


def test_two_faces_of_one_image_are_never_one_person() -> None:
    # Twins, or a photo with a portrait in it: the same embedding twice in one image.
    twin = face_of(0)
    known = [KnownFace("ada", "group", twin)]
    placed = cluster(known, [NewFace("group", twin.copy()), NewFace("other", twin.copy())], 0.5)
    assert placed == [NewPerson(0), "ada"]


def test_the_threshold_decides() -> None:
    a, b = face_of(0), face_of(0)
    distance = float(np.linalg.norm(a - b))
    known = [KnownFace("ada", "i1", a)]
    assert cluster(known, [NewFace("i2", b)], distance + 0.01) == ["ada"]
    assert cluster(known, [NewFace("i2", b)], distance - 0.01) == [NewPerson(0)]


def test_the_same_input_gives_the_same_people() -> None:
    new = [NewFace(f"i{n}", face_of(n % 3)) for n in range(12)]
    assert cluster([], new, 0.5) == cluster([], new, 0.5)


# On the databases ----------------------------------------------------------------------------


def services_of(client: TestClient) -> Services:
    services: Services = client.app.state.services  # type: ignore[attr-defined]
    return services


def on_app(client: TestClient, fn: Callable[[], Awaitable[T]]) -> T:
    assert client.portal is not None
    return client.portal.call(fn)


def owner_with_waiting_faces(client: TestClient, identities: list[int]) -> uuid.UUID:
    """A new owner with one image per face, each face waiting for clustering."""
    owner = make_account(client)
    user_id = uuid.UUID(owner.id)
    images = [uuid.UUID(uploaded(client, owner, filename=f"{n}.jpg")["id"]) for n in identities]
    # Analysed first: recording an analysis replaces the image's faces with those it found.
    for image_id in images:
        wait_for_analysis(client, owner, str(image_id), {"succeeded"})
    services = services_of(client)

    async def add() -> None:
        async with services.sessions() as session:
            for image_id, identity in zip(images, identities, strict=True):
                session.add(
                    Face(
                        image_id=image_id,
                        user_id=user_id,
                        position=0,
                        x=0,
                        y=0,
                        width=100,
                        height=100,
                        confidence=0.9,
                        embedding=face_of(identity).astype("<f4").tobytes(),
                    )
                )
            await session.commit()

    on_app(client, add)
    return user_id


def state(client: TestClient, user_id: uuid.UUID) -> dict[str, Any]:
    services = services_of(client)

    async def read() -> dict[str, Any]:
        async with services.sessions() as session:
            faces = list(await session.scalars(select(Face).where(Face.user_id == user_id)))
            people = await session.scalar(
                select(func.count()).select_from(Person).where(Person.user_id == user_id)
            )
            return {
                "people": people,
                "waiting": sum(1 for face in faces if not face.clustered),
                "groups": sorted(
                    sorted(str(f.image_id) for f in faces if f.person_id == person)
                    for person in {f.person_id for f in faces if f.person_id}
                ),
            }

    return on_app(client, read)


def run(client: TestClient, user_id: uuid.UUID) -> service.Clustered:
    services = services_of(client)

    async def once() -> service.Clustered:
        async with services.sessions() as session:
            return await service.cluster_owner(session, user_id)

    return on_app(client, once)


IDENTITY_OF_IMAGE = [0, 1, 0, 2, 1, 0]


def test_runs_at_once_make_each_person_once(client: TestClient) -> None:
    user_id = owner_with_waiting_faces(client, IDENTITY_OF_IMAGE)
    services = services_of(client)

    async def together() -> list[service.Clustered]:
        async def one() -> service.Clustered:
            async with services.sessions() as session:
                return await service.cluster_owner(session, user_id)

        return list(await asyncio.gather(one(), one(), one()))

    results = on_app(client, together)
    assert sorted(r.faces for r in results) == [0, 0, len(IDENTITY_OF_IMAGE)]
    after = state(client, user_id)
    assert after["people"] == 3
    assert after["waiting"] == 0
    assert sorted(len(group) for group in after["groups"]) == [1, 2, 3]


def test_a_run_that_dies_before_committing_changes_nothing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id = owner_with_waiting_faces(client, IDENTITY_OF_IMAGE)

    def dies(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the worker was killed")

    with monkeypatch.context() as patched:
        patched.setattr(service, "cluster", dies)
        with pytest.raises(RuntimeError):
            run(client, user_id)
    assert state(client, user_id) == {"people": 0, "waiting": 6, "groups": []}
    done = run(client, user_id)
    assert (done.faces, done.people) == (6, 3)
    placed = state(client, user_id)
    # Nothing waits any more: another run does nothing.
    assert run(client, user_id) == service.Clustered(0, 0)
    assert state(client, user_id) == placed


def test_the_configured_distance_is_the_measured_one() -> None:
    assert Settings(_env_file=None).face_grouping_distance == SAME_PERSON_DISTANCE


def test_two_merges_of_the_same_two_people_at_once_leave_one_person(client: TestClient) -> None:
    user_id = owner_with_waiting_faces(client, [0, 1])
    run(client, user_id)
    services = services_of(client)

    async def both() -> list[object]:
        async with services.sessions() as session:
            user = await session.get(User, user_id)
            pair = list(await session.scalars(select(Person).where(Person.user_id == user_id)))
        assert user is not None
        assert len(pair) == 2

        async def merge(one: Person, other: Person) -> object:
            async with services.sessions() as session:
                try:
                    person = await service.get_owned_person(session, user, one.id)
                    return (await service.merge_people(session, user, person, other.id)).id
                except PersonNotFound as exc:
                    return exc

        first, second = pair
        return list(await asyncio.gather(merge(first, second), merge(second, first)))

    results = on_app(client, both)
    kept = [r for r in results if isinstance(r, uuid.UUID)]
    assert len(kept) == 1
    assert sum(isinstance(r, PersonNotFound) for r in results) == 1
    after = state(client, user_id)
    assert after["people"] == 1
    assert [len(group) for group in after["groups"]] == [2]


def test_faces_gather_while_they_keep_coming_but_not_for_ever() -> None:
    now = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
    delay = timedelta(seconds=2)
    # The newest arrived 0.5 s ago: wait the 1.5 s left of its delay.
    fresh = service.Waiting(oldest=now - timedelta(seconds=3), newest=now - timedelta(seconds=0.5))
    assert wait_more(fresh, now, delay) == timedelta(seconds=1.5)
    # Quiet for the delay: now.
    quiet = service.Waiting(oldest=now - timedelta(seconds=4), newest=now - timedelta(seconds=2))
    assert wait_more(quiet, now, delay) is None
    # Still coming, but the oldest has waited five delays: now.
    long = service.Waiting(oldest=now - timedelta(seconds=10), newest=now)
    assert wait_more(long, now, delay) is None
    # Still coming, the oldest close to the longest wait: only what is left of it.
    close = service.Waiting(oldest=now - timedelta(seconds=9.5), newest=now)
    assert wait_more(close, now, delay) == timedelta(seconds=0.5)
