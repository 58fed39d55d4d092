"""Load benchmark, run on demand: `.venv/bin/python bench/load.py`.

Measures uploads/s (`POST /image/upload`, small JPEGs) and metadata reads/s (`GET /image/{id}`)
with their p50/p99 latencies, from one async httpx client with a fixed number of requests in
flight, against servers started here as subprocesses:
- a bare FastAPI app on uvicorn (a multipart upload that keeps nothing, a GET of a small dict):
  the ceiling for this client, server stack and machine, measured in the same run;
- the embedded default: `iap serve` on a new data dir (SQLite, local files, in-process worker);
- the scaled deployment: `iap serve` and `iap worker` on PostgreSQL, Redis, RabbitMQ and S3
  (moto's server), named by the variables the tests use (IAP_TEST_POSTGRES_URL,
  IAP_TEST_REDIS_URL, IAP_TEST_AMQP_URL), with a new database, bucket, queue and Redis prefix.
Reads are measured first, on images whose analysis has finished (a quiet server); then, with
few in flight (--probe-concurrency), at rest and while a backlog of uploads is being analysed
(the difference is what analysis costs the API's other requests); uploads after, while their
analysis runs on the same CPUs, as it does in use. The run ends with the goals: on the
embedded default, reads while analysing within 2x of reads at rest, and uploads within 1.5x of
the scaled deployment's (p99 each). Everything started is stopped and everything created is
removed at the end.

While each measurement runs, the CPU (cores in use, on average) and the peak memory (resident
set) of each iap process are sampled from /proc: the figures behind the Kubernetes resource
requests and limits in deploy/k8s (see docs/deployment.md).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import itertools
import os
import platform
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from fastapi import FastAPI, UploadFile

RATE_LIMITS_OFF = "1000000/60"
READY_TIMEOUT = 90.0


# The ceiling: a bare FastAPI app ---------------------------------------------------------------


def make_bare_app() -> FastAPI:
    """The least an upload and a metadata read can cost on FastAPI + uvicorn."""
    app = FastAPI()
    items: dict[str, dict[str, Any]] = {}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/upload", status_code=201)
    async def upload(file: UploadFile) -> dict[str, Any]:
        data = await file.read()
        item_id = str(uuid.uuid4())
        items[item_id] = {"id": item_id, "filename": file.filename, "size": len(data)}
        return items[item_id]

    @app.get("/item/{item_id}")
    async def item(item_id: str) -> dict[str, Any]:
        return items.get(item_id) or {"id": item_id}

    return app


# Images ----------------------------------------------------------------------------------------


class Jpegs:
    """Small photo-like JPEGs; each call returns bytes no upload has sent before (a counter in a
    JPEG comment segment), so no layer can serve a repeat from anywhere."""

    def __init__(self, count: int = 16, size: tuple[int, int] = (640, 480)) -> None:
        from PIL import Image, ImageDraw

        self.pool: list[bytes] = []
        for n in range(count):
            image = Image.linear_gradient("L").resize(size).convert("RGB")
            draw = ImageDraw.Draw(image)
            for k in range(12):
                x, y = (n * 37 + k * 53) % size[0], (n * 29 + k * 71) % size[1]
                draw.ellipse((x, y, x + 60, y + 60), fill=((n * 40) % 256, k * 20, 200 - k * 10))
            out = io.BytesIO()
            image.save(out, "JPEG", quality=85)
            self.pool.append(out.getvalue())
        self.counter = 0

    def next(self) -> bytes:
        self.counter += 1
        base = self.pool[self.counter % len(self.pool)]
        comment = f"bench {self.counter} {secrets.token_hex(4)}".encode()
        segment = b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment
        return base[:2] + segment + base[2:]  # right after the SOI marker

    @property
    def sizes(self) -> str:
        kb = sorted(len(data) / 1000 for data in self.pool)
        return f"{kb[0]:.0f}-{kb[-1]:.0f} kB"


# Processes -------------------------------------------------------------------------------------


def free_port() -> int:
    """A free loopback port below Linux's ephemeral range (32768 and up), which the many
    outgoing connections made before the server binds it cannot take meanwhile."""
    for port in random.sample(range(10_000, 32_768), 50):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free loopback port between 10000 and 32767")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A subprocess in its own process group (its children go with it), logging to ``log``,
    stopped with SIGTERM (then SIGKILL) at the end."""
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url} exited at start-up:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not become healthy:\n{log.read_text()[-2000:]}")


