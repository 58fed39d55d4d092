"""Whether this API process is serving requests: those in flight, and how recently the last
one ended. The embedded deployment's analysis asks it as its passes go, to leave the cores
to requests while there are any (``analysis.pass_pool``)."""

from __future__ import annotations

import threading
import time

# Requests that stay open for as long as a client listens: not work in flight.
LONG_LIVED_PATHS = frozenset({"/events"})
# A request that ended this recently counts as in flight: a client with requests in a row
# leaves only short gaps between them.
QUIET_SECONDS = 0.02

_lock = threading.Lock()
_in_flight = 0
_last_ended = float("-inf")


def request_started() -> None:
    global _in_flight
    with _lock:
        _in_flight += 1


def request_ended() -> None:
    global _in_flight, _last_ended
    with _lock:
        _in_flight -= 1
        _last_ended = time.monotonic()


def serving() -> bool:
    """True while a request is in flight here, or one ended within ``QUIET_SECONDS``."""
    with _lock:
        return _in_flight > 0 or time.monotonic() - _last_ended < QUIET_SECONDS
