"""The ``iap`` command."""

from __future__ import annotations

import signal
import sys

from iap.hugepages import restart_with_huge_pages


def main() -> None:
    """Run the ``iap`` command. Ctrl-C ends it quietly with status 130 (128 + SIGINT, as shells
    report an interrupted command), even while the commands are still loading."""
    restart_with_huge_pages(sys.argv[1:])
    try:
        # Imported here, not above: loading the commands imports the whole service, which
        # takes a moment, and a Ctrl-C meanwhile must not print a traceback.
        from iap.cli.main import app

        app()
    except KeyboardInterrupt:
        sys.exit(128 + signal.SIGINT)
