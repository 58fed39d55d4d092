"""One analysis pass: decode once, run each analyser, isolate failures, time everything."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from PIL import UnidentifiedImageError

from iap.analysis.analysers.base import Analyser, DerivedFile
from iap.analysis.decode import DecodedImage, decode
from iap.analysis.process import pass_cores, prepare_process

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
# threads overlap one job's pass with other jobs' reads and writes). Within a pass, analysers
# run side by side when the process has more than one core for it (``process.pass_cores``):
# most of their time is native code that lets go of the GIL.
_one_pass_at_a_time = threading.Lock()
_WAIT_STEP_SECONDS = 0.5
# Each analyser's time in this process's last pass (ms): side by side, the longest start
# first, so that the short ones fill the other lanes around them.
_last_ms: dict[str, float] = {}
_LANE_WAIT_SECONDS = 0.02


def run_pass(
    source: BinaryIO,
    analysers: Iterable[Analyser],
    lost: Callable[[], bool] | None = None,
    cores: Callable[[], int] | None = None,
) -> tuple[float, list[Outcome]]:
    """Decode ``source`` once and run ``analysers`` on it. Returns the decode time (ms) and one
    outcome per analyser; an analyser that raises is recorded as failed and the others go on.

    A decode failure raises: without pixels no analyser can run. ``lost``, asked before each
    step, stops the pass (``PassStopped``) when it answers True (say, the image was deleted).
    ``cores`` says how many analysers may run side by side now (at most
    ``process.pass_cores()``; all of them when not given): asked often, it must be cheap.
    ``source`` is closed once decoded: a ``BytesIO`` then lets go of the original's bytes
    (up to the upload limit) for the rest of the pass, if the caller holds no other reference.
    """

    asking = threading.Lock()
    stopped = False

    def check() -> None:
        nonlocal stopped
        if lost is None:
            return
        # Lanes ask one at a time, and once told to stop, none asks again.
        with asking:
            if stopped or lost():
                stopped = True
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
        return decode_ms, _run_analysers(list(analysers), decoded, check, cores)
    finally:
        _one_pass_at_a_time.release()


def _run_analysers(
    analysers: list[Analyser],
    decoded: DecodedImage,
    check: Callable[[], None],
    cores: Callable[[], int] | None,
) -> list[Outcome]:
    """One outcome per analyser, in their order. With more than one core, they run on that
    many lanes: this thread and helper threads, each taking the next analyser waiting, the
    longest (last time) first. A helper lane takes one only while ``cores`` counts it, and
    otherwise waits (``_LANE_WAIT_SECONDS`` at a time) until it does. Whatever a lane raises
    (``PassStopped``, a lost parent) stops every lane from taking more, and is raised here
    once all of them have ended: no analyser of this pass is still running when the next
    pass starts."""
    lanes = min(pass_cores(), len(analysers))
    if lanes <= 1:
        outcomes = []
        for analyser in analysers:
            check()
            outcomes.append(run_one(analyser, decoded))
    else:
        by_time = sorted(range(len(analysers)), key=lambda i: -_last_ms.get(analysers[i].name, 0.0))
        waiting = deque(by_time)
        taking = threading.Lock()
        done: list[Outcome | None] = [None] * len(analysers)
        raised: list[BaseException] = []

        def lane(number: int) -> None:
            try:
                while not raised:
                    if number > 0 and cores is not None and cores() <= number:
                        if not waiting:
                            return
                        time.sleep(_LANE_WAIT_SECONDS)  # until it counts again
                        continue
                    with taking:
                        if not waiting:
                            return
                        index = waiting.popleft()
                    check()
                    done[index] = run_one(analysers[index], decoded)
            except BaseException as exc:  # re-raised by the calling thread
                raised.append(exc)

        helpers = [
            threading.Thread(target=lane, args=(n,), name=f"iap-pass-lane-{n}", daemon=True)
            for n in range(1, lanes)
        ]
        for helper in helpers:
            helper.start()
        try:
            lane(0)
        finally:
            for helper in helpers:
                helper.join()
        if raised:
            raise raised[0]
        outcomes = [outcome for outcome in done if outcome is not None]
    for outcome in outcomes:
        _last_ms[outcome.analyser] = outcome.duration_ms
    return outcomes


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
