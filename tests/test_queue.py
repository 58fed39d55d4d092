"""A background task is one declared record: a queue made with it sends, runs and retries its
messages, and tells its handler about each failure, with nothing else to wire."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest

from iap.config import Settings
from iap.queue import Runner, Task, TaskContext, TaskHandler, TaskLimits, TaskQueue

T = TypeVar("T")


class Recorder:
    """A handler that fails the first ``failures`` attempts of every message."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: dict[str, int] = {}
        self.done: list[str] = []
        self.failed_calls: list[tuple[str, bool]] = []
        self.finished = threading.Event()

    def run(self, argument: str) -> None:
        self.attempts[argument] = self.attempts.get(argument, 0) + 1
        if self.attempts[argument] <= self.failures:
            raise RuntimeError(f"attempt {self.attempts[argument]} fails")
        self.done.append(argument)
        self.finished.set()

    def failed(self, argument: str, error: str, final: bool) -> None:
        assert "fails" in error
        self.failed_calls.append((argument, final))
        if final:
            self.finished.set()


def limits(max_retries: int) -> Any:
    def of(settings: Settings) -> TaskLimits:
        return TaskLimits(
            max_retries=max_retries, min_backoff_ms=10, max_backoff_ms=20, time_limit_ms=5_000
        )

    return of


def task_with(recorder: Recorder, max_retries: int) -> Task:
    def handler(context: TaskContext, run: Runner) -> TaskHandler:
        return recorder

    return Task(name="echo", queue="echo", limits=limits(max_retries), handler=handler)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, queue_name="iap-test")


@pytest.fixture
def running() -> Iterator[list[TaskQueue]]:
    queues: list[TaskQueue] = []
    yield queues
    for queue in queues:
        queue.close()


def serve(queue: TaskQueue) -> Any:
    def run(coro: Coroutine[Any, Any, T]) -> T:
        raise AssertionError("this handler does no I/O")

    queue.serve(None, run)  # type: ignore[arg-type]  # the recorder needs no context
    worker = queue.worker(1)
    worker.start()
    return worker


def test_a_declared_task_gets_its_own_queue_and_runs(
    settings: Settings, running: list[TaskQueue]
) -> None:
    recorder = Recorder(failures=1)
    task = task_with(recorder, max_retries=3)
    queue = TaskQueue(settings, [task])
    running.append(queue)
    assert queue.broker.get_actor("echo").queue_name == "iap-test-echo"
    worker = serve(queue)
    try:
        item = uuid.uuid4()
        assert anyio.run(queue.enqueue, task, [item]) == [item]
        assert recorder.finished.wait(10)
    finally:
        worker.stop()
    assert recorder.done == [str(item)]
    assert recorder.attempts[str(item)] == 2
    assert recorder.failed_calls == [(str(item), False)]  # a retry followed


def test_the_last_failed_attempt_is_final(settings: Settings, running: list[TaskQueue]) -> None:
    recorder = Recorder(failures=10)
    task = task_with(recorder, max_retries=1)
    queue = TaskQueue(settings, [task])
    running.append(queue)
    worker = serve(queue)
    try:
        item = uuid.uuid4()
        anyio.run(queue.enqueue, task, [item])
        assert recorder.finished.wait(10)
    finally:
        worker.stop()
    assert recorder.done == []
    assert recorder.failed_calls == [(str(item), False), (str(item), True)]


def test_only_a_serving_process_has_handlers_and_undeclared_tasks_are_refused(
    settings: Settings, running: list[TaskQueue]
) -> None:
    task = task_with(Recorder(failures=0), max_retries=0)
    queue = TaskQueue(settings, [task])
    running.append(queue)
    assert queue.handler_of("echo") is None
    undeclared = Task(name="other", queue="", limits=limits(0), handler=task.handler)
    with pytest.raises(KeyError):
        anyio.run(queue.enqueue, undeclared, [uuid.uuid4()])
