"""Every background task, one line each; each record is declared beside its domain."""

from __future__ import annotations

from iap.analysis.tasks import ANALYSE_IMAGE
from iap.events.webhooks import DELIVER_WEBHOOK
from iap.people.tasks import CLUSTER_FACES
from iap.queue import Task

TASKS: tuple[Task, ...] = (
    ANALYSE_IMAGE,
    DELIVER_WEBHOOK,
    CLUSTER_FACES,
)
