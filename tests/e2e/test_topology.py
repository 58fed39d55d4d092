"""The scaled deployment as local processes, driven only through nginx.

On 127.0.0.1: Debian's nginx with the deployment's own HTTPS site (``deploy/nginx/``) in front
of two ``iap serve`` processes, two ``iap worker`` processes, this machine's PostgreSQL (a fresh
database, migrated by ``iap migrate`` as the release step), Redis (a fresh key prefix) and
RabbitMQ (fresh queues), and moto's S3 server (a fresh bucket, made by
``deploy/create_bucket.py``). That is compose.yaml's topology without the containers.

The tests prove what the deployment promises: the API sees each client's own address and
scheme through the proxy; uploads from several users are all analysed; each user's event
stream carries that user's events and nobody else's, whichever API process serves it; and
killing an API process and a worker in the middle of the work loses no upload that was
acknowledged and no job.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
import redis
from PIL import Image

from iap.auth.cookies import CSRF_COOKIE
from iap.config import Settings
from tests.conftest import _free_port, _require, delete_queues
from tests.e2e.nginx import (
    REPO,
    Certificate,
    client_max_body_size,
    main_config,
    render_site,
    require_nginx,
    self_signed_certificate,
)
from tests.factories import PASSWORD, image_bytes

# The project's own entry point, next to the interpreter running the tests (the venv's bin).
IAP = Path(sys.executable).with_name("iap")
CREATE_BUCKET = REPO / "deploy" / "create_bucket.py"
START_TIMEOUT = 120.0
ANALYSIS_TIMEOUT = 180.0
# Logins allowed per address and user name: small, so the address test can exhaust it.
LOGIN_LIMIT = 3
# What nginx answers when the API process behind it died with the request.
RETRYABLE = {502, 503, 504}


class Process:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            # A session of its own: stop() and kill() reach every process it starts (nginx's
            # workers), and a Ctrl-C in the terminal reaches only pytest.
            self.popen = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, signum: int) -> None:
        assert self.popen is not None
        os.killpg(self.popen.pid, signum)

    def kill(self) -> None:
        """SIGKILL, as a crash or the kernel's OOM killer would: no clean-up runs."""
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            self.signal(signal.SIGKILL)
        self.popen.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it has not exited after 30 s."""
        if self.popen is None:
            return
        for signum, grace in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
            try:
                self.signal(signum)
            except ProcessLookupError:
                break  # the whole group is gone
            try:
                self.popen.wait(timeout=grace)
                # The leader is gone; make sure nothing it started outlives it.
                with contextlib.suppress(ProcessLookupError):
                    self.signal(signal.SIGKILL)
                break
            except subprocess.TimeoutExpired:
                continue

    def tail(self, lines: int = 25) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return f"--- last lines of {self.name} ({self.log}) ---\n" + "\n".join(
            text.splitlines()[-lines:]
        )


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, logs: Callable[[], str] = str
) -> None:
    """Poll ``condition`` until true; fail with ``what`` (and ``logs()``) after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} (waited {timeout:.0f} s)\n{logs()}")
        time.sleep(0.1)


