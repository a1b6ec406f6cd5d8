"""The progress bar every long-running command shows (rich, on stderr)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

stderr = Console(stderr=True)


class Bar:
    """A bar that appears on its first update, so a command failing before any work prints only its error."""

    def __init__(self, description: str, total: int | None) -> None:
        columns = (
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        self.progress = Progress(*columns, console=stderr)
        self.task = self.progress.add_task(description, total=total)
        self.started = False

    def _start(self) -> None:
        if not self.started:
            self.progress.start()
            self.started = True

    def advance(self, steps: int = 1) -> None:
        self._start()
        self.progress.advance(self.task, steps)

    def set(self, completed: int, total: int | None = None) -> None:
        self._start()
        self.progress.update(self.task, completed=completed, total=total)

    def describe(self, text: str) -> None:
        self.progress.update(self.task, description=text)


@contextmanager
def progress_bar(description: str, total: int | None = None) -> Iterator[Bar]:
    """A bar with count, percentage, elapsed and remaining time."""
    bar = Bar(description, total)
    try:
        yield bar
    finally:
        if bar.started:
            bar.progress.stop()
