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
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from iap.config import Settings
from iap.db import utcnow
from iap.events.bus import make_event
from iap.people import service
from iap.queue import Recovery, Runner, Task, TaskContext, TaskLimits

log = logging.getLogger(__name__)


# Faces wait for grouping while more keep arriving (each within the delay of the one before),
# but never longer than this many delays: a steady stream of uploads is grouped a batch at a
# time, not a run per image, and still seen grouped within seconds.
LONGEST_WAIT_IN_DELAYS = 5
# The image ids a people.grouped event lists at most (a backlog can place thousands at once).
EVENT_IMAGES = 100


def wait_more(waiting: service.Waiting, now: datetime, delay: timedelta) -> timedelta | None:
    """How much longer to let the owner's waiting faces gather before grouping them, or None
    to group them now: when the newest has waited the delay, or the oldest the longest wait."""
    longest = delay * LONGEST_WAIT_IN_DELAYS
    left = min(delay - (now - waiting.newest), longest - (now - waiting.oldest))
    return left if left > timedelta(0) else None


class FaceClusterer:
    def __init__(self, context: TaskContext, run: Runner) -> None:
        self.settings = context.settings
        self.sessions = context.sessions
        self.notifier = context.notifier
        self.queue = context.queue
        self._on_loop = run

    def run(self, user_id: str) -> None:
        owner = uuid.UUID(user_id)
        delay = timedelta(milliseconds=self.settings.face_grouping_delay_ms)
        if delay:
            waiting = self._on_loop(self._waiting(owner))
            if waiting is None:
                return  # another message's run placed them
            later = wait_more(waiting, utcnow(), delay)
            if later is not None:
                delay_ms = int(later.total_seconds() * 1000) + 1
                self._on_loop(self.queue.enqueue(CLUSTER_FACES, [owner], delay_ms=delay_ms))
                return
        done = self._on_loop(self._cluster(owner))
        if done.faces:
            log.info(
                "user %s: %d face(s) placed, %d new person(s)", user_id, done.faces, done.people
            )
            event = make_event(
                "people.grouped",
                faces=done.faces,
                new_people=done.people,
                image_ids=[str(image_id) for image_id in done.images[:EVENT_IMAGES]],
                more_images=max(0, len(done.images) - EVENT_IMAGES),
            )
            self._on_loop(self.notifier.notify(owner, event))

    async def _waiting(self, user_id: uuid.UUID) -> service.Waiting | None:
        async with self.sessions() as session:
            return await service.waiting_since(session, user_id)

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


# A run over 100,000 placed faces takes about a second (bench/people.py).
GROUPING_TIME_LIMIT_MS = 120_000


def _limits(settings: Settings) -> TaskLimits:
    """Retried as analyses are (a failed run leaves its faces waiting, and the reconciler
    sends the owner again in any case), within a limit of its own."""
    return TaskLimits(
        max_retries=settings.analysis_max_retries,
        min_backoff_ms=settings.analysis_min_backoff_ms,
        max_backoff_ms=settings.analysis_max_backoff_ms,
        time_limit_ms=GROUPING_TIME_LIMIT_MS,
    )


CLUSTER_FACES = Task(
    name="cluster_faces",
    queue="",
    limits=_limits,
    handler=FaceClusterer,
    recovery=Recovery(lost=_waiting_owners),
)
