"""How a process that runs analysis passes is tuned: native threads and memory."""

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
_threads = 1


def prepare_process(threads: int = 1) -> None:
    """Tune this process for passes, once: the first call counts (``run_pass`` makes it, with
    the defaults, if nothing did before).

    - ``threads``: how many threads OpenCV, ONNX Runtime and libvips may each use. A worker
      process is one core's work (worker processes run passes in parallel, and more threads
      would only compete with the other processes): 1. The embedded deployment's analysis
      process, which yields the CPU to the API, takes every core.
    - glibc serves large blocks (a model's activations, an image's pixels) from the heap
      once some have been freed, and a heap seldom shrinks: after a few passes a worker kept
      the peak of every pass it ran. Blocks of 128 KiB and more now always get their own
      mapping, returned to the system when freed; measured on the OCR detector, this cuts
      the peak by a third for about 10 % more time.
    """
    global _prepared, _threads
    if _prepared:
        return
    _prepared = True
    _threads = max(1, threads)
    cv2.setNumThreads(_threads)
    pyvips.concurrency_set(_threads)
    if sys.platform.startswith("linux"):
        libc_name = ctypes.util.find_library("c")
        if libc_name is not None:
            libc = ctypes.CDLL(libc_name)
            if hasattr(libc, "mallopt"):  # glibc; musl has none and needs none
                libc.mallopt(_M_MMAP_THRESHOLD, _LARGE_BLOCK)
                libc.mallopt(_M_TRIM_THRESHOLD, _LARGE_BLOCK)


def native_threads() -> int:
    """Threads each native library (OpenCV, ONNX Runtime, libvips) may use for a pass."""
    return _threads
