"""Benchmark of the analysis pass, run on demand: `.venv/bin/python bench/analysis.py`.

Everything is measured in one run on this machine, and every time is set against the same
floor: Pillow decoding the whole image at full size (`Image.open(...).convert("RGB")`), in a
fresh process that does nothing else (the median of several decodes after a first one). The
same decode in a process whose heap is already warm costs about half as much (a 12 MP decode
writes 100 MB of new pixels, and first-touching the memory is half its cost): the pass table
prints that figure too.

1. The pass (2 MP and 12 MP photo-like JPEGs made here): iap's decode, each analyser's median
   ms and its ratio to the floor, the baseline analysers together (properties, EXIF, hashes,
   colours, quality, derivatives), and the whole pass with and without OCR.
2. Upload to `succeeded`, end to end, on the embedded default (`iap serve` on a new data dir,
   every analyser on): the median over distinct 12 MP photos after a warm-up, timed from the
   start of the upload to the owner's `analysis.succeeded` event.
3. The peak memory (VmHWM) of a real `iap worker` process after passes over a 12 MP JPEG, a
   100 MP JPEG and a 100 MP PNG (100 MP: the largest the default limits accept).
4. Throughput of `iap worker --processes 1` and `--processes 2`: images/s while every process
   is busy (after its first two jobs, until the queue is empty), the median of alternating
   runs, and their ratio.
3 and 4 run `iap serve` and `iap worker` on PostgreSQL, Redis (cache and broker) and files on
local disk, with the variables the tests use (IAP_TEST_POSTGRES_URL, IAP_TEST_REDIS_URL,
IAP_TEST_AMQP_URL); they are skipped without them. `--only pass e2e` picks sections.

Each goal is printed with its figure, its ratio and whether this run met it. Timings are
wall-clock medians: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFilter, ImageFont

if TYPE_CHECKING:
    import httpx
    from load import Services

SIZES = {"2 MP": (1632, 1224), "12 MP": (4000, 3000)}
LARGEST = (11_500, 8_695)  # 99.99 MP: just under IAP_MAX_IMAGE_PIXELS' default of 100 MP
BASELINE = ("properties", "exif", "hashes", "colours", "quality", "derivatives")

# The goals.
GOAL_END_TO_END = 6.0  # x floor
GOAL_BASELINE = 1.5  # x floor
GOAL_PEAK_MIB = 400
GOAL_SCALING = 1.8  # 2 processes / 1 process


def photo_like(width: int, height: int, seed: int = 7) -> bytes:
    """A JPEG with what photos have: smooth gradients, edges, texture, noise and some text."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = float(rng.uniform(0, 3))
    base = np.stack(
        [
            120 + 100 * np.sin(x / width * 3.1 + phase),
            90 + 80 * np.cos(y / height * 2.3 + phase),
            140 + 60 * np.sin((x + y) / (width + height) * 5.0),
        ],
        axis=-1,
    )
    del x, y
    pixels = np.clip(base + rng.normal(0, 12, base.shape).astype(np.float32), 0, 255)
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    del base, pixels
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


def as_png(jpeg: bytes) -> bytes:
    with Image.open(io.BytesIO(jpeg)) as image:
        out = io.BytesIO()
        image.save(out, "PNG", compress_level=1)
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


_FLOOR_SCRIPT = """
import io, statistics, sys, time
from PIL import Image
data = open(sys.argv[1], "rb").read()
def decode():
    with Image.open(io.BytesIO(data)) as image:
        image.convert("RGB").load()
decode()
times = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    decode()
    times.append((time.perf_counter() - started) * 1000)
print(statistics.median(times))
"""


