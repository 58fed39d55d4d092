"""Benchmark of the analysis pass, run on demand: `.venv/bin/python bench/analysis.py`.

For a 2 MP and a 12 MP JPEG made here, it prints, from one run on this machine:
- the floor: Pillow decoding the whole image at full size;
- iap's decode (one per pass, shrunk on load) and the whole pass (decode + every analyser),
  with and without OCR, in ms per image and images/s, with their ratios to the floor;
- each analyser's median time; the first (cold) pass separately;
- the peak memory (max RSS) of a worker process running passes over both images;
- with --largest, the peak memory of a worker process analysing, and of an API process
  validating (as an upload is), the largest image the default limits accept: 100 MP, as a JPEG
  and as a PNG (which, unlike a JPEG, cannot be shrunk while it is decoded).
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import platform
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFilter, ImageFont

SIZES = {"2 MP": (1632, 1224), "12 MP": (4000, 3000)}
LARGEST = (11_500, 8_695)  # 99.99 MP: just under IAP_MAX_IMAGE_PIXELS' default of 100 MP


def photo_like(width: int, height: int, seed: int = 7) -> bytes:
    """A JPEG with what photos have: smooth gradients, edges, texture, noise and some text."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack(
        [
            120 + 100 * np.sin(x / width * 3.1),
            90 + 80 * np.cos(y / height * 2.3),
            140 + 60 * np.sin((x + y) / (width + height) * 5.0),
        ],
        axis=-1,
    )
    pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, width - 50)), int(rng.integers(0, height - 50))
        size = int(rng.integers(20, max(21, width // 6)))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=colour)
    image = image.filter(ImageFilter.GaussianBlur(1))
    font = ImageFont.load_default(size=max(24, width // 30))
    ImageDraw.Draw(image).text(
        (width // 10, height // 2), "HARBOUR MARKET 1984", fill="white", font=font
    )
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def full_decode(data: bytes) -> None:
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").load()


def peak_rss_kib() -> int:
    """This process's peak resident set. Not ``getrusage``'s ru_maxrss: Linux carries that over
    ``exec`` from the parent that forked the child, so it would report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # not Linux: the best there is


def worker_peak(images: list[bytes], skip_ocr: bool, queue: multiprocessing.Queue[int]) -> None:
    """Child process: run passes like a worker does and report its own peak RSS (KiB)."""
    from iap.analysis.analysers import ANALYSERS
    from iap.analysis.pipeline import run_pass

    analysers = [a for a in ANALYSERS if not (skip_ocr and a.name == "text")]
    for _ in range(2):
        for data in images:
            run_pass(io.BytesIO(data), analysers)
    queue.put(peak_rss_kib())


def upload_peak(images: list[bytes], queue: multiprocessing.Queue[int]) -> None:
    """Child process: validate uploads as the API does and report its own peak RSS (KiB)."""
    from iap.config import Settings
    from iap.images.inspection import inspect_image

    settings = Settings(_env_file=None)
    for data in images:
        inspect_image(
            io.BytesIO(data),
            max_pixels=settings.max_image_pixels,
            max_side=settings.max_image_side,
        )
    queue.put(peak_rss_kib())


def child_peak_mib(target: Callable[..., None], *args: object) -> float:
    context = multiprocessing.get_context("spawn")
    queue: multiprocessing.Queue[int] = context.Queue()
    child = context.Process(target=target, args=(*args, queue))
    child.start()
    peak = queue.get(timeout=1200)
    child.join()
    return peak / 1024


def largest_images() -> dict[str, bytes]:
    jpeg = photo_like(*LARGEST)
    with Image.open(io.BytesIO(jpeg)) as image:
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=1)
    return {"JPEG": jpeg, "PNG": out.getvalue()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--skip-ocr", action="store_true", help="leave OCR out entirely")
    parser.add_argument(
        "--largest", action="store_true", help="only the peak memory at 100 MP (JPEG and PNG)"
    )
    args = parser.parse_args()
    if args.largest:
        w, h = LARGEST
        print(f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}")
        for label, data in largest_images().items():
            print(f"== {w}x{h} {label}, {len(data) / 1e6:.0f} MB")
            analysed = child_peak_mib(worker_peak, [data], args.skip_ocr)
            validated = child_peak_mib(upload_peak, [data])
            print(
                f"  worker peak (passes, every analyser{' but OCR' if args.skip_ocr else ''}): "
                f"{analysed:.0f} MiB"
            )
            print(f"  API peak (validating it as an upload): {validated:.0f} MiB")
        return

    from iap.analysis.analysers import ANALYSERS
    from iap.analysis.decode import decode
    from iap.analysis.pipeline import run_pass

    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"Pillow {PIL.__version__}, NumPy {np.__version__}; median of {args.runs} runs\n"
    )
    everything = list(ANALYSERS)
    no_ocr = [a for a in ANALYSERS if a.name != "text"]
    passes = (
        {"pass without OCR": no_ocr}
        if args.skip_ocr
        else {"pass, all analysers": everything, "pass without OCR": no_ocr}
    )
    inputs = {label: photo_like(*size) for label, size in SIZES.items()}

    for label, data in inputs.items():
        print(f"== {label} JPEG, {len(data) / 1e6:.1f} MB")
        cold_started = time.perf_counter()
        run_pass(io.BytesIO(data), everything if not args.skip_ocr else no_ocr)
        cold = (time.perf_counter() - cold_started) * 1000
        floor = median_ms(lambda d=data: full_decode(d), args.runs)
        rows = [
            ("full decode (floor)", floor),
            (
                "iap decode (shrink-on-load)",
                median_ms(lambda d=data: decode(io.BytesIO(d)), args.runs),
            ),
        ]
        per_analyser: dict[str, list[float]] = {}
        for name, chosen in passes.items():
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                _, outcomes = run_pass(io.BytesIO(data), chosen)
                times.append((time.perf_counter() - started) * 1000)
                for outcome in outcomes:
                    per_analyser.setdefault(outcome.analyser, []).append(outcome.duration_ms)
            rows.append((name, statistics.median(times)))
        print(f"  {'step':<30}{'ms/image':>10}{'images/s':>10}{'x floor':>9}")
        for name, ms in rows:
            print(f"  {name:<30}{ms:>10.1f}{1000 / ms:>10.2f}{ms / floor:>9.2f}")
        print(f"  {'first (cold) pass':<30}{cold:>10.1f}")
        print(
            "  analysers (median ms): "
            + ", ".join(
                f"{name} {statistics.median(values):.1f}" for name, values in per_analyser.items()
            )
        )
        print()

    queue: multiprocessing.Queue[int] = multiprocessing.get_context("spawn").Queue()
    child = multiprocessing.get_context("spawn").Process(
        target=worker_peak, args=(list(inputs.values()), args.skip_ocr, queue)
    )
    child.start()
    peak = queue.get(timeout=600)
    child.join()
    print(
        f"worker peak memory (max RSS of a process running passes over both images): "
        f"{peak / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
