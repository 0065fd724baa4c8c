"""What every command module of the CLI shares: the stderr console (the progress display is cli/display.py)."""

from __future__ import annotations

from rich.console import Console

console = Console(stderr=True)  # logs, progress and errors; results go to stdout