def floor_ms(data: bytes, runs: int) -> float:
    """The floor: the median full decode of ``data`` by Pillow in a fresh process that does
    nothing else, as a script decoding the file would see it. Measured apart from this
    process, whose own heap (warm from making the images, or tuned by a pass) changes what
    the decode's 100 MB of new pixels cost by a factor of two."""
    import subprocess

    with tempfile.NamedTemporaryFile(suffix=".jpg") as file:
        file.write(data)
        file.flush()
        done = subprocess.run(  # noqa: S603 - our own interpreter and script
            [sys.executable, "-c", _FLOOR_SCRIPT, file.name, str(max(runs, 5))],
            capture_output=True,
            text=True,
            check=True,
        )
    return float(done.stdout.strip())


def warm_ms(data: bytes, runs: int) -> float:
    """The same decode in this process, after a first one."""
    full_decode(data)
    return median_ms(lambda: full_decode(data), runs)


def verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


# 1. The pass -----------------------------------------------------------------------------------


def bench_pass(runs: int) -> dict[str, float]:
    """Per size: the table of steps and analysers. Returns the 12 MP figures the goals use."""
    from iap.analysis.analysers import ANALYSERS
    from iap.analysis.decode import decode
    from iap.analysis.pipeline import run_pass

    everything = list(ANALYSERS)
    no_ocr = [a for a in ANALYSERS if a.name != "text"]
    figures: dict[str, float] = {}
    for label, size in SIZES.items():
        data = photo_like(*size)
        print(f"== the pass, {label} JPEG ({size[0]}x{size[1]}, {len(data) / 1e6:.1f} MB)")
        cold_started = time.perf_counter()
        run_pass(io.BytesIO(data), everything)
        cold = (time.perf_counter() - cold_started) * 1000
        floor = floor_ms(data, runs)
        warm = warm_ms(data, runs)
        decode_ms = median_ms(lambda d=data: decode(io.BytesIO(d)), runs)
        per_analyser: dict[str, list[float]] = {}
        whole: dict[str, float] = {}
        for name, chosen in (("all analysers", everything), ("without OCR", no_ocr)):
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                _, outcomes = run_pass(io.BytesIO(data), chosen)
                times.append((time.perf_counter() - started) * 1000)
                if name == "all analysers":
                    for outcome in outcomes:
                        per_analyser.setdefault(outcome.analyser, []).append(outcome.duration_ms)
            whole[name] = statistics.median(times)
        analysers = {name: statistics.median(values) for name, values in per_analyser.items()}
        baseline = sum(analysers[name] for name in BASELINE)
        rows = [
            ("full Pillow decode (floor)", floor),
            ("  the same, in this process", warm),
            ("iap decode (shrink on load)", decode_ms),
        ]
        rows += [(f"  {name}", ms) for name, ms in analysers.items()]
        rows += [
            ("baseline analysers together", baseline),
            ("decode + baseline analysers", decode_ms + baseline),
            ("whole pass, all analysers", whole["all analysers"]),
            ("whole pass without OCR", whole["without OCR"]),
        ]
        print(f"  {'step':<34}{'ms/image':>10}{'x floor':>9}")
        for name, ms in rows:
            print(f"  {name:<34}{ms:>10.1f}{ms / floor:>9.2f}")
        print(f"  {'first (cold) pass, all analysers':<34}{cold:>10.1f}")
        print()
        if label == "12 MP":
            figures = {"floor": floor, "baseline": baseline, "decode": decode_ms}
    return figures


# 2. Upload to succeeded ------------------------------------------------------------------------