@dataclass
class User:
    username: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Topology:
    url: str  # https, through nginx: the only way the tests talk to iap
    http_url: str  # plain HTTP on nginx, which only redirects to HTTPS
    certificate: Certificate
    folder: Path
    nginx: Process
    apis: list[Process]
    api_ports: list[int]
    workers: list[Process]

    def tls(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.certificate.cert))

    def client(self, local_address: str | None = None, timeout: float = 60) -> httpx.Client:
        """An HTTPS client of nginx; ``local_address`` picks the loopback address it calls
        from, so that clients can differ by address on one machine."""
        transport = httpx.HTTPTransport(verify=self.tls(), local_address=local_address)
        return httpx.Client(base_url=self.url, transport=transport, timeout=timeout)

    def logs(self) -> str:
        return "\n".join(p.tail() for p in [self.nginx, *self.apis, *self.workers])

    def api_healthy(self, port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def ensure_running(self) -> None:
        """Restart whatever an earlier test killed, and wait until the APIs answer."""
        for process in [*self.apis, *self.workers]:
            if not process.alive:
                process.start()
        for port, api in zip(self.api_ports, self.apis, strict=True):

            def answers(port: int = port, api: Process = api) -> bool:
                assert api.alive, api.tail()
                return self.api_healthy(port)

            wait_until(answers, START_TIMEOUT, f"{api.name} did not start", api.tail)

    def ensure_balanced(self) -> None:
        """Wait until nginx sends requests to every API process again (it leaves one that
        failed alone for a while)."""
        names = {api.name for api in self.apis}

        def all_serve() -> bool:
            probes = [f"/healthz?probe={secrets.token_hex(4)}" for _ in range(2 * len(names))]
            with self.client(timeout=10) as http:
                for probe in probes:
                    assert http.get(probe).status_code == 200
            served = self.served_by()
            return {served.get(uri) for uri in probes} >= names

        wait_until(all_serve, 60, "nginx does not use every API process", self.logs)

    def served_by(self) -> dict[str, str]:
        """nginx's access log: which API process served each request, by request URI (the
        last upstream tried, when nginx had to try more than one)."""
        names = {
            f"127.0.0.1:{port}": api.name
            for port, api in zip(self.api_ports, self.apis, strict=True)
        }
        served: dict[str, str] = {}
        for line in (self.folder / "nginx" / "access.log").read_text().splitlines():
            _method, uri, _status, upstreams = line.split(" ", 3)
            served[uri] = names.get(upstreams.split(", ")[-1], upstreams)
        return served


def _admin_sql(admin_url: str, sql: str) -> None:
    """Run one statement (CREATE/DROP DATABASE) on the test server's admin database."""
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def _delete_redis_keys(redis_url: str, prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            client.delete(key)
    finally:
        client.close()


def _run_step(argv: list[str], env: dict[str, str], what: str) -> None:
    """A one-shot deployment step (migration, bucket): it must succeed."""
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"{what} failed:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def topology(
    s3_endpoint: str, redis_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Topology]:
    """Start the whole topology; stop all of it at the end, whatever happened."""
    nginx_binary = require_nginx()
    admin_url = _require("IAP_TEST_POSTGRES_URL").replace("postgresql+asyncpg://", "postgresql://")
    run_id = secrets.token_hex(4)
    folder = tmp_path_factory.mktemp("topology")
    database = f"iap_topology_{run_id}"
    queue = f"iap-topology-{run_id}"
    prefix = f"iap-topology-{run_id}:"
    env = {k: v for k, v in os.environ.items() if not k.startswith("IAP_")}
    iap_env = {
        # What compose.yaml gives every iap container, pointed at this machine's services.
        "IAP_DATABASE_URL": urlunsplit(urlsplit(admin_url)._replace(path=f"/{database}")),
        "IAP_STORAGE_URL": f"s3://iap-topology-{run_id}/originals",
        "IAP_S3_ENDPOINT_URL": s3_endpoint,
        "IAP_S3_ACCESS_KEY_ID": "testing",
        "IAP_S3_SECRET_ACCESS_KEY": "testing",
        "IAP_REDIS_URL": redis_url,
        "IAP_REDIS_PREFIX": prefix,
        "IAP_BROKER_URL": amqp_url,
        "IAP_QUEUE_NAME": queue,
        "IAP_SECRET_KEY": secrets.token_urlsafe(48),
        "IAP_DATA_DIR": str(folder / "data"),
        # nginx reaches the APIs from 127.0.0.1; the test clients call from other addresses.
        "IAP_FORWARDED_ALLOW_IPS": "127.0.0.1",
        # Test pace: no OCR (a second an image), one job at a time per worker, quick retries,
        # and a reconciler that re-sends within seconds a job whose enqueue died with its API.
        "IAP_DISABLED_ANALYSERS": "text",
        "IAP_WORKER_THREADS": "1",
        "IAP_ANALYSIS_MIN_BACKOFF_MS": "100",
        "IAP_ANALYSIS_MAX_BACKOFF_MS": "500",
        "IAP_RECONCILE_INTERVAL_SECONDS": "2",
        "IAP_RECONCILE_AFTER_SECONDS": "20",
        "IAP_LOGIN_RATE_LIMIT": f"{LOGIN_LIMIT}/3600",
    }
    unknown = {n for n in iap_env if n.removeprefix("IAP_").lower() not in Settings.model_fields}
    assert not unknown, f"not iap settings: {unknown}"
    env |= iap_env | {"PYTHONUNBUFFERED": "1"}

    with ExitStack() as cleanup:
        # Undone in reverse order, each step even if another fails: processes, then the
        # broker's queues and Redis keys, then the database.
        _admin_sql(admin_url, f'CREATE DATABASE "{database}"')
        cleanup.callback(
            _admin_sql, admin_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'
        )
        cleanup.callback(_delete_redis_keys, redis_url, prefix)
        cleanup.callback(delete_queues, amqp_url, queue, f"{queue}-webhooks")

        _run_step([str(IAP), "migrate"], env, "iap migrate")
        _run_step([sys.executable, str(CREATE_BUCKET)], env, "deploy/create_bucket.py")

        api_ports = [_free_port(), _free_port()]
        apis = [
            Process(f"api-{i}", [str(IAP), "serve", "--port", str(p)], env, folder / f"api-{i}.log")
            for i, p in enumerate(api_ports)
        ]
        workers = [
            Process(f"worker-{i}", [str(IAP), "worker"], env, folder / f"worker-{i}.log")
            for i in range(2)
        ]
        for process in [*apis, *workers]:
            cleanup.callback(process.stop)
            process.start()

        certificate = self_signed_certificate(folder / "certs")
        http_port, https_port = _free_port(), _free_port()
        site = render_site(
            "iap-tls.conf",
            folder / "nginx",
            upstreams=[f"127.0.0.1:{port}" for port in api_ports],
            http_port=http_port,
            https_port=https_port,
            certificate=certificate,
        )
        config = main_config(folder / "nginx", site)
        nginx = Process(
            "nginx",
            [str(nginx_binary), "-p", str(config.parent), "-c", str(config), "-e", "stderr"],
            env,
            folder / "nginx.log",
        )
        topology = Topology(
            url=f"https://127.0.0.1:{https_port}",
            http_url=f"http://127.0.0.1:{http_port}",
            certificate=certificate,
            folder=folder,
            nginx=nginx,
            apis=apis,
            api_ports=api_ports,
            workers=workers,
        )
        # Like compose: nginx starts once every API replica answers /healthz.
        topology.ensure_running()
        cleanup.callback(nginx.stop)
        nginx.start()

        def nginx_answers() -> bool:
            assert nginx.alive, nginx.tail()
            try:
                with topology.client(timeout=5) as http:
                    return http.get("/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(nginx_answers, START_TIMEOUT, "nginx did not answer", nginx.tail)
        yield topology


@pytest.fixture
def iap(topology: Topology) -> Topology:
    """The topology with every process running (an earlier test may have killed some)."""
    topology.ensure_running()
    topology.ensure_balanced()
    return topology


def new_user(topology: Topology) -> User:
    username = f"user_{secrets.token_hex(5)}"
    with topology.client() as http:
        signup = http.post(
            "/signup",
            json={"username": username, "email": f"{username}@example.com", "password": PASSWORD},
        )
        assert signup.status_code == 201, signup.text
        login = http.post("/login", data={"username": username, "password": PASSWORD})
        assert login.status_code == 200, login.text
    return User(username, login.json()["access_token"])


class EventStream:
    """One ``GET /events`` through nginx, read in a background thread. ``label`` goes into
    the query string, so that nginx's access log tells which API process served it."""

    def __init__(self, topology: Topology, user: User, label: str) -> None:
        self.label = label
        self.uri = f"/events?stream={label}"
        self.events: list[dict[str, Any]] = []
        self.error: Exception | None = None
        self._lock = threading.Lock()
        self._connected = threading.Event()
        self._closing = threading.Event()
        self._client = topology.client(timeout=30)
        self._response: httpx.Response | None = None
        self._thread = threading.Thread(target=self._read, args=(user,), daemon=True)
        self._thread.start()
        assert self._connected.wait(30), f"stream {label} did not open: {self.error!r}"

    def _read(self, user: User) -> None:
        try:
            request = self._client.build_request(
                "GET", self.uri, headers=user.headers, timeout=httpx.Timeout(30, read=None)
            )
            self._response = self._client.send(request, stream=True)
            assert self._response.status_code == 200, self._response.status_code
            assert self._response.headers["content-type"].startswith("text/event-stream")
            for line in self._response.iter_lines():
                if line.startswith(": connected"):
                    self._connected.set()
                elif line.startswith("data: "):
                    with self._lock:
                        self.events.append(json.loads(line.removeprefix("data: ")))
        except Exception as exc:  # reported by the test, not lost in a thread
            if not self._closing.is_set():
                self.error = exc
            self._connected.set()

    def seen(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.events)

    def close(self) -> None:
        """Hang up. The reader is blocked reading the socket: shutting the socket down wakes
        it (closing the response from this thread could wait on the reader's locks)."""
        self._closing.set()
        if self._response is not None:
            stream = self._response.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):  # already closed
                    sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), f"stream {self.label} did not stop"
        self._client.close()


