"""Private servers for the chaos tests: PostgreSQL, Redis and RabbitMQ, each started from its
own binaries on loopback ports of its own, with its data in a temporary directory, so that a
test may stop, kill and restart it at will. The machine's shared services are never touched:
every signal goes to a process (group) started here, and every port is a fresh one.

PostgreSQL refuses to run as root: under root it runs as the ``postgres`` user, in a
directory that user owns (pytest's temporary directories are private to root).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pika
import pytest
import redis

from tests.conftest import _free_port as free_port
from tests.conftest import missing_service

# Where Debian puts the PostgreSQL binaries when they are not on PATH.
POSTGRES_DIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
# rabbitmq-server and rabbitmqctl in /usr/sbin switch to the rabbitmq user and read the
# machine's own configuration; the scripts they wrap take everything from the environment.
RABBITMQ_DIRS = ["/usr/lib/rabbitmq/bin"]


def binary(name: str, *extra_dirs: str) -> str:
    """The path of ``name``: in ``extra_dirs`` first, then on PATH. A missing binary skips
    the test, or fails it under ``IAP_TEST_REQUIRE_SERVICES=1`` (as in CI)."""
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    missing_service(f"{name} is not installed; the chaos tests start private servers from it")


def wait_until(
    ready: Any, what: str, proc: subprocess.Popen[bytes], log: Path, timeout: float
) -> None:
    """Poll ``ready()`` until it returns without raising; fail if ``proc`` dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            ready()
            return
        except Exception as exc:  # any failure means: not yet
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
                state = f"exited with {proc.returncode}" if proc.poll() is not None else "timed out"
                raise AssertionError(f"private {what} {state} ({exc}):\n{tail}") from None
            time.sleep(0.1)


class PrivateServer:
    """One server process (with its children, in a process group of its own) that a test
    starts, stops, kills and restarts; ``close`` kills whatever is left and removes its data."""

    what = "server"
    start_timeout = 60.0

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.restarts = 0

    # What each server defines.
    def command(self) -> list[str]:
        raise NotImplementedError

    def ready(self) -> None:
        raise NotImplementedError

    def spawn_options(self) -> dict[str, Any]:
        return {}

    @property
    def log(self) -> Path:
        return self.root / f"{self.what}.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        assert not self.running, f"the private {self.what} is already running"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: signals reach its children
                **self.spawn_options(),
            )
        self.starts += 1
        wait_until(self.ready, self.what, self.proc, self.log, self.start_timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> None:
        """Ask the server to shut down, and wait until it has."""
        if not self.running:
            return
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._reap_group()

    def kill(self) -> None:
        """SIGKILL the server and every process of its group."""
        if self.proc is None:
            return
        self._reap_group(signal.SIGKILL)
        self.proc.wait()

    def restart(self, sig: int = signal.SIGTERM, pause: float = 0.0) -> None:
        if sig == signal.SIGKILL:
            self.kill()
        else:
            self.stop(sig)
        time.sleep(pause)
        self.start()
        self.restarts += 1

    def _reap_group(self, sig: int = signal.SIGKILL) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self.root, ignore_errors=True)


class PrivatePostgres(PrivateServer):
    what = "postgresql"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.postgres = binary("postgres", *POSTGRES_DIRS)
        initdb = binary("initdb", *POSTGRES_DIRS)
        self.user: str | None = None
        if os.geteuid() == 0:
            self.user = "postgres"
            try:
                entry = pwd.getpwnam(self.user)
            except KeyError:
                pytest.fail("running as root, PostgreSQL needs a 'postgres' user to run as")
            os.chown(root, entry.pw_uid, entry.pw_gid)
        self.data = root / "data"
        options = ["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]
        done = subprocess.run(
            [initdb, "-D", str(self.data), *options],
            capture_output=True,
            text=True,
            **self.spawn_options(),
        )
        assert done.returncode == 0, f"initdb failed:\n{done.stdout}\n{done.stderr}"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def spawn_options(self) -> dict[str, Any]:
        return {"user": self.user, "group": self.user} if self.user else {}

    def command(self) -> list[str]:
        settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "fsync": "off",  # a test database: speed over durability across power loss
            "max_connections": "200",
            "logging_collector": "off",
        }
        args = [self.postgres, "-D", str(self.data), "-p", str(self.port)]
        for name, value in settings.items():
            args += ["-c", f"{name}={value}"]
        return args

    def ready(self) -> None:
        import asyncpg

        async def probe() -> None:
            connection = await asyncpg.connect(
                host="127.0.0.1", port=self.port, user="postgres", timeout=2
            )
            await connection.close()

        asyncio.run(probe())

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> None:
        """Fast shutdown (SIGINT): open sessions are cut off, as in an outage."""
        super().stop(sig, timeout)