def bench_end_to_end(photos: int, runs: int) -> tuple[float, float, list[float]]:
    """Median upload→succeeded of ``photos`` distinct 12 MP photos on the embedded default,
    and the floor of the same files. Returns (median ms, floor ms, every time)."""
    import httpx
    from load import base_env, free_port, iap_command, process, wait_healthy
    from load import sign_in as sign_in_async

    images = [photo_like(*SIZES["12 MP"], seed=100 + n) for n in range(photos + 1)]
    steps: list[tuple[float, float, float, float]] = []
    floor = statistics.median(floor_ms(data, runs) for data in images[1:])

    async def measure(url: str) -> list[float]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            headers = await sign_in_async(client)
            succeeded: dict[str, asyncio.Future[float]] = {}
            loop = asyncio.get_running_loop()
            connected = asyncio.Event()

            async def listen() -> None:
                async with client.stream("GET", "/events", headers=headers) as stream:
                    async for line in stream.aiter_lines():
                        connected.set()
                        if not line.startswith("data:"):
                            continue
                        event = json.loads(line[5:])
                        if event.get("type") in ("analysis.succeeded", "analysis.failed"):
                            when = time.perf_counter()
                            future = succeeded.setdefault(event["image_id"], loop.create_future())
                            if not future.done():
                                if event["type"] == "analysis.failed":
                                    future.set_exception(RuntimeError(f"analysis failed: {event}"))
                                else:
                                    future.set_result(when)

            listener = asyncio.create_task(listen())
            await asyncio.wait_for(connected.wait(), 30)
            times = []
            # perf_counter -> wall clock, to set the job's timestamps beside the client's.
            wall = time.time() - time.perf_counter()
            for n, data in enumerate(images):
                started = time.perf_counter()
                files = {"file": (f"photo-{n}.jpg", data, "image/jpeg")}
                response = await client.post("/image/upload", files=files, headers=headers)
                response.raise_for_status()
                uploaded = time.perf_counter()
                image_id = response.json()["id"]
                future = succeeded.setdefault(image_id, loop.create_future())
                done = await asyncio.wait_for(future, 300)
                if n == 0:  # the warm-up
                    continue
                times.append((done - started) * 1000)
                path = f"/image/{image_id}/analysis"
                job = (await client.get(path, headers=headers)).json()["job"]
                began = datetime.fromisoformat(job["started_at"]).timestamp() - wall
                ended = datetime.fromisoformat(job["finished_at"]).timestamp() - wall
                steps.append(
                    (
                        (uploaded - started) * 1000,
                        (began - uploaded) * 1000,
                        (ended - began) * 1000,
                        (done - ended) * 1000,
                    )
                )
            listener.cancel()
            return times

    with tempfile.TemporaryDirectory(prefix="iap-e2e-") as tmp, ExitStack() as stack:
        port = free_port()
        # Info: the worker logs each job's decode and analyser times.
        env = base_env() | {"IAP_DATA_DIR": str(Path(tmp) / "data"), "IAP_LOG_LEVEL": "info"}
        log = Path(tmp) / "serve.log"
        proc = stack.enter_context(process(iap_command("serve", "--port", str(port)), env, log))
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log)
        times = asyncio.run(measure(url))
        in_pass = pass_times(log.read_text())[1:]  # the warm-up's first
    names = ("upload request", "queued, until claimed", "claimed to recorded", "to the event")
    print("  where the time goes (median ms):", file=sys.stderr)
    print(
        "  "
        + ", ".join(
            f"{name} {statistics.median(s[i] for s in steps):.0f}" for i, name in enumerate(names)
        )
    )
    if in_pass:
        keys = list(in_pass[0])
        print(
            "  inside the pass (median ms): "
            + ", ".join(f"{k} {statistics.median(p[k] for p in in_pass):.0f}" for k in keys)
        )
    return statistics.median(times), floor, times


def pass_times(log: str) -> list[dict[str, float]]:
    """Each "job ... done" line's decode and analyser times, in order."""
    found = []
    for line in log.splitlines():
        if " done: image " not in line or "decode " not in line:
            continue
        times = {"decode": float(re.search(r"decode (\d+) ms", line)[1])}  # type: ignore[index]
        for name, ms in re.findall(r"(\w+)=\w+\((\d+) ms\)", line):
            times[name] = float(ms)
        found.append(times)
    return found


# A deployment with a real `iap worker` ------------------------------------------------------


