"""The request id: accepted from ``X-Request-ID`` or made up, bound to the log context of the
request, carried in the options of every broker message the request sends, and bound again in
the worker thread that processes such a message — so one id ties an upload's request line to
the log lines of its analysis.

The log context is structlog's (context variables): it follows the code into threads started
with ``anyio.to_thread`` and into coroutines handed to an event loop with
``asyncio.run_coroutine_threadsafe``, both of which run in a copy of the caller's context.
"""

from __future__ import annotations

import contextvars
import re
import uuid
from collections.abc import Mapping
from typing import Any

import dramatiq
import structlog
from dramatiq.middleware import Middleware

REQUEST_ID_HEADER = "X-Request-ID"
# The message option under which the id crosses the broker (the argument stays the job id).
MESSAGE_OPTION = "request_id"
MAX_REQUEST_ID_LENGTH = 128
# Letters, digits and the punctuation of common id formats (UUIDs, base64, trace ids): nothing
# that could break a header, a log line or a JSON document.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:+=/-]+")


def accepted_request_id(value: str | None) -> str | None:
    """The incoming id if it is safe to repeat in headers and logs, else None."""
    if value is None or len(value) > MAX_REQUEST_ID_LENGTH:
        return None
    return value if _SAFE_ID.fullmatch(value) else None


def new_request_id() -> str:
    """A fresh id for a request that brought none (or an unsafe one)."""
    return uuid.uuid4().hex


Bound = Mapping[str, contextvars.Token[Any]]


def bind_request_id(request_id: str) -> Bound:
    """Bind ``request_id`` to the log context; ``unbind`` the result to undo it."""
    return structlog.contextvars.bind_contextvars(request_id=request_id)


def unbind(bound: Bound) -> None:
    structlog.contextvars.reset_contextvars(**bound)


def current_request_id() -> str | None:
    """The request id bound to the running code's log context, if any."""
    value = structlog.contextvars.get_contextvars().get("request_id")
    return value if isinstance(value, str) else None


def message_options() -> dict[str, Any]:
    """Options to send with a broker message so that its processing logs under this request."""
    request_id = current_request_id()
    return {MESSAGE_OPTION: request_id} if request_id else {}


class MessageContext(Middleware):
    """Binds each message's request id and actor to the log context of the worker thread that
    processes it, and clears them afterwards (worker threads are reused for every message).
    Install it first, so that every other middleware's hooks log inside the context."""

    def before_process_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.clear_contextvars()
        fields: dict[str, Any] = {"actor": message.actor_name, "message_id": message.message_id}
        request_id = accepted_request_id(message.options.get(MESSAGE_OPTION))
        if request_id is not None:
            fields["request_id"] = request_id
        structlog.contextvars.bind_contextvars(**fields)

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        structlog.contextvars.clear_contextvars()

    def after_skip_message(self, broker: dramatiq.Broker, message: Any) -> None:
        structlog.contextvars.clear_contextvars()
