"""One analysis pass: decode once, run each analyser, isolate failures, time everything."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from PIL import UnidentifiedImageError

from iap.analysis.analysers.base import Analyser, DerivedFile
from iap.analysis.decode import DecodedImage, decode
from iap.analysis.process import prepare_process

log = logging.getLogger(__name__)


class UndecodableImage(Exception):
    """The original cannot be decoded, so no analyser can run."""


OutcomeStatus = Literal["succeeded", "failed", "unavailable"]


@dataclass(frozen=True)
class Outcome:
    analyser: str
    version: int
    status: OutcomeStatus
    result: dict[str, Any] | None
    error: str | None
    duration_ms: float
    files: Mapping[str, DerivedFile] = field(default_factory=dict)


class PassStopped(Exception):
    """The pass stopped early: its ``lost`` check said its work is no longer wanted."""


# One pass at a time per process. A pass is CPU-bound and keeps the GIL for much of its
# time, so two in one process barely beat one, while each would hold its own images and its
# own activations: worker processes, not threads, are what runs passes in parallel (the
# threads overlap one job's pass with other jobs' reads and writes).
_one_pass_at_a_time = threading.Lock()
_WAIT_STEP_SECONDS = 0.5


def run_pass(
    source: BinaryIO,
    analysers: Iterable[Analyser],
    lost: Callable[[], bool] | None = None,
) -> tuple[float, list[Outcome]]:
    """Decode ``source`` once and run ``analysers`` on it. Returns the decode time (ms) and one
    outcome per analyser; an analyser that raises is recorded as failed and the others go on.

    A decode failure raises: without pixels no analyser can run. ``lost``, asked before each
    step, stops the pass (``PassStopped``) when it answers True (say, the image was deleted).
    ``source`` is closed once decoded: a ``BytesIO`` then lets go of the original's bytes
    (up to the upload limit) for the rest of the pass, if the caller holds no other reference.
    """

    def check() -> None:
        if lost is not None and lost():
            raise PassStopped()

    prepare_process()
    # Waited for in steps: a task's time limit, raised in this thread between bytecodes,
    # could not interrupt one long blocking acquire.
    while not _one_pass_at_a_time.acquire(timeout=_WAIT_STEP_SECONDS):
        pass
    try:
        check()
        started = time.perf_counter()
        try:
            decoded = decode(source)
        except UnidentifiedImageError:
            raise UndecodableImage(
                "the stored original is not an image in a supported format"
            ) from None
        except Exception as exc:
            raise UndecodableImage(f"the stored original could not be decoded: {exc}") from exc
        finally:
            source.close()
        decode_ms = (time.perf_counter() - started) * 1000
        outcomes = []
        for analyser in analysers:
            check()
            outcomes.append(run_one(analyser, decoded))
        return decode_ms, outcomes
    finally:
        _one_pass_at_a_time.release()


def run_one(analyser: Analyser, decoded: DecodedImage) -> Outcome:
    reason = analyser.unavailable()
    if reason is not None:
        return Outcome(analyser.name, analyser.version, "unavailable", None, reason, 0.0)
    started = time.perf_counter()
    try:
        output = analyser.analyse(decoded)
    except Exception as exc:
        elapsed = (time.perf_counter() - started) * 1000
        log.warning("analyser %s failed: %s: %s", analyser.name, type(exc).__name__, exc)
        error = f"{type(exc).__name__}: {exc}"[:1000]
        return Outcome(analyser.name, analyser.version, "failed", None, error, elapsed)
    elapsed = (time.perf_counter() - started) * 1000
    return Outcome(
        analyser.name,
        analyser.version,
        "succeeded",
        output.result.model_dump(mode="json"),
        None,
        elapsed,
        output.files,
    )
