"""Prometheus metrics: what they are, how they are recorded, how they are exposed.

Every label takes few values — route templates (never raw paths), HTTP methods, status
classes, analyser names, job outcomes — and no metric carries user data: ids, names, files and
tags never become labels. That is why ``GET /metrics`` can do without authentication.

Processes: the API answers ``GET /metrics`` for itself and for the analysis threads running
inside it (embedded deployment). ``iap worker --metrics-port`` exposes the worker processes.
Where one port must speak for several processes (``iap worker --processes N``,
``iap serve --workers N``), those processes are started with ``PROMETHEUS_MULTIPROC_DIR`` set
to a shared directory (prometheus-client's multi-process mode): each writes its samples there
and any reader sums them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Literal

from anyio import to_thread
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from iap.analysis.models import AnalysisJob, JobStatus

if TYPE_CHECKING:
    from iap.analysis.pipeline import Outcome

log = logging.getLogger(__name__)

# prometheus-client's own switch: read when it is first imported, so a process must have it in
# its environment from the start (processes spawned after it is set do).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Counting jobs must never make a scrape hang on a struggling database.
QUEUE_COUNT_TIMEOUT_SECONDS = 1.0
QUEUE_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)
# The gauge autoscalers without KEDA follow (deploy/k8s/components/worker-hpa).
QUEUE_DEPTH = "iap_analysis_queue_depth"

JobOutcome = Literal["succeeded", "retrying", "failed", "dropped", "deferred", "abandoned"]

_ANALYSIS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

HTTP_DURATION = Histogram(
    "iap_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response, by route template, method and "
    "status class (2xx, 4xx, ...).",
    ["route", "method", "status_class"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
UPLOAD_BYTES = Counter(
    "iap_upload_bytes",
    "Request body bytes received by POST /image/upload (the file and its multipart framing), "
    "by status class of the answer.",
    ["status_class"],
)
ANALYSER_DURATION = Histogram(
    "iap_analyser_duration_seconds",
    "Time one analyser took on one image, by analyser and result (succeeded or failed).",
    ["analyser", "status"],
    buckets=_ANALYSIS_BUCKETS,
)
DECODE_DURATION = Histogram(
    "iap_analysis_decode_duration_seconds",
    "Time to decode an original once, before its analysers run.",
    buckets=_ANALYSIS_BUCKETS,
)
JOB_OUTCOMES = Counter(
    "iap_analysis_job_outcomes",
    "Analysis attempts by outcome: succeeded; retrying (failed, another attempt is scheduled); "
    "failed (the last attempt failed: the job is dead); dropped (the job was no longer waiting, "
    "e.g. its image was deleted); deferred (another worker was running the job: the message "
    "comes back when that run's lease would run out); abandoned (the run stopped early or "
    "recorded nothing: the image was deleted during it, or the run was taken over).",
    ["outcome"],
)

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    """The method as a label; any other verb a client makes up counts as ``other``."""
    return method if method in _METHODS else "other"


def status_class(status: int) -> str:
    """``404`` -> ``4xx``: five values instead of dozens."""
    return f"{status // 100}xx"


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Record one answered HTTP request; ``route`` is its template, never its path."""
    HTTP_DURATION.labels(route, method_label(method), status_class(status)).observe(seconds)


def observe_upload(status: int, received: int) -> None:
    """Record the body bytes one upload request brought in."""
    UPLOAD_BYTES.labels(status_class(status)).inc(received)


def observe_pass(decode_ms: float, outcomes: Iterable[Outcome]) -> None:
    """Record one analysis pass; analysers that could not run here took no time worth a sample."""
    DECODE_DURATION.observe(decode_ms / 1000)
    for outcome in outcomes:
        if outcome.status != "unavailable":
            ANALYSER_DURATION.labels(outcome.analyser, outcome.status).observe(
                outcome.duration_ms / 1000
            )


def observe_job(outcome: JobOutcome) -> None:
    """Record how one analysis attempt ended."""
    JOB_OUTCOMES.labels(outcome).inc()


class _Scrape(Collector):
    """One scrape: this process's (or the shared directory's) metrics and the queue depth."""

    def __init__(self, base: Collector, extra: list[Metric]) -> None:
        self.base = base
        self.extra = extra

    def collect(self) -> Iterator[Metric]:
        yield from self.base.collect()
        yield from self.extra


def _base_collector() -> Collector:
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return registry
    return REGISTRY


async def queue_depth(sessions: async_sessionmaker[AsyncSession]) -> Metric | None:
    """Jobs queued and running, counted in the database (the source of truth for jobs, and the
    one place that knows about all of them whichever broker holds their messages). None when the
    count fails or is slow: the series then goes missing for that scrape rather than lying."""

    async def count() -> dict[JobStatus, int]:
        async with sessions() as session:
            rows = await session.execute(
                select(AnalysisJob.status, func.count())
                .where(AnalysisJob.status.in_(QUEUE_STATUSES))
                .group_by(AnalysisJob.status)
            )
            return {status: number for status, number in rows}

    try:
        counts = await asyncio.wait_for(count(), QUEUE_COUNT_TIMEOUT_SECONDS)
    except Exception as exc:  # a metric must never fail the scrape
        log.warning("could not count analysis jobs for /metrics: %s", type(exc).__name__)
        return None
    family = GaugeMetricFamily(
        QUEUE_DEPTH,
        "Analysis jobs queued (including those waiting for a retry) and running, counted in "
        "the database when scraped.",
        labels=["status"],
    )
    for status in QUEUE_STATUSES:
        family.add_metric([status.value], counts.get(status, 0))
    return family


async def exposition(sessions: async_sessionmaker[AsyncSession], accept: str) -> tuple[bytes, str]:
    """The body and content type of ``GET /metrics``, in the format the scraper asked for."""
    depth = await queue_depth(sessions)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(_base_collector(), [depth] if depth is not None else []))
    encode, content_type = choose_encoder(accept)
    # Multi-process mode reads a file per process and metric: off the event loop.
    body = await to_thread.run_sync(encode, registry)
    return body, content_type


def serve_worker_metrics(host: str, port: int) -> None:
    """Expose this process's metrics (or, in multi-process mode, those of every process that
    shares its directory) over HTTP on ``host:port``, from a daemon thread."""
    start_http_server(port, addr=host, registry=_base_collector())


@contextmanager
def shared_metrics_dir() -> Iterator[None]:
    """Within the block, processes started from here write their metrics to one fresh directory
    that any of them can expose summed; it is removed at the end. A directory the operator set
    (``PROMETHEUS_MULTIPROC_DIR``) is used as it is, and kept."""
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="iap-metrics-") as path:
        os.environ[MULTIPROC_ENV] = path
        try:
            yield
        finally:
            del os.environ[MULTIPROC_ENV]