def base_env() -> dict[str, str]:
    """The environment of every server: this one without any IAP_ setting of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
    env |= {
        "IAP_LOG_LEVEL": "warning",
        "IAP_UPLOAD_RATE_LIMIT": RATE_LIMITS_OFF,
        "IAP_LOGIN_RATE_LIMIT": RATE_LIMITS_OFF,
        "IAP_SIGNUP_RATE_LIMIT": RATE_LIMITS_OFF,
    }
    return env


def iap_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "iap", *args]


@dataclass
class Server:
    """A running target: where it listens and how to speak to it."""

    label: str
    url: str
    upload_path: str
    get_path: str  # with {id}
    iap: bool
    log: Path
    headers: dict[str, str] = field(default_factory=dict)
    # Role ("iap serve", "iap worker") -> pid of the process whose tree is measured.
    processes: dict[str, int] = field(default_factory=dict)


def start_bare(stack: ExitStack, workdir: Path) -> Server:
    port = free_port()
    log = workdir / "bare.log"
    args = [sys.executable, "-m", "uvicorn", "--factory", "load:make_bare_app"]
    args += ["--app-dir", str(Path(__file__).parent), "--port", str(port)]
    args += ["--log-level", "warning", "--no-access-log"]
    proc = stack.enter_context(process(args, base_env(), log))
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, log)
    return Server("bare FastAPI (ceiling)", url, "/upload", "/item/{id}", iap=False, log=log)


def start_embedded(
    stack: ExitStack, workdir: Path, disabled: str, analysis_processes: int | None
) -> Server:
    port = free_port()
    env = base_env() | {
        "IAP_DATA_DIR": str(workdir / "embedded"),
        "IAP_DISABLED_ANALYSERS": disabled,
    }
    if analysis_processes is not None:
        env["IAP_ANALYSIS_PROCESSES"] = str(analysis_processes)
    log = workdir / "embedded.log"
    proc = stack.enter_context(process(iap_command("serve", "--port", str(port)), env, log))
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, log)
    return Server(
        "embedded (SQLite, files)",
        url,
        "/image/upload",
        "/image/{id}",
        iap=True,
        log=log,
        processes={"iap serve": proc.pid},
    )


@dataclass(frozen=True)
class Services:
    postgres: str
    redis: str
    amqp: str

    @staticmethod
    def from_env() -> Services | None:
        names = ("IAP_TEST_POSTGRES_URL", "IAP_TEST_REDIS_URL", "IAP_TEST_AMQP_URL")
        values = [os.environ.get(name) for name in names]
        if not all(values):
            return None
        postgres, redis, amqp = (str(v) for v in values)
        return Services(postgres.replace("postgresql+asyncpg://", "postgresql://"), redis, amqp)


def start_scaled(
    stack: ExitStack, workdir: Path, services: Services, disabled: str, worker_threads: int
) -> Server:
    tag = secrets.token_hex(4)
    database = stack.enter_context(fresh_database(services.postgres, f"iap_bench_{tag}"))
    endpoint, bucket = start_moto(stack, workdir)
    queue = f"iap-bench-{tag}"
    prefix = f"iap-bench-{tag}:"
    stack.callback(forget_queue, services.amqp, queue)
    stack.callback(forget_redis_keys, services.redis, prefix)
    env = base_env() | {
        "IAP_DATA_DIR": str(workdir / "scaled"),
        "IAP_DATABASE_URL": database,
        "IAP_STORAGE_URL": f"s3://{bucket}/iap",
        "IAP_S3_ENDPOINT_URL": endpoint,
        "IAP_S3_ACCESS_KEY_ID": "bench",
        "IAP_S3_SECRET_ACCESS_KEY": "bench",
        "IAP_REDIS_URL": services.redis,
        "IAP_REDIS_PREFIX": prefix,
        "IAP_BROKER_URL": services.amqp,
        "IAP_QUEUE_NAME": queue,
        "IAP_SECRET_KEY": secrets.token_urlsafe(48),
        "IAP_DISABLED_ANALYSERS": disabled,
    }
    migrated = subprocess.run(  # noqa: S603 - our own interpreter and arguments
        iap_command("migrate"), env=env, capture_output=True, text=True, check=False
    )
    if migrated.returncode != 0:
        raise SystemExit(f"iap migrate failed: {migrated.stderr.strip()}")
    port = free_port()
    log = workdir / "scaled-serve.log"
    proc = stack.enter_context(process(iap_command("serve", "--port", str(port)), env, log))
    worker_args = iap_command("worker", "--processes", "1", "--threads", str(worker_threads))
    worker_log = workdir / "scaled-worker.log"
    worker = stack.enter_context(process(worker_args, env, worker_log))
    url = f"http://127.0.0.1:{port}"
    wait_healthy(url, proc, log)
    label = "scaled (PostgreSQL, S3, Redis, RabbitMQ)"
    return Server(
        label,
        url,
        "/image/upload",
        "/image/{id}",
        iap=True,
        log=worker_log,
        processes={"iap serve": proc.pid, "iap worker": worker.pid},
    )


@contextmanager
def fresh_database(server: str, name: str) -> Iterator[str]:
    import asyncpg

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(server)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield urlunsplit(urlsplit(server)._replace(path=f"/{name}"))
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def start_moto(stack: ExitStack, workdir: Path) -> tuple[str, str]:
    import boto3

    port = free_port()
    args = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    log = workdir / "moto.log"
    proc = stack.enter_context(process(args, base_env(), log))
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                message = f"moto's S3 server did not start:\n{log.read_text()[-2000:]}"
                raise SystemExit(message) from None
            time.sleep(0.1)
    bucket = f"iap-bench-{secrets.token_hex(4)}"
    boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - moto takes any credentials
    ).create_bucket(Bucket=bucket)
    return endpoint, bucket


def forget_queue(amqp_url: str, queue: str) -> None:
    """Delete the run's queues (main, delayed, dead letters) from the shared RabbitMQ."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
            channel.queue_delete(name)
    finally:
        connection.close()