def noise_png(side: int) -> bytes:
    """Incompressible pixels: each analysis takes long enough to be caught in the middle."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        out, "PNG", compress_level=1
    )
    return out.getvalue()


def wait_for_statuses(
    topology: Topology, user: User, image_ids: list[str], want: str = "succeeded"
) -> dict[str, dict[str, Any]]:
    """Poll each image through nginx until its analysis is ``want``; fail on any other end."""
    final: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + ANALYSIS_TIMEOUT
    with topology.client() as http:
        for image_id in image_ids:
            while True:
                image = http.get(f"/image/{image_id}", headers=user.headers).json()
                status = image["analysis"]["status"]
                assert status != "failed", f"analysis of {image_id} failed: {image['analysis']}"
                if status == want:
                    final[image_id] = image
                    break
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"analysis of {image_id} still {image['analysis']} after "
                        f"{ANALYSIS_TIMEOUT:.0f} s\n{topology.logs()}"
                    )
                time.sleep(0.2)
    return final


# --- the proxy ------------------------------------------------------------------------------


def test_api_sees_https_through_nginx(iap: Topology) -> None:
    with iap.client() as http:
        page = http.get("/sign-in")
    assert page.status_code == 200, page.text
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=")
    assert "secure" in cookie.lower(), f"no Secure flag over HTTPS: {cookie}"
    # The same page from an API process directly, over plain HTTP: no Secure flag. So the flag
    # above came from nginx's X-Forwarded-Proto, not from a fixed setting.
    direct = httpx.get(f"http://127.0.0.1:{iap.api_ports[0]}/sign-in", timeout=30)
    assert "secure" not in direct.headers["set-cookie"].lower()
    # Plain HTTP on nginx only redirects.
    redirect = httpx.get(f"{iap.http_url}/image/all", timeout=30)
    assert redirect.status_code == 301
    assert redirect.headers["location"].startswith("https://")


def test_api_sees_each_clients_own_address_through_nginx(iap: Topology) -> None:
    """Login attempts are limited per client address: a client that used up its attempts is
    refused, another address is not, and a forged X-Forwarded-For does not help."""
    username = f"probe_{secrets.token_hex(5)}"
    form = {"username": username, "password": "not the password"}

    def attempt(address: str, headers: dict[str, str] | None = None) -> int:
        with iap.client(local_address=address) as http:
            return http.post("/login", data=form, headers=headers).status_code

    assert [attempt("127.0.0.3") for _ in range(LOGIN_LIMIT)] == [401] * LOGIN_LIMIT
    assert attempt("127.0.0.3") == 429
    assert attempt("127.0.0.4") == 401  # another client: its own allowance
    # nginx appends the real address; the API takes the right-most untrusted one.
    assert attempt("127.0.0.3", {"X-Forwarded-For": "127.0.0.5"}) == 429


def test_a_body_over_the_limit_gets_the_apis_error_shape_from_nginx(iap: Topology) -> None:
    """nginx refuses a body over client_max_body_size from its Content-Length alone, with the
    same JSON error body as the API."""
    limit = client_max_body_size()
    port = urlsplit(iap.url).port
    assert port is not None
    request = (
        "POST /image/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        "Content-Type: multipart/form-data; boundary=x\r\n"
        f"Content-Length: {limit + 1}\r\nConnection: close\r\n\r\n"
    ).encode()
    with (
        socket.create_connection(("127.0.0.1", port), timeout=30) as raw,
        iap.tls().wrap_socket(raw, server_hostname="127.0.0.1") as conn,
    ):
        conn.sendall(request)
        # Read the answer, not to the end of the connection: nginx keeps it open a while for
        # the body it refused (lingering close).
        reader = conn.makefile("rb")
        status = reader.readline()
        headers = dict(
            line.decode().strip().lower().split(": ", 1) for line in iter(reader.readline, b"\r\n")
        )
        body = reader.read(int(headers["content-length"]))
    assert status.startswith(b"HTTP/1.1 413"), status
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["code"] == "file_too_large"


# --- uploads, analysis and events -----------------------------------------------------------


def test_uploads_from_several_users_are_analysed_and_each_stream_gets_only_its_users_events(
    iap: Topology,
) -> None:
    users = [new_user(iap) for _ in range(4)]
    # Two streams per user, opened one after the other with nothing in between: nginx's round
    # robin puts them on different API processes (checked below from its access log).
    streams = {
        user.username: [EventStream(iap, user, f"{user.username}-{n}") for n in range(2)]
        for user in users
    }
    try:
        uploaded: dict[str, list[str]] = {}

        def upload_all(index: int, user: User) -> list[str]:
            ids = []
            with iap.client() as http:
                for n in range(4):
                    data = image_bytes(color=(40 * index, 30 * n, 200))
                    response = http.post(
                        "/image/upload",
                        headers=user.headers,
                        files={"file": (f"u{index}-{n}.jpg", data, "image/jpeg")},
                    )
                    assert response.status_code == 201, response.text
                    ids.append(response.json()["id"])
            return ids

        with ThreadPoolExecutor(max_workers=len(users)) as pool:
            futures = {u.username: pool.submit(upload_all, i, u) for i, u in enumerate(users)}
            uploaded = {name: future.result() for name, future in futures.items()}
        for user in users:
            wait_for_statuses(iap, user, uploaded[user.username])

        for user in users:
            mine = set(uploaded[user.username])
            for stream in streams[user.username]:

                def has_all(stream: EventStream = stream, mine: set[str] = mine) -> bool:
                    seen = stream.seen()
                    done = {e["image_id"] for e in seen if e["type"] == "analysis.succeeded"}
                    return mine <= done or stream.error is not None

                wait_until(has_all, 60, f"stream {stream.label} missed events", iap.logs)
                assert stream.error is None, f"stream {stream.label}: {stream.error!r}"
                strangers = [e for e in stream.seen() if e["image_id"] not in mine]
                assert not strangers, f"{stream.label} got another user's events: {strangers}"
    finally:
        for user_streams in streams.values():
            for stream in user_streams:
                stream.close()

    # Which API process served each stream: nginx logs a request when it ends.
    every_uri = [s.uri for user_streams in streams.values() for s in user_streams]
    wait_until(
        lambda: set(every_uri) <= set(iap.served_by()),
        30,
        "nginx did not log the closed event streams",
        iap.nginx.tail,
    )
    served = iap.served_by()
    for name, user_streams in streams.items():
        processes = {served[s.uri] for s in user_streams}
        assert processes == {api.name for api in iap.apis}, (
            f"{name}'s streams were not served by both API processes: {processes}"
        )


# --- failures -------------------------------------------------------------------------------


@dataclass
class Uploader:
    """Uploads one user's files through nginx as a careful client does: a 502/503/504 or a
    dropped connection (the API process died under the request) is tried again."""

    topology: Topology
    user: User
    files: list[bytes]
    acknowledged: dict[str, bytes] = field(default_factory=dict)  # image id -> bytes sent
    refused: list[str] = field(default_factory=list)
    retried: int = 0

    def run(self) -> None:
        with self.topology.client() as http:
            for n, data in enumerate(self.files):
                for _attempt in range(20):
                    try:
                        response = http.post(
                            "/image/upload",
                            headers=self.user.headers,
                            files={"file": (f"noise{n}.png", data, "image/png")},
                        )
                    except httpx.TransportError:
                        self.retried += 1
                        time.sleep(0.2)
                        continue
                    if response.status_code in RETRYABLE:
                        self.retried += 1
                        time.sleep(0.2)
                        continue
                    if response.status_code == 201:
                        self.acknowledged[response.json()["id"]] = data
                    else:
                        self.refused.append(f"{response.status_code} {response.text}")
                    break
                else:
                    self.refused.append(f"file {n}: no answer after 20 attempts")


def running_jobs(topology: Topology, users: list[User]) -> set[str]:
    """Images whose analysis is running right now, read from the database through the API."""
    running: set[str] = set()
    with topology.client() as http:
        for user in users:
            page = http.get(
                "/image/all", params={"status": "running", "limit": 100}, headers=user.headers
            )
            assert page.status_code == 200, page.text
            running |= {image["id"] for image in page.json()["data"]}
    return running


def freeze_workers_mid_job(topology: Topology, users: list[User]) -> set[str]:
    """Stop (SIGSTOP) both workers at a moment when each is in the middle of its own job, and
    return those two jobs' images. Each worker runs one job at a time, so two running jobs
    while both are frozen means that each worker holds one of them."""
    deadline = time.monotonic() + ANALYSIS_TIMEOUT
    while time.monotonic() < deadline:
        if len(running_jobs(topology, users)) == 2:
            for worker in topology.workers:
                worker.signal(signal.SIGSTOP)
            held = running_jobs(topology, users)
            if len(held) == 2:
                return held
            for worker in topology.workers:  # one had just finished: try again
                worker.signal(signal.SIGCONT)
        time.sleep(0.05)
    pytest.fail(f"never saw both workers busy at once\n{topology.logs()}")


def test_killing_an_api_process_and_a_worker_mid_run_loses_no_upload_and_no_job(
    iap: Topology,
) -> None:
    users = [new_user(iap) for _ in range(3)]
    uploaders = [Uploader(iap, user, [noise_png(700) for _ in range(4)]) for user in users]
    threads = [threading.Thread(target=u.run, daemon=True) for u in uploaders]
    for thread in threads:
        thread.start()
    try:
        # Mid-run: some uploads are acknowledged, others are still on their way.
        wait_until(
            lambda: sum(len(u.acknowledged) for u in uploaders) >= 3,
            START_TIMEOUT,
            "uploads did not start",
            iap.logs,
        )
        iap.apis[0].kill()

        held = freeze_workers_mid_job(iap, users)
        iap.workers[0].kill()
        iap.workers[1].signal(signal.SIGCONT)
    finally:
        for worker in iap.workers:
            if worker.alive:
                worker.signal(signal.SIGCONT)
        for thread in threads:
            thread.join(timeout=ANALYSIS_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "an uploader never finished"
    assert iap.apis[0].popen is not None
    assert iap.apis[0].popen.returncode == -signal.SIGKILL
    assert iap.apis[1].alive, iap.apis[1].tail()
    assert iap.workers[1].alive, iap.workers[1].tail()

    for uploader in uploaders:
        assert not uploader.refused, uploader.refused
        assert len(uploader.acknowledged) == len(uploader.files)

    attempts: dict[str, int] = {}
    with iap.client() as http:
        for uploader in uploaders:
            user = uploader.user
            listing = http.get("/image/all", params={"limit": 100}, headers=user.headers).json()
            present = [image["id"] for image in listing["data"]]
            # Every acknowledged upload is there. A request cut off with its API process may
            # have been stored before the answer was lost: that image is there too, and its
            # job must not be lost either, so every listed image is waited for.
            missing = set(uploader.acknowledged) - set(present)
            assert not missing, f"acknowledged uploads lost: {missing}"
            final = wait_for_statuses(iap, user, present)
            attempts |= {image_id: img["analysis"]["attempts"] for image_id, img in final.items()}
            for image_id, sent in uploader.acknowledged.items():
                stored = http.get(f"/image/download/{image_id}", headers=user.headers)
                assert stored.status_code == 200, stored.text
                assert hashlib.sha256(stored.content).digest() == hashlib.sha256(sent).digest()

    # The killed worker's job was taken over and finished: its attempt counted twice.
    assert max(attempts[image_id] for image_id in held) >= 2, {i: attempts[i] for i in held}
