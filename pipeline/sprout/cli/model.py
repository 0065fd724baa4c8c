"""`sprout model prepare`: convert the embedded model once, ahead of the first run."""

from __future__ import annotations

import typer

from sprout.cli.shared import console


def model_prepare() -> None:
    """Convert the embedded GGUF model to a safetensors folder once (later loads take ~0.1 s)."""
    from sprout.backends.model_store import prepare_embedded

    path = prepare_embedded(log=lambda message: console.print(message))
    print(path)


def register(app: typer.Typer) -> None:
    model = typer.Typer(no_args_is_help=True, help="Manage the embedded model.")
    model.command("prepare")(model_prepare)
    app.add_typer(model, name="model")
