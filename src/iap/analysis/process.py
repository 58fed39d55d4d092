"""How a process that runs analysis passes is tuned: cores, native threads and memory."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import cv2
import pyvips

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LARGE_BLOCK = 128 * 1024
_prepared = False
_cores = 1


def prepare_process(cores: int = 1) -> None:
    """Tune this process for passes, once: the first call counts (``run_pass`` makes it, with
    the defaults, if nothing did before).

    - ``cores``: how many cores a pass may use. A pass runs that many analysers side by side
      (``pass_cores``), and each native library (OpenCV, ONNX Runtime, libvips) uses one
      thread. Measured on a 12 MP photo with 2 cores, the whole pass took about 500 ms with
      one analyser at a time and every library on both cores (OCR's detector runs only 1.2x
      faster on two threads, the face cascade 1.1x), 350-400 ms with two analysers at a
      time on one thread each, and more than 500 ms with both at once. A worker process is
      one core's work (worker processes run passes in parallel): 1. The embedded
      deployment's analysis process, which yields the CPU to the API, takes every core.
    - glibc serves large blocks (a model's activations, an image's pixels) from the heap
      once some have been freed, and a heap seldom shrinks: after a few passes a worker kept
      the peak of every pass it ran. Blocks of 128 KiB and more now always get their own
      mapping, returned to the system when freed; measured on the OCR detector, this cuts
      the peak by a third for about 10 % more time. Faulting those mappings in is much of
      that time: ``iap.hugepages`` has glibc back them with 2 MiB pages.
    """
    global _prepared, _cores
    if _prepared:
        return
    _prepared = True
    _cores = max(1, cores)
    cv2.setNumThreads(1)
    pyvips.concurrency_set(1)
    if sys.platform.startswith("linux"):
        libc_name = ctypes.util.find_library("c")
        if libc_name is not None:
            libc = ctypes.CDLL(libc_name)
            if hasattr(libc, "mallopt"):  # glibc; musl has none and needs none
                libc.mallopt(_M_MMAP_THRESHOLD, _LARGE_BLOCK)
                libc.mallopt(_M_TRIM_THRESHOLD, _LARGE_BLOCK)


def pass_cores() -> int:
    """How many analysers of a pass run side by side."""
    return _cores
