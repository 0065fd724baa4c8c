"""Imports run one way: the trainer may use the pipeline; the pipeline never imports the trainer. The trainer's
commands reach the CLI through the `sprout.commands` entry point (tests/test_cli_app.py), and nothing imports the
old `pipeline` remap."""

import ast
from pathlib import Path

from tests.conftest import REPO

PIPELINE = REPO / "pipeline" / "sprout"
CODE_AND_TESTS = [REPO / d for d in ("pipeline", "trainer", "tests", "bench")]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, anywhere in it (functions too), with its line: `import a.b` and `from a.b import
    c` give a.b; `importlib.import_module("a.b")` and `__import__("a.b")` with a literal name count as well."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def offenders(files, top_level: str) -> list[str]:
    return [f"{path.relative_to(REPO)}:{line}: imports {module}" for path in files
            for line, module in imported_modules(path) if module.split(".")[0] == top_level]


def test_the_pipeline_never_imports_the_trainer():
    files = sorted(PIPELINE.rglob("*.py"))
    assert len(files) > 50  # the scan sees the package, not an empty folder
    assert offenders(files, "sprout_trainer") == []


def test_the_scan_finds_every_form_of_import(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import sprout_trainer\nfrom sprout_trainer.data import x\n"
                     "def f():\n    import sprout_trainer.cli as c\n"
                     "import importlib\nimportlib.import_module('sprout_trainer.train')\n__import__('sprout_trainer')\n"
                     "from . import sprout_trainer\nimport sprout_trainers\n")
    assert [line for line, module in imported_modules(probe) if module.split(".")[0] == "sprout_trainer"] == \
        [1, 2, 4, 6, 7]


def test_no_code_or_test_imports_the_old_pipeline_module():
    files = sorted(p for root in CODE_AND_TESTS for p in root.rglob("*.py"))
    assert offenders(files, "pipeline") == []
