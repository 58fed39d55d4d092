"""The ``cluster_faces`` task: place an owner's new faces into people.

Sent after every analysis that recorded faces waiting for a person, with the owner's id as
its argument, on the analysis queue. A run places every waiting face of the owner at once, so
of many messages for one owner the first does the work and the others find nothing to do; a
run killed before it commits leaves the faces waiting, and the message's redelivery, the
owner's next analysis or the reconciler (owners whose faces have waited longer than the
reconcile delay) places them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from iap.config import Settings
from iap.events.bus import make_event
from iap.people import service
from iap.queue import Recovery, Runner, Task, TaskContext, TaskLimits

log = logging.getLogger(__name__)


class FaceClusterer:
    def __init__(self, context: TaskContext, run: Runner) -> None:
        self.settings = context.settings
        self.sessions = context.sessions
        self.notifier = context.notifier
        self._on_loop = run

    def run(self, user_id: str) -> None:
        owner = uuid.UUID(user_id)
        done = self._on_loop(self._cluster(owner))
        if done.faces:
            log.info(
                "user %s: %d face(s) placed, %d new person(s)", user_id, done.faces, done.people
            )
            event = make_event(
                "people.grouped",
                faces=done.faces,
                new_people=done.people,
                image_ids=[str(image_id) for image_id in done.images],
            )
            self._on_loop(self.notifier.notify(owner, event))

    async def _cluster(self, user_id: uuid.UUID) -> service.Clustered:
        async with self.sessions() as session:
            return await service.cluster_owner(
                session, user_id, self.settings.face_grouping_distance
            )

    def failed(self, user_id: str, error: str, final: bool) -> None:
        # The faces stay waiting: the next message for the owner, or the reconciler, places
        # them; nothing else to record.
        log.warning(
            "clustering user %s's faces failed%s: %s",
            user_id,
            " for the last time" if final else "",
            error,
        )


async def _waiting_owners(
    session: AsyncSession, settings: Settings, everything: bool
) -> list[uuid.UUID]:
    quiet = timedelta(0) if everything else timedelta(seconds=settings.reconcile_after_seconds)
    return await service.pending_owners(session, waited=quiet)


def _limits(settings: Settings) -> TaskLimits:
    return TaskLimits(
        max_retries=settings.analysis_max_retries,
        min_backoff_ms=settings.analysis_min_backoff_ms,
        max_backoff_ms=settings.analysis_max_backoff_ms,
        time_limit_ms=settings.analysis_time_limit_seconds * 1000,
    )


CLUSTER_FACES = Task(
    name="cluster_faces",
    queue="",
    limits=_limits,
    handler=FaceClusterer,
    recovery=Recovery(lost=_waiting_owners),
)