def forget_redis_keys(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(f"{prefix}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# Load ------------------------------------------------------------------------------------------


@dataclass
class Measured:
    label: str
    latencies_ms: list[float]
    errors: int
    seconds: float

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, p: int) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else float("nan")
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[p - 1]


Request = Callable[[httpx.AsyncClient], Awaitable[httpx.Response]]


# Resources -------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants (a worker's processes, uvicorn's server processes)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_and_rss(pids: list[int]) -> tuple[float, int]:
    """CPU seconds used so far and resident bytes now, summed over ``pids``."""
    cpu, rss = 0.0, 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue  # it ended meanwhile
        cpu += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        rss += pages * PAGE_BYTES
    return cpu, rss


@dataclass
class Usage:
    """One process tree's use while a measurement ran."""

    cores: float  # CPU seconds per second of wall time
    peak_mib: float  # the largest resident set sampled


class Sampler:
    """Samples each role's process tree every ``interval`` seconds in a thread."""

    def __init__(self, processes: dict[str, int], interval: float = 0.2) -> None:
        self.processes = processes
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._peaks = dict.fromkeys(processes, 0)
        self._started = (0.0, dict.fromkeys(processes, 0.0))
        self.usage: dict[str, Usage] = {}

    def __enter__(self) -> Sampler:
        self._started = (time.perf_counter(), self._cpu())
        self._thread.start()
        return self

    def _cpu(self) -> dict[str, float]:
        return {role: cpu_and_rss(process_tree(pid))[0] for role, pid in self.processes.items()}

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for role, pid in self.processes.items():
                _, rss = cpu_and_rss(process_tree(pid))
                self._peaks[role] = max(self._peaks[role], rss)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        began, cpu_before = self._started
        wall = time.perf_counter() - began
        cpu_after = self._cpu()
        self.usage = {
            role: Usage((cpu_after[role] - cpu_before[role]) / wall, self._peaks[role] / 2**20)
            for role in self.processes
        }


async def drive(
    client: httpx.AsyncClient, request: Request, concurrency: int, seconds: float
) -> Measured:
    """``concurrency`` requests in flight for ``seconds``; latency of each successful one."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def one_lane() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                response = await request(client)
                ok = response.is_success
            except httpx.HTTPError:
                ok = False
            if ok:
                latencies.append((time.perf_counter() - started) * 1000)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(one_lane() for _ in range(concurrency)))
    return Measured("", latencies, errors, time.perf_counter() - started)


async def sign_in(client: httpx.AsyncClient) -> dict[str, str]:
    username = f"bench_{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(16)
    account = {"username": username, "email": f"{username}@example.com", "password": password}
    (await client.post("/signup", json=account)).raise_for_status()
    tokens = await client.post("/login", data={"username": username, "password": password})
    tokens.raise_for_status()
    return {"Authorization": f"Bearer {tokens.json()['access_token']}"}


async def upload(client: httpx.AsyncClient, server: Server, jpegs: Jpegs) -> httpx.Response:
    files = {"file": ("bench.jpg", jpegs.next(), "image/jpeg")}
    return await client.post(server.upload_path, files=files, headers=server.headers)


async def seed(
    client: httpx.AsyncClient, server: Server, jpegs: Jpegs, args: argparse.Namespace
) -> list[str]:
    """Upload ``args.seed`` images and, on iap, wait until their analysis is over."""
    ids: list[str] = []
    lanes = asyncio.Semaphore(args.concurrency)

    async def one() -> None:
        async with lanes:
            response = await upload(client, server, jpegs)
            response.raise_for_status()
            ids.append(response.json()["id"])

    await asyncio.gather(*(one() for _ in range(args.seed)))
    if server.iap:
        await wait_analysed(client, server, ids)
    return ids


async def wait_analysed(
    client: httpx.AsyncClient, server: Server, ids: list[str], within_seconds: float = 300
) -> None:
    deadline = time.monotonic() + within_seconds
    pending = {image_id: "" for image_id in ids}
    while pending and time.monotonic() < deadline:
        for image_id in list(pending):
            # The job as the database has it (the metadata route answers from its cache).
            path = f"/image/{image_id}/analysis"
            job = (await client.get(path, headers=server.headers)).json()["job"]
            if job["status"] in {"succeeded", "failed"}:
                del pending[image_id]
            else:
                pending[image_id] = str(job)
        await asyncio.sleep(0.5)
    if pending:
        raise SystemExit(
            f"{server.label}: {len(pending)} seed image(s) not analysed after "
            f"{within_seconds:g} s: {pending}\n{server.log}:\n{server.log.read_text()[-3000:]}"
        )


@dataclass
class Pair:
    """One operation on one deployment, and the same on the bare app just before it."""

    operation: str
    measured: Measured
    ceiling: Measured
    usage: dict[str, Usage] = field(default_factory=dict)
    note: str = ""


async def upload_backlog(
    client: httpx.AsyncClient, server: Server, jpegs: Jpegs, count: int, concurrency: int
) -> list[str]:
    """Upload ``count`` images as fast as they are taken; their analysis is then queued."""
    ids: list[str] = []
    lanes = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with lanes:
            response = await upload(client, server, jpegs)
            response.raise_for_status()
            ids.append(response.json()["id"])

    await asyncio.gather(*(one() for _ in range(count)))
    return ids


async def unfinished(client: httpx.AsyncClient, server: Server, ids: list[str]) -> int:
    """How many of ``ids`` the database still has queued or running."""
    count = 0
    for image_id in ids:
        job = (await client.get(f"/image/{image_id}/analysis", headers=server.headers)).json()
        count += job["job"]["status"] not in {"succeeded", "failed"}
    return count


@dataclass
class Responsiveness:
    """Reads at rest and while a backlog of uploads is analysed, with few in flight: the
    latency then tells how soon the API gets to a request, not how long requests queue."""

    at_rest: Measured
    busy: Measured
    usage: dict[str, Usage]
    note: str


async def reads_while_analysing(
    server: Server,
    client: httpx.AsyncClient,
    ids: list[str],
    jpegs: Jpegs,
    args: argparse.Namespace,
) -> Responsiveness:
    """Reads at rest, then while a backlog of uploads is analysed (no upload is handled
    meanwhile: what the reads feel is the analysis alone). The note says whether the backlog
    outlasted the measurement, without which the figure flatters."""
    request = reader(server, ids)
    lanes = args.probe_concurrency
    at_rest = await drive(client, request, lanes, args.seconds)
    backlog = await upload_backlog(client, server, jpegs, args.backlog, args.concurrency)
    with Sampler(server.processes) as sampler:
        busy = await drive(client, request, lanes, args.seconds)
    left = await unfinished(client, server, backlog)
    await wait_analysed(client, server, backlog)
    state = "busy throughout" if left else "DRAINED EARLY: raise --backlog"
    note = f"backlog of {len(backlog)} uploads, {left} still unanalysed at the end ({state})"
    return Responsiveness(at_rest, busy, sampler.usage, note)


@asynccontextmanager
async def connected(server: Server, concurrency: int) -> AsyncIterator[httpx.AsyncClient]:
    """The same client, configured the same way, for every server."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
        if server.iap:
            server.headers = await sign_in(client)
        yield client


def reader(server: Server, ids: list[str]) -> Request:
    counter = itertools.count()

    async def read(client: httpx.AsyncClient) -> httpx.Response:
        image_id = ids[next(counter) % len(ids)]
        return await client.get(server.get_path.format(id=image_id), headers=server.headers)

    return read


def sender(server: Server, jpegs: Jpegs) -> Request:
    async def send(client: httpx.AsyncClient) -> httpx.Response:
        return await upload(client, server, jpegs)

    return send


async def measure(
    target: Server, bare: Server, args: argparse.Namespace, jpegs: Jpegs
) -> list[Pair]:
    """Reads, then uploads; each on the bare app, then on ``target``, back to back, so that
    the ceiling is taken under the same conditions as the figure it is set beside."""
    pairs = []
    async with (
        connected(bare, args.concurrency) as bare_client,
        connected(target, args.concurrency) as target_client,
    ):
        lanes = [
            (bare, bare_client, await seed(bare_client, bare, jpegs, args)),
            (target, target_client, await seed(target_client, target, jpegs, args)),
        ]
        for operation in ("reads", "uploads"):
            figures, usages = [], []
            for server, client, ids in lanes:
                request = reader(server, ids) if operation == "reads" else sender(server, jpegs)
                await drive(client, request, args.concurrency, args.warmup)
                with Sampler(server.processes) as sampler:
                    figures.append(await drive(client, request, args.concurrency, args.seconds))
                usages.append(sampler.usage)
            ceiling, measured = figures
            pairs.append(Pair(operation, replace(measured, label=target.label), ceiling, usages[1]))
            if operation == "reads":
                # Beside the bare app's reads at rest: it runs no analysis to be slowed by.
                _, target_client, target_ids = lanes[1]
                found = await reads_while_analysing(target, target_client, target_ids, jpegs, args)
                for name, figure, usage in (
                    ("reads at rest", found.at_rest, {}),
                    ("reads while analysing", found.busy, found.usage),
                ):
                    labelled = replace(figure, label=target.label)
                    pairs.append(Pair(name, labelled, ceiling, usage, found.note))
    return pairs


# Report ----------------------------------------------------------------------------------------


def print_table(title: str, pairs: list[Pair]) -> None:
    print(f"== {title}")
    print(
        f"  {'deployment':<42}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}   "
        f"{'bare req/s':>10}{'p50 ms':>8}{'p99 ms':>8}   {'x ceiling':>9}"
    )
    for pair in pairs:
        row, top = pair.measured, pair.ceiling
        print(
            f"  {row.label:<42}{row.rate:>8.1f}{row.percentile(50):>8.1f}"
            f"{row.percentile(99):>8.1f}{row.errors:>7}   {top.rate:>10.1f}"
            f"{top.percentile(50):>8.1f}{top.percentile(99):>8.1f}   {row.rate / top.rate:>9.2f}"
        )
    print()


def p99_of(pairs: list[Pair], label: str, operation: str) -> float | None:
    for pair in pairs:
        if pair.measured.label == label and pair.operation == operation:
            return pair.measured.percentile(99)
    return None


def print_goals(pairs: list[Pair], embedded: str, scaled: str, lanes: int) -> None:
    """The embedded default's two goals, from this run's figures."""
    print("== goals (embedded default, p99)")
    rest = p99_of(pairs, embedded, "reads at rest")
    busy = p99_of(pairs, embedded, "reads while analysing")
    if rest is not None and busy is not None:
        ratio = busy / rest
        print(
            f"  GET /image/{{id}} ({lanes} in flight) at rest {rest:.1f} ms, while analysing "
            f"{busy:.1f} ms: {ratio:.2f}x (goal <= 2x: {'met' if ratio <= 2 else 'NOT met'})"
        )
    embedded_uploads = p99_of(pairs, embedded, "uploads")
    scaled_uploads = p99_of(pairs, scaled, "uploads")
    if embedded_uploads is not None and scaled_uploads is not None:
        ratio = embedded_uploads / scaled_uploads
        print(
            f"  POST /image/upload embedded {embedded_uploads:.1f} ms, scaled "
            f"{scaled_uploads:.1f} ms: {ratio:.2f}x (goal <= 1.5x: "
            f"{'met' if ratio <= 1.5 else 'NOT met'})"
        )
    else:
        print("  POST /image/upload embedded vs scaled: no scaled figure in this run")
    print()


def print_usage(pairs: list[Pair]) -> None:
    print("== resources while measured (process trees, sampled from /proc every 0.2 s)")
    print(f"  {'deployment':<42}{'operation':<23}{'process':<12}{'CPU cores':>10}{'peak MiB':>10}")
    for pair in pairs:
        for role, usage in pair.usage.items():
            print(
                f"  {pair.measured.label:<42}{pair.operation:<23}{role:<12}"
                f"{usage.cores:>10.2f}{usage.peak_mib:>10.0f}"
            )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--seconds", type=float, default=10, help="length of each measurement")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each")
    parser.add_argument("--seed", type=int, default=40, help="images uploaded before the reads")
    parser.add_argument(
        "--disabled-analysers", default="text", help="IAP_DISABLED_ANALYSERS of the iap servers"
    )
    parser.add_argument("--worker-threads", type=int, default=2, help="threads of `iap worker`")
    parser.add_argument("--skip-scaled", action="store_true", help="only the embedded default")
    parser.add_argument(
        "--backlog",
        type=int,
        default=150,
        help="uploads analysed while reads are measured again (enough to outlast --seconds)",
    )
    parser.add_argument(
        "--probe-concurrency",
        type=int,
        default=2,
        help="requests in flight for the reads at rest and while analysing",
    )
    parser.add_argument(
        "--analysis-processes",
        type=int,
        default=None,
        help="IAP_ANALYSIS_PROCESSES of the embedded server (default: its own default, 1)",
    )
    args = parser.parse_args()

    services = None if args.skip_scaled else Services.from_env()
    jpegs = Jpegs()
    processes = "default (1)" if args.analysis_processes is None else args.analysis_processes
    print(
        f"machine: {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f} at the start), "
        f"Python {platform.python_version()}; one httpx client, {args.concurrency} requests in "
        f"flight, {args.seconds:g} s per measurement after {args.warmup:g} s of warm-up; "
        f"{jpegs.sizes} JPEGs (640x480); analysers off: {args.disabled_analysers or 'none'}; "
        f"embedded analysis processes: {processes}; rate limits lifted"
    )
    if services is None and not args.skip_scaled:
        print(
            "scaled deployment skipped: set IAP_TEST_POSTGRES_URL, IAP_TEST_REDIS_URL and "
            "IAP_TEST_AMQP_URL"
        )
    print()

    results: list[Pair] = []
    with tempfile.TemporaryDirectory(prefix="iap-load-") as tmp, ExitStack() as bare_stack:
        workdir = Path(tmp)
        bare = start_bare(bare_stack, workdir)
        starters: list[Callable[[ExitStack], Server]] = [
            lambda stack: start_embedded(
                stack, workdir, args.disabled_analysers, args.analysis_processes
            )
        ]
        if services is not None:
            scaled = services
            starters.append(
                lambda stack: start_scaled(
                    stack, workdir, scaled, args.disabled_analysers, args.worker_threads
                )
            )
        for start in starters:
            # One deployment at a time, stopped before the next one starts.
            with ExitStack() as stack:
                target = start(stack)
                print(f"measuring {target.label} ...", file=sys.stderr)
                results += asyncio.run(measure(target, bare, args, jpegs))

    print_table(
        "uploads: POST /image/upload; bare: POST /upload (multipart, kept in a dict)",
        [pair for pair in results if pair.operation == "uploads"],
    )
    print_table(
        "metadata: GET /image/{id}; bare: GET /item/{id} (a dict)",
        [pair for pair in results if pair.operation == "reads"],
    )
    probes = [p for p in results if p.operation in {"reads at rest", "reads while analysing"}]
    print_table(
        f"metadata with {args.probe_concurrency} in flight, at rest then while a backlog of "
        "uploads is analysed; bare: the reads above",
        probes,
    )
    for pair in probes[1::2]:
        print(f"  {pair.measured.label}: {pair.note}")
    print()
    labels = [pair.measured.label for pair in results]
    scaled_label = next((label for label in labels if label.startswith("scaled")), "")
    print_goals(results, "embedded (SQLite, files)", scaled_label, args.probe_concurrency)
    print_usage(results)
    print(
        "uploads are analysed while they are measured (in the API process when embedded, by "
        f"`iap worker` when scaled: 1 process, {args.worker_threads} threads); the reads come "
        "first, on analysed images. Everything runs on this one machine; bare figures are "
        "taken just before the ones beside them."
    )


if __name__ == "__main__":
    main()
