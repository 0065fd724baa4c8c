"""What every command module of the CLI shares: the stderr console and the progress display of a run."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True)  # logs, progress and errors; results go to stdout


@contextmanager
def progress_bar(label: str, total: int | None):
    """A progress bar with ETA on stderr; yields (update(done, total), log(message)) for a run function.

    The bar is drawn at the first update or log line, not before: a run refused while it reads its inputs prints
    its one error line and no empty bar."""
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("eta"),
               TimeRemainingColumn())
    bar = Progress(*columns, console=console)
    task = bar.add_task(label, total=total)

    def shown() -> Progress:
        if not bar.live.is_started:
            bar.start()
        return bar

    try:
        yield ((lambda done, total: shown().update(task, completed=done, total=total)),
               (lambda *args, **kwargs: shown().console.print(*args, **kwargs)))
    finally:
        if bar.live.is_started:
            bar.stop()