class PrivateRedis(PrivateServer):
    what = "redis"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.redis_server = binary("redis-server")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            self.redis_server,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.root),
        ]

    def ready(self) -> None:
        client = redis.Redis.from_url(self.url, socket_timeout=1, socket_connect_timeout=1)
        try:
            client.ping()
        finally:
            client.close()

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)


class PrivateRabbitMQ(PrivateServer):
    """A RabbitMQ node named ``chaos-<random>@localhost`` with its own Erlang port mapper,
    configuration, cookie, data and logs: nothing of the machine's node is read or shared."""

    what = "rabbitmq"
    start_timeout = 120.0

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.server = binary("rabbitmq-server", *RABBITMQ_DIRS)
        self.epmd = binary("epmd")
        self.node = f"chaos-{secrets.token_hex(4)}@localhost"
        self.dist_port = free_port()
        self.epmd_port = free_port()
        (root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "disk_free_limit.absolute = 1MB\n"
        )
        (root / "rabbitmq-env.conf").write_text("")
        (root / "enabled_plugins").write_text("[].\n")
        self._epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        root = str(self.root)
        return env | {
            "HOME": root,  # the Erlang cookie: the node's and rabbitmqctl's, nobody else's
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": f"{root}/rabbitmq-env.conf",
            "RABBITMQ_CONFIG_FILE": f"{root}/rabbitmq.conf",
            "RABBITMQ_ADVANCED_CONFIG_FILE": f"{root}/advanced.config",
            "RABBITMQ_ENABLED_PLUGINS_FILE": f"{root}/enabled_plugins",
            "RABBITMQ_MNESIA_BASE": f"{root}/mnesia",
            "RABBITMQ_LOG_BASE": f"{root}/log",
            "RABBITMQ_PID_FILE": f"{root}/rabbitmq.pid",
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "ERL_EPMD_PORT": str(self.epmd_port),
        }

    def spawn_options(self) -> dict[str, Any]:
        return {"env": self.environment(), "cwd": self.root}

    def command(self) -> list[str]:
        return [self.server]

    def start(self) -> None:
        if self._epmd is None or self._epmd.poll() is not None:
            # A port mapper of its own, in the foreground, so that it is ours to stop.
            self._epmd = subprocess.Popen(
                [self.epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
            wait_until(self._epmd_ready, "epmd", self._epmd, self.log, 30)
        super().start()

    def _epmd_ready(self) -> None:
        import socket

        socket.create_connection(("127.0.0.1", self.epmd_port), timeout=1).close()

    def ready(self) -> None:
        params = pika.URLParameters(self.url)
        params.socket_timeout = 2
        params.connection_attempts = 1
        # pika logs every refused attempt as an error: while waiting, that is expected.
        quiet = logging.getLogger("pika")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            pika.BlockingConnection(params).close()
        finally:
            quiet.setLevel(level)

    def close(self) -> None:
        self.kill()
        if self._epmd is not None:
            self._epmd.kill()
            self._epmd.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def private_dir(what: str) -> Path:
    """A fresh directory outside pytest's (which only root may enter)."""
    return Path(tempfile.mkdtemp(prefix=f"iap-chaos-{what}-"))
