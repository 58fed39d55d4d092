"""`iap worker` and `iap serve` start again with glibc's huge pages asked for (iap.hugepages),
and the worker processes they spawn inherit it; a GLIBC_TUNABLES that already decides is kept."""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from iap.config import Settings
from iap.hugepages import c_library, restart_needed, tunables_with_huge_pages
from tests.analysis.test_pass_processes import children_of
from tests.analysis.test_worker_processes import worker_processes
from tests.conftest import settings_for

GLIBC = "glibc 2.36"
on_glibc = pytest.mark.skipif(
    restart_needed({}, sys.platform, c_library()) is None,
    reason="huge pages are asked of glibc 2.35 or later, on Linux",
)


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        (None, "glibc.malloc.hugetlb=1"),
        ("", "glibc.malloc.hugetlb=1"),
        ("glibc.malloc.arena_max=2", "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"),
        ("glibc.malloc.hugetlb=0", None),
        ("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=2", None),
    ],
)
def test_the_tunable_is_added_unless_one_is_set(current: str | None, expected: str | None) -> None:
    assert tunables_with_huge_pages(current) == expected


@pytest.mark.parametrize(
    ("environ", "platform", "libc", "expected"),
    [
        ({}, "linux", GLIBC, "glibc.malloc.hugetlb=1"),
        ({}, "linux", "glibc 2.35", "glibc.malloc.hugetlb=1"),
        ({}, "linux", "glibc 2.34", None),  # does not know the tunable
        ({}, "linux", "", None),  # musl
        ({}, "darwin", "", None),
        ({"_IAP_HUGE_PAGES_RESTARTED": "1"}, "linux", GLIBC, None),  # never twice
    ],
)
def test_only_a_glibc_that_knows_the_tunable_restarts_once(
    environ: dict[str, str], platform: str, libc: str, expected: str | None
) -> None:
    assert restart_needed(environ, platform, libc) == expected


@pytest.fixture
def worker_settings(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Settings:
    return settings_for(
        "scaled",
        request,
        tmp_path,
        broker_url=redis_url,
        queue_name=f"iap-test-{secrets.token_hex(4)}",
        worker_threads=1,
    )


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.decode().partition("=")[::2] for item in raw.split(b"\0") if item)


@contextmanager
def _worker(
    settings: Settings, tmp_path: Path, *args: str, consuming: int = 1, **variables: str
) -> Iterator[int]:
    """The pid of a running ``iap worker``, once ``consuming`` of its processes consume."""
    with worker_processes(settings, tmp_path) as start:
        proc = start(*args, **variables)
        log = tmp_path / "worker-0.log"
        deadline = time.monotonic() + 60
        while log.read_text().count("worker consuming") < consuming:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield proc.pid


@on_glibc
def test_a_worker_runs_with_huge_pages_in_the_same_process(
    worker_settings: Settings, tmp_path: Path
) -> None:
    with _worker(worker_settings, tmp_path) as pid:
        # The pid is the one started: the command restarted in place (exec), not in a child.
        assert _environ(pid)["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
        assert children_of(pid) == []


@on_glibc
def test_the_processes_of_a_worker_inherit_huge_pages(
    worker_settings: Settings, tmp_path: Path
) -> None:
    with _worker(worker_settings, tmp_path, "--processes", "2", consuming=2) as pid:
        children = children_of(pid)
        assert len(children) >= 2
        for child in children:
            assert "glibc.malloc.hugetlb=1" in _environ(child)["GLIBC_TUNABLES"]


@on_glibc
def test_a_tunable_already_set_is_kept(worker_settings: Settings, tmp_path: Path) -> None:
    kept = "glibc.malloc.arena_max=4:glibc.malloc.hugetlb=0"
    with _worker(worker_settings, tmp_path, GLIBC_TUNABLES=kept) as pid:
        environ = _environ(pid)
        # Not started again (glibc itself may drop from the variable what it has applied).
        assert "_IAP_HUGE_PAGES_RESTARTED" not in environ
        assert "hugetlb=1" not in environ.get("GLIBC_TUNABLES", "")
