"""The shape of the code is the shape of the product: one generator protocol, one driver, a layout by concept."""

import ast
import inspect

from sprout.config.filters import FilterConfig
from sprout.config.run import DataConfig
from sprout.core.records import Lineage, Record
from sprout.filters.shared import RunFilters
from sprout.generators.evol_instruct.generator import EvolInstruct
from sprout.generators.flan.expansion import FlanExpansion
from sprout.generators.pair_synthesis.generator import PairSynthesis
from sprout.generators.protocol import Generator, StepResult
from sprout.generators.self_instruct.generator import SelfInstruct
from sprout.runs.context import RunContext, RunSummary
from sprout.runs.driver import Planned, drive
from tests.conftest import REPO

CODE = [p for root in ("pipeline", "trainer") for p in (REPO / root).rglob("*.py")]


def test_every_generator_has_the_one_shape_and_says_what_it_reads_writes_and_follows():
    papers = {SelfInstruct: "Wang et al., 2023", EvolInstruct: "Xu et al., 2023", PairSynthesis: "Reads: a task spec",
              FlanExpansion: "Wei et al., 2022"}
    for cls, source in papers.items():
        for member in ("name", "unit", "planned", "progress", "done", "step", "finish", "summarize"):
            assert hasattr(cls, member) or member in ("name",), (cls, member)
        doc = inspect.getdoc(cls)
        assert "Reads:" in doc and "Writes:" in doc and source in doc, cls


def test_no_code_file_is_over_300_lines_and_the_pipeline_never_imports_the_trainer():
    long = {str(p.relative_to(REPO)): n for p in CODE if (n := len(p.read_text().splitlines())) >= 300}
    assert long == {}
    for path in (REPO / "pipeline").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] == "sprout_trainer" for n in names), path


# Imports go one way: the model contract and the domain types know nothing of what runs them; filters know no
# generator; generators know no run; nothing below the CLI knows the CLI.
NEVER_IMPORTS = {"backends": ("filters", "generators", "runs", "datasets", "reports", "cli"),
                 "core": ("filters", "generators", "runs", "datasets", "reports", "cli"),
                 "config": ("runs", "cli"),
                 "filters": ("generators", "runs", "reports", "cli"),
                 "generators": ("runs", "reports", "cli"),
                 "runs": ("cli",)}


def test_imports_go_one_way_through_the_layers():
    for folder, above in NEVER_IMPORTS.items():
        for path in (REPO / "pipeline" / "sprout" / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                bad = [n for n in names if n.split(".")[:2] in (["sprout", layer] for layer in above)]
                assert not bad, f"{path.relative_to(REPO)} imports {bad}"


class Counting:
    """A generator that makes `total` records, two per step, each step recorded; its last step rejects one."""

    name, unit, stopped_early = "counting", "rows", False

    def __init__(self, total):
        self.total, self.made, self.finished = total, 0, False

    def planned(self):
        return self.total

    def progress(self):
        return self.made

    @property
    def done(self):
        return self.made >= self.total

    def step(self):
        n = min(2, self.total - self.made)
        records = [Record(instruction=f"Task {self.made + i}.", output="Done.", lineage=Lineage(generator=self.name))
                   for i in range(n)]
        self.made += n
        return StepResult(records=records, units=n)

    def finish(self):
        self.finished = True
        return StepResult()

    def summarize(self, summary):
        summary.new_tasks += self.made


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, plan):
        self.calls.append(("plan", [(p.name, p.unit, p.total) for p in plan]))
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.calls.append(("exit",))

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


class Files:
    def __init__(self, summary):
        self.summary, self.lines = summary, []

    def write(self, records=(), rejections=()):
        self.lines.append((len(records), len(rejections)))
        self.summary.examples += len(records)


def test_the_driver_runs_the_plan_in_order_writes_every_step_and_reports_progress(tmp_path):
    assert isinstance(Counting(1), Generator)
    summary = RunSummary(str(tmp_path), seeds=0, target=0)
    display = Recorder()
    ctx = RunContext(DataConfig(), None, RunFilters(FilterConfig()), Files(summary), summary, progress=display)
    built = drive(ctx, [Planned("counting", "rows", 5, lambda c: Counting(5)),
                        Planned("counting:b", "rows", None, lambda c: Counting(c.generators["counting"].made - 4))])
    assert list(built) == ["counting", "counting:b"] and all(g.finished for g in built.values())
    assert ctx.files.lines == [(2, 0), (2, 0), (1, 0), (0, 0), (1, 0), (0, 0)]  # each step, then each finish
    assert (summary.examples, summary.new_tasks, summary.batches) == (6, 6, 4)
    assert summary.work == {"counting": 6}  # by generator kind: counting and counting:b
    assert display.calls == [
        ("plan", [("counting", "rows", 5), ("counting:b", "rows", None)]),
        ("update", "counting", 0, 5), ("start", "counting"), ("update", "counting", 2, 5),
        ("update", "counting", 4, 5), ("update", "counting", 5, 5), ("finish", "counting"),
        ("update", "counting:b", 0, 1), ("start", "counting:b"), ("update", "counting:b", 1, 1),
        ("finish", "counting:b"), ("exit",)]


def test_a_batch_cap_stops_a_generator_early_and_says_so_once():
    from sprout.generators.protocol import reached_goal_or_cap

    said = []
    gen = Counting(5)
    gen.batches, gen.log = 0, said.append
    assert reached_goal_or_cap(gen, 5, 2, "stopped") is False  # neither the goal nor the cap
    gen.batches = 2
    assert reached_goal_or_cap(gen, 5, 2, "stopped") is True and gen.stopped_early
    assert reached_goal_or_cap(gen, 5, 2, "stopped") is True and said == ["stopped"]  # said once
    done = Counting(1)
    done.made, done.batches, done.log = 1, 9, said.append
    assert reached_goal_or_cap(done, 1, 2, "cap") is True and not done.stopped_early  # the goal came first
    assert said == ["stopped"]
