"""`sprout model prepare`: convert the embedded model once, ahead of the first run."""

from __future__ import annotations

import typer

from sprout.cli.shared import console


def model_prepare() -> None:
    """Convert the embedded GGUF model once: to a safetensors folder (transformers, training; later loads take
    ~0.1 s) and, where llama-cpp-python is installed, to the GGUF its engine reads (f16 or bf16, whichever is faster on
    this kind of CPU: see engine_weights)."""
    from sprout.backends.local_engine import llama_cpp_installed
    from sprout.backends.model_store import prepare_embedded, prepare_engine_gguf

    path = prepare_embedded(log=lambda message: console.print(message))
    print(path)
    if llama_cpp_installed():
        print(prepare_engine_gguf("auto", log=lambda message: console.print(message)))


def register(app: typer.Typer) -> None:
    model = typer.Typer(no_args_is_help=True, help="Manage the embedded model.")
    model.command("prepare")(model_prepare)
    app.add_typer(model, name="model")
