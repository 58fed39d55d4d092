"""Analysis passes in long-lived child processes, for the in-process (embedded) worker.

A pass is CPU work in Python and native code (Pillow, NumPy, OpenCV, ONNX Runtime) that holds
the GIL much of the time: run in a thread of the API process, it starves the event loop that
serves requests. A ``PassPool`` runs each pass in one of its child processes instead, behind
the contract of ``pipeline.run_pass``: the parent sends the original's bytes and the analyser
names, the child decodes and analyses, and sends back the outcomes (derived files included).

Between its steps the child asks the parent whether to go on, and the parent answers with the
caller's ``lost`` check, so a deleted image or a job taken over still stops the pass early.

Children are started with ``spawn`` (the API process runs threads: never fork it). Each imports
the analysers and runs a warm-up pass once, so that no upload pays for loading the models, and
then serves one pass at a time until its pipe closes. A child that dies mid-pass (killed, out
of memory, a crash in a native decoder) fails that attempt with ``AnalysisProcessDied``, so it
is retried as usual, and its slot gets a fresh child. An attempt interrupted in the parent
(Dramatiq's time limit raises in the waiting thread) kills its child, which is stuck mid-pass.
A child whose parent is gone exits on its own.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from PIL import Image, ImageDraw

from iap.analysis.analysers import ANALYSERS, by_name
from iap.analysis.pipeline import Outcome, PassStopped, UndecodableImage, run_pass
from iap.analysis.process import prepare_process
from iap.observability.logs import LogFormat, configure_logging

log = logging.getLogger(__name__)

# How often a waiting parent looks up from its pipe: for a child that died, for a pool that
# closes, and so that an exception raised in the waiting thread (a time limit) gets through.
POLL_SECONDS = 0.1
# A child imports the analysers and warms their models up before it says it is ready.
START_TIMEOUT_SECONDS = 120.0
# How long a child told to exit (its pipe closed) gets before it is killed.
EXIT_TIMEOUT_SECONDS = 5.0
# How often a child checks that the process that started it is still there.
ORPHAN_CHECK_SECONDS = 1.0
# Where SCHED_IDLE is not offered: the children's priority, below the API process's (0).
ANALYSIS_NICENESS = 10


class AnalysisProcessDied(Exception):
    """The child process running the pass ended before it answered."""


class AnalysisProcessFailed(Exception):
    """The child process could not run the pass (an error outside any analyser)."""


@dataclass(frozen=True)
class ChildConfig:
    """What a child needs to know, sent to it when it starts."""

    log_level: str
    log_format: LogFormat
    # The analysers it will run, warmed up before it says it is ready.
    analysers: tuple[str, ...]
    # Cores each of its passes may use: analysers side by side (``process.prepare_process``).
    cores: int = 1


# The parent's side ----------------------------------------------------------------------------


def _describe_end(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown"
        return f"signal {-exitcode}, {name}"
    return f"exit code {exitcode}"


class _Child:
    """One child process and the parent's end of its pipe."""

    def __init__(self, process: BaseProcess, conn: Connection, slot: int) -> None:
        self.process = process
        self.conn = conn
        self.slot = slot
        # Ending it (died, stopped, killed) happens once, in whichever thread gets there first.
        self._ending = threading.Lock()
        self._ended = False

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return not self._ended and self.process.is_alive()

    def wait_ready(self, closing: Callable[[], bool]) -> None:
        started = time.monotonic()
        deadline = started + START_TIMEOUT_SECONDS
        while not self.conn.poll(POLL_SECONDS):
            if self.process.exitcode is not None:
                raise self._died("while starting")
            if closing():
                raise AnalysisProcessFailed("the analysis processes are shutting down")
            if time.monotonic() > deadline:
                raise AnalysisProcessFailed(
                    f"the analysis process did not start within {START_TIMEOUT_SECONDS:g} s"
                )
        message = self._receive("while starting")
        if message != ("ready",):
            raise AnalysisProcessFailed(f"the analysis process said {message!r} at start")
        log.info(
            "analysis process %s started (slot %d, ready in %.1f s)",
            self.pid,
            self.slot,
            time.monotonic() - started,
        )

    def run(
        self,
        data: bytes,
        names: Sequence[str],
        lost: Callable[[], bool] | None,
        cores: Callable[[], int],
    ) -> tuple[float, list[Outcome]]:
        """One pass in this child. Anything but a clean answer (the child died, an exception
        raised in this thread meanwhile) leaves the child mid-pass: it is killed."""
        clean = False
        try:
            try:
                self.conn.send(("pass", data, list(names)))
            except OSError:
                raise self._died("while analysing this image") from None
            while True:
                message = self._wait("while analysing this image")
                kind = message[0]
                if kind in ("step", "cores"):
                    answer = (lost is None or not lost()) if kind == "step" else cores()
                    try:
                        self.conn.send(answer)
                    except OSError:
                        raise self._died("while analysing this image") from None
                    continue
                clean = True
                if kind == "done":
                    return float(message[1]), list(message[2])
                if kind == "stopped":
                    raise PassStopped()
                if kind == "undecodable":
                    raise UndecodableImage(str(message[1]))
                if kind == "error":
                    raise AnalysisProcessFailed(str(message[1]))
                clean = False
                raise AnalysisProcessFailed(f"the analysis process said {kind!r} mid-pass")
        finally:
            if not clean:
                self.kill("mid-pass")

    def _wait(self, doing: str) -> Any:
        while not self.conn.poll(POLL_SECONDS):
            if self.process.exitcode is not None:
                raise self._died(doing)
        return self._receive(doing)

    def _receive(self, doing: str) -> Any:
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            raise self._died(doing) from None

    def _died(self, doing: str) -> AnalysisProcessDied:
        with self._ending:
            if self._ended:  # the pool, shutting down, stopped it meanwhile
                return AnalysisProcessDied(f"the analysis process was stopped {doing}")
            self.process.join(EXIT_TIMEOUT_SECONDS)
            how = _describe_end(self.process.exitcode)
            self._end(f"died ({how}) {doing}", logging.WARNING)
        return AnalysisProcessDied(f"the analysis process died ({how}) {doing}")

    def reap(self) -> None:
        """Note the end of a child that died between passes."""
        with self._ending:
            if not self._ended:
                self.process.join(EXIT_TIMEOUT_SECONDS)
                how = _describe_end(self.process.exitcode)
                self._end(f"died ({how}) between passes", logging.WARNING)

    def stop(self) -> None:
        """Ask the child to exit (its pipe closes); kill it if it does not."""
        with self._ending:
            if self._ended:
                return
            with contextlib.suppress(OSError):
                self.conn.send(("exit",))
            self.process.join(EXIT_TIMEOUT_SECONDS)
            if self.process.exitcode is None:
                self.process.kill()
                self.process.join()
            self._end(f"exited ({_describe_end(self.process.exitcode)})", logging.INFO)

    def kill(self, why: str) -> None:
        with self._ending:
            if self._ended:
                return
            self.process.kill()
            self.process.join()
            self._end(f"killed {why}", logging.WARNING)

    def _end(self, how: str, level: int) -> None:
        self._ended = True
        self.conn.close()
        log.log(level, "analysis process %s %s (slot %d)", self.pid, how, self.slot)


