"""The `sprout` command: one typer app, its command modules, and the one place a `UserError` becomes a message.

Commands live in modules by concept (generate, own_data, datasets, reports, seeds, model), each with a
`register(app)`. Other packages add commands through the `sprout.commands` entry-point group: an entry is a
`register(app)` function. The trainer's `train`, `eval`, `merge` and `chat` come in that way, so the pipeline never
imports the trainer.

A command reports a problem the user can fix by raising `UserError`; the app prints its message (and details) on
stderr and exits with its code (2), without a traceback. Nothing else in the CLI catches it.
"""

from __future__ import annotations

import logging
from importlib.metadata import entry_points
from typing import Annotated

import typer
from rich.logging import RichHandler
from rich.markup import escape
from typer.core import TyperGroup

from sprout.cli import datasets, generate, model, own_data, reports, review, seeds
from sprout.cli.shared import console
from sprout.core.errors import UserError

COMMAND_GROUP = "sprout.commands"
log = logging.getLogger(__name__)


def refuse(error: UserError) -> None:
    """The one handler: the message, its details, and the exit code; no traceback."""
    # escape: messages quote config and install commands with brackets (`sprout[vllm]`) that rich reads as markup
    console.print(f"[bold red]error:[/] {escape(error.message)}", highlight=False, soft_wrap=True)
    for detail in error.details:
        console.print(f"  {detail}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(error.exit_code)


class Commands(TyperGroup):
    """The top-level command group: every command, sub-command and registered provider runs inside its `invoke`,
    so this is where a `UserError` from any of them is turned into its message and exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as error:
            refuse(error)


app = typer.Typer(cls=Commands, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Grow a seed set into an instruction-tuning dataset, filter it, and fine-tune on it.")


@app.callback()
def setup(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show debug logs.")] = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=console, show_path=False)])
    for noisy in ("httpx", "urllib3", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def register_providers(target: typer.Typer) -> list[str]:
    """Add the commands of every `sprout.commands` entry point; returns the entries that loaded. A provider that
    fails to load is reported on stderr and skipped: `sprout data` still runs when the trainer cannot import."""
    loaded, seen = [], set()
    for entry in entry_points(group=COMMAND_GROUP):
        if entry.value in seen:  # one distribution found twice on the path (a venv over another): register once
            continue
        seen.add(entry.value)
        try:
            entry.load()(target)
        except Exception as exc:  # noqa: BLE001 - a broken provider must not take the pipeline's commands with it
            log.warning("sprout: the %r commands (%s) are unavailable: %s: %s", entry.name, entry.value,
                        type(exc).__name__, exc)
            continue
        loaded.append(entry.value)
    return loaded


# `sprout --help` lists commands in this order (the flow of the product), then the groups: seeds, model, templates.
for module in (seeds, model, generate, own_data, datasets, reports, review):
    module.register(app)
register_providers(app)


def main(prog_name: str | None = None) -> None:
    """The console script `sprout` and `python -m sprout`."""
    app(prog_name=prog_name)
