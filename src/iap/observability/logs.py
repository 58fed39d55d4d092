"""One log format for every logger of a process: iap's own, uvicorn's, Dramatiq's, pika's.

iap logs through the standard library (``logging.getLogger(__name__)``); structlog only renders
the records, adding what the log context holds (the request id, the job's actor) and any
``extra=`` fields. ``IAP_LOG_FORMAT=json`` writes one JSON object per line (for a log
collector); ``console`` (the default) writes aligned, human-readable lines.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

LogFormat = Literal["console", "json"]

# Marks the handler installed here, so that configuring again replaces it and leaves any other
# handler (a test runner's, an embedding application's) alone.
_HANDLER_NAME = "iap"


def _add_pid(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """Tell apart the processes of ``iap worker --processes N`` or ``iap serve --workers N``."""
    event_dict["pid"] = os.getpid()
    return event_dict


def _drop_colour_copies(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    """uvicorn passes each message a second time, with terminal colours, as an extra field."""
    event_dict.pop("color_message", None)
    return event_dict


def _processors(log_format: LogFormat) -> list[Processor]:
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        _drop_colour_copies,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _add_pid,
    ]
    if log_format == "json":
        # A traceback becomes one string field: the record stays one line.
        shared.append(structlog.processors.format_exc_info)
    return shared


def make_formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter every record of the process goes through."""
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if log_format == "json"
        # Plain tracebacks: the fancy ones print local variables, and those hold passwords.
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_processors(log_format),
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )


_warnings = logging.getLogger("py.warnings")


def _log_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` as a log record: one line in the log's format (the default
    prints the warning and its source line raw on stderr, which breaks a JSON log)."""
    extra: dict[str, Any] = {"category": category.__name__, "source": f"{filename}:{lineno}"}
    _warnings.warning("%s: %s", category.__name__, message, extra=extra)


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Send every record at ``level`` or above to stderr in ``log_format``. Safe to call again
    (each server process of ``iap serve --workers N`` calls it for itself)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Libraries' warnings (Pillow's about damaged files, say) become records like any other.
    warnings.showwarning = _log_warning
    # Chatter that would drown iap's own lines: pika's every connection step, the plugins
    # Alembic sets up each time it runs, and libvips' notes on every resize.
    for name in ("pika", "alembic.runtime.plugins", "pyvips"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