@dataclass
class _Slot:
    index: int
    child: _Child | None = None


class PassPool:
    """``size`` child processes that run analysis passes, one pass each at a time.

    ``start()`` warms the children up in the background (the caller does not wait); a pass
    asked for meanwhile waits for the first one ready. ``close()`` stops them all."""

    def __init__(
        self, size: int, config: ChildConfig, serving: Callable[[], bool] | None = None
    ) -> None:
        if size < 1:
            raise ValueError("a pass pool needs at least one process")
        self.size = size
        self.config = config
        # True while this process serves requests: a pass then runs one analyser at a time
        # (the children's other cores are the requests'), else on all of its cores.
        self.serving = serving
        self._context = multiprocessing.get_context("spawn")
        self._slots = [_Slot(index) for index in range(size)]
        self._idle: queue.Queue[_Slot] = queue.Queue()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._children: set[_Child] = set()
        self._warmer: threading.Thread | None = None

    def start(self) -> None:
        """Start the children in a background thread; each slot is offered once its child is
        ready (or could not start: the first pass in it then tries again)."""
        self._warmer = threading.Thread(target=self._warm, name="iap-analysis-start", daemon=True)
        self._warmer.start()

    def _warm(self) -> None:
        for slot in self._slots:
            self._warm_slot(slot)

    def _warm_slot(self, slot: _Slot) -> None:
        if self._closed.is_set():
            return
        try:
            self._ensure(slot)
        except Exception as exc:
            log.warning("analysis process of slot %d did not start: %s", slot.index, exc)
        self._idle.put(slot)

    def _cores_now(self) -> int:
        """How many analysers a pass may run side by side from now on."""
        if self.serving is not None and self.serving():
            return 1
        return self.config.cores

    def pids(self) -> list[int]:
        """The process ids of the children ready to run passes (started and warmed up)."""
        return [
            slot.child.pid
            for slot in self._slots
            if slot.child is not None and slot.child.pid is not None and slot.child.alive()
        ]

    def run_pass(
        self, data: bytes, analysers: Sequence[str], lost: Callable[[], bool] | None = None
    ) -> tuple[float, list[Outcome]]:
        """``pipeline.run_pass`` in a child: decode ``data`` once and run the analysers named
        ``analysers``; the decode time (ms) and one outcome per analyser. Raises what
        ``run_pass`` raises (``UndecodableImage``, ``PassStopped`` when ``lost`` says so),
        and ``AnalysisProcessDied`` when the child ends mid-pass. Blocks until a child is
        free."""
        slot = self._take()
        try:
            child = self._ensure(slot)
            return child.run(data, analysers, lost, self._cores_now)
        finally:
            if slot.child is not None and slot.child.alive():
                self._idle.put(slot)
            else:  # it died or was killed: the next pass in this slot gets a warm child too
                threading.Thread(
                    target=self._warm_slot, args=(slot,), name="iap-analysis-restart", daemon=True
                ).start()

    def _take(self) -> _Slot:
        while True:
            if self._closed.is_set():
                raise AnalysisProcessFailed("the analysis processes are shut down")
            try:
                return self._idle.get(timeout=POLL_SECONDS * 5)
            except queue.Empty:
                continue

    def _ensure(self, slot: _Slot) -> _Child:
        """The slot's child, started afresh if it has none or it ended."""
        if slot.child is not None and slot.child.alive():
            return slot.child
        if slot.child is not None:
            slot.child.reap()
            self._forget(slot.child)
            slot.child = None
        child = self._spawn(slot.index)
        try:
            child.wait_ready(self._closed.is_set)
        except BaseException:
            child.kill("at start")
            self._forget(child)
            raise
        slot.child = child
        return child

    def _spawn(self, index: int) -> _Child:
        mine, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=serve_passes,
            args=(theirs, self.config, os.getpid()),
            name=f"iap-analysis-{index}",
            daemon=True,
        )
        with self._lock:
            if self._closed.is_set():
                raise AnalysisProcessFailed("the analysis processes are shut down")
            process.start()
            child = _Child(process, mine, index)
            self._children.add(child)
        theirs.close()  # the child's end lives in the child only: its exit closes the pipe
        return child

    def _forget(self, child: _Child) -> None:
        with self._lock:
            self._children.discard(child)

    def close(self) -> None:
        """Stop every child: idle ones are asked to exit, busy ones are killed."""
        self._closed.set()
        idle: list[_Slot] = []
        while True:
            try:
                idle.append(self._idle.get_nowait())
            except queue.Empty:
                break
        for slot in idle:
            if slot.child is not None:
                slot.child.stop()
        with self._lock:
            left = list(self._children)
            self._children.clear()
        for child in left:
            child.kill("at shutdown")
        if self._warmer is not None:
            self._warmer.join(EXIT_TIMEOUT_SECONDS)