class Deployment:
    """`iap serve` and, when asked, `iap worker` on PostgreSQL, Redis (cache and broker) and
    files on local disk: a fresh database, Redis prefix and queue, removed at the end."""

    def __init__(self, services: Services, workdir: Path) -> None:
        self.services = services
        self.workdir = workdir
        self.stack = ExitStack()

    def __enter__(self) -> Deployment:
        import subprocess

        import httpx
        from load import (
            base_env,
            forget_redis_keys,
            free_port,
            fresh_database,
            iap_command,
            wait_healthy,
        )
        from load import process as subprocess_of

        self.workdir.mkdir(parents=True)
        tag = secrets.token_hex(4)
        stack = self.stack
        database = stack.enter_context(fresh_database(self.services.postgres, f"iap_bench_{tag}"))
        prefix = f"iap-bench-{tag}:"
        stack.callback(forget_redis_keys, self.services.redis, prefix)
        self.env = base_env() | {
            "IAP_DATA_DIR": str(self.workdir / "data"),
            "IAP_DATABASE_URL": database,
            "IAP_STORAGE_URL": (self.workdir / "blobs").as_uri(),
            "IAP_REDIS_URL": self.services.redis,
            "IAP_REDIS_PREFIX": prefix,
            "IAP_BROKER_URL": self.services.redis,
            "IAP_QUEUE_NAME": f"iap-bench-{tag}",
            "IAP_SECRET_KEY": secrets.token_urlsafe(48),
        }
        migrated = subprocess.run(  # noqa: S603 - our own interpreter and arguments
            iap_command("migrate"), env=self.env, capture_output=True, text=True, check=False
        )
        if migrated.returncode != 0:
            raise SystemExit(f"iap migrate failed: {migrated.stderr.strip()}")
        port = free_port()
        log = self.workdir / "serve.log"
        command = iap_command("serve", "--port", str(port))
        serve = stack.enter_context(subprocess_of(command, self.env, log))
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, serve, log)
        self.client = stack.enter_context(httpx.Client(base_url=url, timeout=300))
        self.headers = sign_in(self.client)
        self.worker_log = self.workdir / "worker.log"
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def upload(self, data: bytes, name: str) -> str:
        files = {"file": (name, data, "application/octet-stream")}
        response = self.client.post("/image/upload", files=files, headers=self.headers)
        response.raise_for_status()
        return str(response.json()["id"])

    def start_worker(self, processes: int) -> int:
        """Start `iap worker --processes N`; its pid."""
        from load import iap_command
        from load import process as subprocess_of

        command = iap_command("worker", "--processes", str(processes))
        return self.stack.enter_context(subprocess_of(command, self.env, self.worker_log)).pid

    def wait_finished(self, ids: list[str]) -> list[datetime]:
        """Each job's finished_at, once all have succeeded. Asks about the last one only until
        it is done (jobs start in order), then about the others: polling costs the API and the
        database CPU time the workers being measured would otherwise have."""
        deadline = time.monotonic() + 900
        done: dict[str, datetime] = {}
        while len(done) < len(ids):
            if time.monotonic() > deadline:
                log = self.worker_log.read_text()[-3000:]
                raise SystemExit(f"jobs not finished after 900 s:\n{log}")
            time.sleep(0.5)
            for image_id in ids if ids[-1] in done else ids[-1:]:
                if image_id not in done:
                    path = f"/image/{image_id}/analysis"
                    job = self.client.get(path, headers=self.headers).json()["job"]
                    if job["status"] == "failed":
                        raise SystemExit(f"job failed: {job}")
                    if job["status"] == "succeeded":
                        done[image_id] = datetime.fromisoformat(job["finished_at"])
        return list(done.values())


def sign_in(client: httpx.Client) -> dict[str, str]:
    username = f"bench_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    account = {"username": username, "email": f"{username}@example.com", "password": password}
    client.post("/signup", json=account).raise_for_status()
    tokens = client.post("/login", data={"username": username, "password": password})
    tokens.raise_for_status()
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(field)


