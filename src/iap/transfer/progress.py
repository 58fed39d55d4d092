"""Progress of a transfer: stages with a size and a unit, reported to whoever watches.

The transfer functions only know the small ``TransferProgress`` protocol; the CLI hands them
Rich progress bars on stderr, tests and scripts the silent ``NO_PROGRESS``.
"""

from __future__ import annotations

from types import TracebackType
from typing import Literal, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

Unit = Literal["rows", "files", "bytes"]


class TransferProgress(Protocol):
    def stage(self, description: str, total: int | None, unit: Unit) -> None:
        """A new stage begins; ``total`` is None when its size is not known in advance."""

    def advance(self, amount: int = 1) -> None:
        """The current stage moved on by ``amount`` of its unit."""


class _Silent:
    def stage(self, description: str, total: int | None, unit: Unit) -> None:
        return None

    def advance(self, amount: int = 1) -> None:
        return None


NO_PROGRESS: TransferProgress = _Silent()


class _AmountColumn(ProgressColumn):
    """Bytes as sizes (``1.2/3.4 MB``), rows and files as counts (``120/300 rows``)."""

    def __init__(self) -> None:
        super().__init__()
        self._bytes = DownloadColumn()
        self._count = MofNCompleteColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "rows")
        if unit == "bytes":
            return self._bytes.render(task)
        counted = (
            self._count.render(task) if task.total is not None else Text(f"{task.completed:.0f}")
        )
        return counted + Text(f" {unit}")


class RichProgress:
    """One Rich bar per stage, on ``console`` (stderr in the CLI); a context manager."""

    def __init__(self, console: Console, *, enabled: bool = True) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            _AmountColumn(),
            TimeRemainingColumn(),
            console=console,
            redirect_stdout=False,
            redirect_stderr=False,
            disable=not enabled,
        )
        self._task: TaskID | None = None

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if exc is None:
            self._finish_current()
        self._progress.stop()

    def stage(self, description: str, total: int | None, unit: Unit) -> None:
        self._finish_current()
        self._task = self._progress.add_task(description, total=total, unit=unit)

    def advance(self, amount: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)

    def _finish_current(self) -> None:
        # A stage of unknown size is complete when the next one starts: show it full.
        for task in self._progress.tasks:
            if task.id == self._task:
                self._progress.update(task.id, total=task.completed)