def child_config(
    log_level: str, log_format: LogFormat, disabled: frozenset[str], children: int = 1
) -> ChildConfig:
    """The configuration of ``children`` children that run every analyser but ``disabled``.

    They share the machine's cores: a child runs at the lowest priority (the API preempts it
    at once), so its passes may use every core the API leaves idle."""
    names = tuple(a.name for a in ANALYSERS if a.name not in disabled)
    cores = max(1, (os.cpu_count() or 1) // max(1, children))
    return ChildConfig(log_level, log_format, names, cores)


# The child's side -----------------------------------------------------------------------------


def serve_passes(conn: Connection, config: ChildConfig, parent: int) -> None:
    """Body of a child: warm up, say ready, then run each pass the parent sends, until the
    pipe closes or the parent is gone."""
    # Shutting down is the parent's call: a Ctrl-C or SIGTERM sent to the whole process group
    # must not kill a pass the parent is still waiting for while it drains.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _yield_to_the_api()
    prepare_process(config.cores)
    configure_logging(config.log_level, config.log_format)
    threading.Thread(
        target=_exit_with, args=(parent,), name="iap-orphan-check", daemon=True
    ).start()
    _warm_up(config.analysers)
    try:
        conn.send(("ready",))
        while True:
            request = conn.recv()
            if request[0] != "pass":
                return
            _, data, names = request
            del request
            reply = _one_pass(conn, data, names)
            del data  # nothing of the original outlives its pass
            conn.send(reply)
            del reply
    except (EOFError, OSError, _ParentGone):
        return  # the parent closed the pipe, or is gone


def _yield_to_the_api() -> None:
    """Run this process (and the threads it starts) only on CPU time the API leaves over.

    Analysis is background work that shares the machine with the API. A lower nice value is
    not enough: a request's thread that wakes up still waits for the pass to be preempted,
    several times per request. Linux's SCHED_IDLE lets it preempt at once. Passes then wait
    while every CPU is busy with other work; the task's time limit bounds that wait."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux
        os.nice(ANALYSIS_NICENESS)


def _exit_with(parent: int) -> None:
    """Exit as soon as the parent is gone (then the child is re-parented), even mid-pass."""
    while True:
        time.sleep(ORPHAN_CHECK_SECONDS)
        if os.getppid() != parent:
            os._exit(0)


def _warm_up(names: Sequence[str]) -> None:
    """One pass on a small drawn image: imports, model files (OCR's engine) and native
    libraries' first-call costs are paid here, not by the first upload."""
    started = time.perf_counter()
    image = Image.new("RGB", (320, 240), (230, 230, 230))
    draw = ImageDraw.Draw(image)
    draw.rectangle((40, 40, 160, 120), fill=(30, 90, 200))
    draw.text((60, 160), "iap 123", fill=(0, 0, 0))
    sample = io.BytesIO()
    image.save(sample, "JPEG", quality=90)
    try:
        run_pass(sample, by_name(names))
    except Exception:
        log.exception("the warm-up pass failed; passes go on without it")
    log.info("analysis process warmed up in %.1f s", time.perf_counter() - started)


class _ParentGone(Exception):
    """The pipe to the parent closed mid-pass."""


def _one_pass(conn: Connection, data: bytes, names: Sequence[str]) -> tuple[Any, ...]:
    asking = threading.Lock()  # lanes share the pipe

    def ask(kind: str) -> Any:
        with asking:
            try:
                conn.send((kind,))
                return conn.recv()
            except (EOFError, OSError):
                raise _ParentGone() from None

    try:
        decode_ms, outcomes = run_pass(
            io.BytesIO(data),
            by_name(names),
            lost=lambda: not ask("step"),
            cores=lambda: int(ask("cores")),
        )
    except PassStopped:
        return ("stopped",)
    except UndecodableImage as exc:
        return ("undecodable", str(exc))
    except _ParentGone:
        raise
    except Exception as exc:
        log.exception("analysis pass failed outside its analysers")
        return ("error", f"{type(exc).__name__}: {exc}"[:1000])
    return ("done", decode_ms, outcomes)