def services_or_skip() -> Services | None:
    from load import Services

    services = Services.from_env()
    if services is None:
        print("  skipped: set IAP_TEST_POSTGRES_URL and IAP_TEST_REDIS_URL\n")
    return services


# 3. Peak memory --------------------------------------------------------------------------------


def poster(width: int, height: int) -> bytes:
    """A PNG of flat colours and gradients: a 100 MP one still fits the 50 MB upload limit
    (a photo-like one would not)."""
    rng = np.random.default_rng(3)
    image = Image.linear_gradient("L").resize((width // 8, height // 8)).convert("RGB")
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, width - 500)), int(rng.integers(0, height - 500))
        size = int(rng.integers(100, width // 5))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        draw.rectangle((x0, y0, x0 + size, y0 + size // 2), fill=colour)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def bench_memory(workdir: Path) -> tuple[float, float] | None:
    """Peak RSS of a real `iap worker` (one process) after each image. Returns the peaks after
    the JPEGs and after everything."""
    print("== peak memory (VmHWM) of `iap worker --processes 1`, every analyser, after each image")
    services = services_or_skip()
    if services is None:
        return None
    files = {
        "12 MP JPEG": photo_like(*SIZES["12 MP"]),
        "100 MP JPEG": photo_like(*LARGEST),
        "100 MP PNG": poster(*LARGEST),
    }
    peaks: dict[str, float] = {}
    with Deployment(services, workdir / "memory") as deployment:
        pid = deployment.start_worker(1)
        for label, data in files.items():
            deployment.wait_finished([deployment.upload(data, label.replace(" ", "-"))])
            peaks[label] = status_kib(pid, "VmHWM") / 1024
            rss = status_kib(pid, "VmRSS") / 1024
            print(
                f"  {label:<12} ({len(data) / 1e6:5.1f} MB): peak {peaks[label]:4.0f} MiB, "
                f"resident after it {rss:4.0f} MiB"
            )
    full_copy = LARGEST[0] * LARGEST[1] * 3 / 2**20
    print(f"  (one full-resolution RGB copy of a 100 MP image: {full_copy:.0f} MiB)\n")
    return peaks["100 MP JPEG"], max(peaks.values())


# 4. Throughput ---------------------------------------------------------------------------------


def bench_throughput(images: int, rounds: int, workdir: Path) -> dict[int, float] | None:
    """Images/s of `iap worker --processes 1` and `2`, each the median of ``rounds`` runs.

    The runs alternate (1, 2, then 2, 1, ...): on a shared machine the speed drifts by 10 %
    or more from one minute to the next, and alternating spreads the drift over both. In each
    run the images wait in the queue before the worker starts. Each process's first two jobs
    (models loading, a cold first pass) are left out, and so are the last jobs once the queue
    is empty: each process then finishes its last one while the others have nothing left, so
    the window is the steady state, every process busy: from the 2N-th finish to the first
    finish after the last job was taken (N processes, the (images - N + 1)-th finish)."""
    print(f"== throughput of `iap worker` (12 MP JPEGs, every analyser, {rounds} rounds)")
    services = services_or_skip()
    if services is None:
        return None
    photos = [photo_like(*SIZES["12 MP"], seed=300 + n) for n in range(images)]
    measured: dict[int, list[float]] = {1: [], 2: []}
    for number in range(rounds):
        for processes in (1, 2) if number % 2 == 0 else (2, 1):
            tag = f"throughput-{number}-{processes}"
            with Deployment(services, workdir / tag) as deployment:
                ids = [deployment.upload(data, f"photo-{n}.jpg") for n, data in enumerate(photos)]
                deployment.start_worker(processes)
                finished = sorted(deployment.wait_finished(ids))
            first, last = 2 * processes - 1, len(finished) - processes
            seconds = (finished[last] - finished[first]).total_seconds()
            rate = (last - first) / seconds
            measured[processes].append(rate)
            print(
                f"  round {number + 1}, --processes {processes}: {last - first} images in "
                f"{seconds:.2f} s (finishes {first + 1} to {last + 1} of {len(finished)}): "
                f"{rate:.2f} images/s"
            )
    rates = {processes: statistics.median(runs) for processes, runs in measured.items()}
    for processes, rate in rates.items():
        print(f"  iap worker --processes {processes}: median {rate:.2f} images/s")
    print()
    return rates


# Main ------------------------------------------------------------------------------------------


@contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="iap-bench-") as tmp:
        yield Path(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement")
    parser.add_argument("--photos", type=int, default=5, help="photos timed end to end")
    parser.add_argument("--images", type=int, default=20, help="images per throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs per process count")
    parser.add_argument("--only", choices=("pass", "e2e", "memory", "throughput"), nargs="*")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))  # bench/load.py's helpers
    only = set(args.only or ("pass", "e2e", "memory", "throughput"))

    import cv2
    import onnxruntime
    import pyvips

    print(
        f"machine: {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the start), "
        f"Python {platform.python_version()}, Pillow {PIL.__version__}, NumPy {np.__version__}, "
        f"libvips {pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}, "
        f"OpenCV {cv2.__version__}, ONNX Runtime {onnxruntime.__version__}; "
        f"medians of {args.runs} runs\n"
    )
    goals: list[str] = []
    with workspace() as workdir:
        if "pass" in only:
            figures = bench_pass(args.runs)
            ratio = figures["baseline"] / figures["floor"]
            goals.append(
                f"2. baseline analysers, 12 MP: {figures['baseline']:.0f} ms = {ratio:.2f}x the "
                f"floor (goal <= {GOAL_BASELINE}x): {verdict(ratio <= GOAL_BASELINE)}; with "
                f"the decode {(figures['baseline'] + figures['decode']) / figures['floor']:.2f}x"
            )
        if "e2e" in only:
            print("== upload to succeeded, embedded default, every analyser on", file=sys.stderr)
            median, floor, times = bench_end_to_end(args.photos, args.runs)
            ratio = median / floor
            print(
                f"== upload to `succeeded`, embedded default (`iap serve`), every analyser on,"
                f" {args.photos} distinct 12 MP JPEGs after a warm-up:\n"
                f"  each (ms): {', '.join(f'{t:.0f}' for t in times)}\n"
                f"  median {median:.0f} ms; full decode of the same files {floor:.1f} ms\n"
            )
            goals.append(
                f"1. upload to succeeded, 12 MP: {median:.0f} ms = {ratio:.2f}x the floor "
                f"(goal <= {GOAL_END_TO_END}x): {verdict(ratio <= GOAL_END_TO_END)}"
            )
        if "memory" in only:
            peaks = bench_memory(workdir)
            if peaks is not None:
                jpegs, everything = peaks
                goals.append(
                    f"3. worker peak memory, 12 MP and 100 MP JPEGs: {jpegs:.0f} MiB; with a "
                    f"100 MP PNG too: {everything:.0f} MiB (goal <= {GOAL_PEAK_MIB} MiB): "
                    f"{verdict(everything <= GOAL_PEAK_MIB)}"
                )
        if "throughput" in only:
            rates = bench_throughput(args.images, args.rounds, workdir)
            if rates is not None:
                scaling = rates[2] / rates[1]
                goals.append(
                    f"4. iap worker: {rates[1]:.2f} images/s with 1 process, {rates[2]:.2f} with "
                    f"2 = {scaling:.2f}x (goal >= {GOAL_SCALING}x): "
                    f"{verdict(scaling >= GOAL_SCALING)}"
                )
    print("== goals (12 MP unless said; floor = full Pillow decode of the same file, this run)")
    for line in goals:
        print(f"  {line}")


if __name__ == "__main__":
    main()
