"""The pass as a process runs it: one at a time, with OpenCV on one thread."""

from __future__ import annotations

import io
import threading
import time
from typing import ClassVar

import cv2
from PIL import Image

from iap.analysis.analysers.base import AnalyserResult, Output
from iap.analysis.decode import DecodedImage
from iap.analysis.pipeline import run_pass
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
