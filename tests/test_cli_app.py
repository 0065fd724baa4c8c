"""The CLI's frame: commands from modules by concept and from `sprout.commands` entry points (the trainer's), and
one `UserError` handler for all of them, in-process as well as under `python -m sprout`."""

import ast
from importlib.metadata import entry_points

import typer
from typer.testing import CliRunner

from sprout.cli.app import app, register_providers
from tests.conftest import REPO

CLI_CODE = [*sorted((REPO / "pipeline" / "sprout" / "cli").glob("*.py")),
            REPO / "trainer" / "sprout_trainer" / "cli.py"]


def command_names(target: typer.Typer) -> set[str]:
    return {c.name or c.callback.__name__ for c in target.registered_commands}


def test_the_trainer_commands_come_through_the_entry_point():
    assert "sprout_trainer.cli:register" in [e.value for e in entry_points(group="sprout.commands")]
    assert {"data", "evolve", "synth", "filter", "dedup", "decontaminate", "mix", "export", "show", "report", "train",
            "eval", "merge", "chat"} <= command_names(app)
    assert {g.name for g in app.registered_groups} == {"seeds", "model", "templates"}
    fresh = typer.Typer()
    assert "sprout_trainer.cli:register" in register_providers(fresh)
    assert command_names(fresh) == {"train", "eval", "merge", "chat"}


def test_one_handler_turns_a_user_error_into_its_message_and_exit_2(tmp_path):
    runner = CliRunner()
    missing = tmp_path / "nowhere.jsonl"
    for args, message in ((["seeds", "check", str(missing)], f"{missing}: no such seed file"),  # a sub-command
                          (["report", str(tmp_path)], "no report.json here"),  # raised by the command itself
                          (["train", "--stages", str(tmp_path), "--data", str(missing)],  # a provider's command
                           "--stages and --data both name the training data")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output, result.exception)
        assert "error:" in result.output and message in result.output, result.output
        assert isinstance(result.exception, SystemExit)  # handled: no UserError escaped the app


def test_no_command_module_catches_user_error_itself():
    """The handler is in cli/app.py alone; a command raises UserError and the app reports it."""
    catching = []
    for path in CLI_CODE:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ExceptHandler) and "UserError" in ast.unparse(node.type or ast.Constant(None)):
                catching.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert [c for c in catching if not c.startswith("pipeline/sprout/cli/app.py")] == []
    assert len(catching) == 1  # the one handler
