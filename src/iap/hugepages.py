"""Huge pages for the processes that run analysis passes (``iap worker`` and ``iap serve``).

A pass allocates and frees large blocks all the time: decoded pixels, their downscales, the
OCR detector's activations. Each one gets its own mapping, returned to the system when freed
(``analysis.process``), so the kernel faults its pages in anew on every pass, 4 KiB at a
time. Backed by 2 MiB transparent huge pages, the same blocks take up to 512 times fewer faults:
measured on a 2-core machine (12 MP JPEGs, every analyser, one process), a pass went from
1,000-1,030 ms to 765-835 ms, and the peak memory of the process rose by 7 MiB.

glibc asks for huge pages for its mappings when its ``glibc.malloc.hugetlb=1`` tunable is set
(glibc 2.35 and later; the kernel's transparent huge pages in ``madvise`` or ``always`` mode),
and it reads its tunables only when a process starts. So these commands start again, at once
and with the same pid (``exec``), with that tunable added to ``GLIBC_TUNABLES``; the processes
they spawn inherit it. Where it cannot apply (not Linux, not glibc) nothing happens, and a
``GLIBC_TUNABLES`` that already sets ``glibc.malloc.hugetlb`` (say, ``=0`` to opt out) is
left as it is.

Standard library only: this runs before the commands are loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

VARIABLE = "GLIBC_TUNABLES"
TUNABLE = "glibc.malloc.hugetlb"
# Set in the environment of the restarted process, so that it never restarts again (even if
# the C library dropped the tunables, as it does for a setuid program).
_RESTARTED = "_IAP_HUGE_PAGES_RESTARTED"
COMMANDS = frozenset({"worker", "serve"})
_FIRST_GLIBC = (2, 35)  # the first to know the tunable


def tunables_with_huge_pages(current: str | None) -> str | None:
    """``GLIBC_TUNABLES`` with huge pages asked for, or None if it already says whether."""
    if not current:
        return f"{TUNABLE}=1"
    names = {item.partition("=")[0].strip() for item in current.split(":")}
    if TUNABLE in names:
        return None
    return f"{current}:{TUNABLE}=1"


def c_library() -> str:
    """The C library's name and version ("glibc 2.36"), or "" where it does not say."""
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or not glibc
        return ""


def restart_needed(environ: Mapping[str, str], platform: str, libc: str) -> str | None:
    """The ``GLIBC_TUNABLES`` to start again with, or None to go on as this process is."""
    if not platform.startswith("linux") or _RESTARTED in environ:
        return None
    name, _, version = libc.partition(" ")
    try:
        major, minor = (int(part) for part in version.split(".")[:2])
    except ValueError:
        return None
    if name != "glibc" or (major, minor) < _FIRST_GLIBC:
        return None
    return tunables_with_huge_pages(environ.get(VARIABLE))


def restart_with_huge_pages(argv: list[str]) -> None:
    """Start this process again with huge pages asked for, when ``argv`` (the arguments after
    the program's name) runs a command of ``COMMANDS`` and they are not asked for yet.
    Returns only if it does not restart."""
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    if command not in COMMANDS:
        return
    tunables = restart_needed(os.environ, sys.platform, c_library())
    if tunables is None:
        return
    environ = dict(os.environ) | {VARIABLE: tunables, _RESTARTED: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, environ)  # noqa: S606 - this same command
    except OSError:
        return  # going on without huge pages costs time, not correctness
