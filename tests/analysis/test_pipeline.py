"""The pass as a process runs it: one at a time, with OpenCV on one thread, and its analysers
side by side when the process has more than one core for a pass."""

from __future__ import annotations

import io
import threading
import time
from typing import ClassVar

import cv2
import pytest
from PIL import Image

from iap.analysis import pipeline
from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage
from iap.analysis.pipeline import PassStopped, run_pass
from tests.analysis.factories import encode


class Seen(AnalyserResult):
    width: int


class Overlapping:
    """Counts the passes inside ``analyse`` at once; holds each for a moment."""

    name: ClassVar[str] = "overlapping"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = Seen

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.most = 0

    def unavailable(self) -> str | None:
        return None

    def analyse(self, image: DecodedImage) -> Output:
        with self.lock:
            self.inside += 1
            self.most = max(self.most, self.inside)
        time.sleep(0.05)
        with self.lock:
            self.inside -= 1
        return Output(Seen(width=image.rgb.width))


def test_passes_in_one_process_run_one_at_a_time() -> None:
    analyser = Overlapping()
    data = encode(Image.new("RGB", (64, 48), "teal"))
    outcomes = []

    def one() -> None:
        outcomes.append(run_pass(io.BytesIO(data), [analyser])[1][0])

    threads = [threading.Thread(target=one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [o.status for o in outcomes] == ["succeeded"] * 6
    assert analyser.most == 1


def test_a_pass_leaves_opencv_on_one_thread() -> None:
    run_pass(io.BytesIO(encode(Image.new("RGB", (32, 32), "red"))), [])
    assert cv2.getNumThreads() == 1


class Meeting:
    """An analyser that waits (up to 5 s) until ``parties`` analysers are inside at once."""

    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = Seen

    def __init__(self, name: str, barrier: threading.Barrier) -> None:
        self.name = name  # type: ignore[misc]
        self.barrier = barrier
        self.met = False
        self.threads: set[str] = set()

    def unavailable(self) -> str | None:
        return None

    def analyse(self, image: DecodedImage) -> Output:
        self.threads.add(threading.current_thread().name)
        self.barrier.wait(timeout=5)
        self.met = True
        return Output(Seen(width=image.rgb.width))


class Failing:
    name: ClassVar[str] = "failing"
    version: ClassVar[int] = 1
    result_model: ClassVar[type[AnalyserResult]] = Seen

    def unavailable(self) -> str | None:
        return None

    def analyse(self, image: DecodedImage) -> Output:
        raise ValueError("no such thing")


@pytest.fixture
def two_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "pass_cores", lambda: 2)


def _data() -> bytes:
    return encode(Image.new("RGB", (64, 48), "teal"))


@pytest.mark.usefixtures("two_cores")
def test_with_two_cores_two_analysers_run_at_once_and_outcomes_keep_their_order() -> None:
    # Sequential, the first would wait out its 5 s and the barrier would break.
    barrier = threading.Barrier(2)
    first, second = Meeting("first", barrier), Meeting("second", barrier)
    analysers = [first, Failing(), second]
    _, outcomes = run_pass(io.BytesIO(_data()), analysers)  # type: ignore[list-item]
    assert [o.analyser for o in outcomes] == ["first", "failing", "second"]
    assert [o.status for o in outcomes] == ["succeeded", "failed", "succeeded"]
    assert first.met
    assert second.met
    assert first.threads != second.threads


def test_with_one_core_analysers_run_one_after_the_other() -> None:
    barrier = threading.Barrier(2)
    first, second = Meeting("first", barrier), Meeting("second", barrier)
    _, outcomes = run_pass(io.BytesIO(_data()), [first, second])  # type: ignore[list-item]
    # The first waited alone: its barrier broke, and the second found it broken.
    assert [o.status for o in outcomes] == ["failed", "failed"]
    assert first.threads == second.threads == {threading.current_thread().name}


@pytest.mark.usefixtures("two_cores")
def test_side_by_side_a_lost_pass_stops_every_lane_and_ends_after_them() -> None:
    # Asked before the decode, then before each analyser.
    answers = iter([False, False, False, True])
    asked = threading.Lock()

    def lost() -> bool:
        assert asked.acquire(blocking=False), "lanes asked at the same time"
        try:
            time.sleep(0.01)
            return next(answers, True)
        finally:
            asked.release()

    analysers = [Overlapping(), Overlapping(), Overlapping(), Overlapping()]
    with pytest.raises(PassStopped):
        run_pass(io.BytesIO(_data()), analysers, lost=lost)  # type: ignore[arg-type]
    assert sum(a.most for a in analysers) == 2  # two ran; the third was stopped
    assert all(a.inside == 0 for a in analysers)  # none still running when run_pass raised


@pytest.mark.usefixtures("two_cores")
def test_side_by_side_the_longest_analyser_starts_first() -> None:
    class Timed(Overlapping):
        def __init__(self, name: str, seconds: float, log: list[str]) -> None:
            super().__init__()
            self.name = name  # type: ignore[misc]
            self.seconds = seconds
            self.log = log

        def analyse(self, image: DecodedImage) -> Output:
            self.log.append(self.name)
            time.sleep(self.seconds)
            return Output(Seen(width=image.rgb.width))

    log: list[str] = []
    analysers = [Timed("quick-a", 0.0, log), Timed("quick-b", 0.0, log), Timed("slow", 0.1, log)]
    run_pass(io.BytesIO(_data()), analysers)  # type: ignore[arg-type]
    log.clear()
    run_pass(io.BytesIO(_data()), analysers)  # type: ignore[arg-type]
    assert log[0] == "slow"


@pytest.mark.usefixtures("two_cores")
def test_told_one_core_a_pass_runs_its_analysers_one_after_the_other() -> None:
    barrier = threading.Barrier(2)
    first, second = Meeting("first", barrier), Meeting("second", barrier)
    data = _data()
    _, outcomes = run_pass(io.BytesIO(data), [first, second], cores=lambda: 1)  # type: ignore[list-item]
    assert [o.status for o in outcomes] == ["failed", "failed"]  # each waited alone
    assert first.threads == second.threads == {threading.current_thread().name}


@pytest.mark.usefixtures("two_cores")
def test_a_helper_lane_takes_analysers_only_while_it_counts() -> None:
    ran_on: list[str] = []

    class Recording(Overlapping):
        def analyse(self, image: DecodedImage) -> Output:
            ran_on.append(threading.current_thread().name)
            time.sleep(0.02)
            return Output(Seen(width=image.rgb.width))

    analysers = [Recording() for _ in range(6)]
    # The helper lane asks before each analyser it takes: two cores for its first, then one.
    answers = iter([2])
    _, outcomes = run_pass(
        io.BytesIO(_data()),
        analysers,  # type: ignore[arg-type]
        lost=lambda: False,
        cores=lambda: next(answers, 1),
    )
    assert [o.status for o in outcomes] == ["succeeded"] * 6
    helper = [name for name in ran_on if name.startswith("iap-pass-lane-")]
    assert len(helper) == 1
    assert ran_on.count(threading.current_thread().name) == 5
