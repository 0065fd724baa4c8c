"""Issue 8, properties 3 and 7: bad input never crashes and never half-writes; templates are sandboxed.

Property 3 is table-driven: every case runs the real CLI in a subprocess and must end with exit code 2, exactly one
`error:` message on stderr that names the file:line (or the config key, or the --set) together with what to do, no
traceback, and no file created or changed: the whole temporary folder (inputs, `out_dir`, the cache) is the same
before and after, byte for byte.

A huge seed line is refused, not accepted: a seed item over `sprout.core.seeds.MAX_SEED_CHARS` (100,000 characters) is
named with its line. Seeds are short hand-written tasks shown 6-8 to a prompt; 100,000 characters already overflow
the embedded model's 8,192-token context several times, so a longer item is the wrong file (a dataset or document on
one line), which would otherwise fail or stall only once the model sees it.

Property 7: seed, data and model text is passed into prompts as variables and never compiled as a template, so
Jinja in it reaches the model verbatim and nothing in it is evaluated; Jinja in a prompt file or FLAN template that
reaches for Python internals is refused by the sandbox (SecurityError) with a user error, and runs nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sprout.backends.cache import CachedBackend
from sprout.config.filters import FilterConfig
from sprout.core.errors import UserError
from sprout.core.prompts import load_prompt
from sprout.core.seeds import MAX_SEED_CHARS, load_seeds
from sprout.filters.build import build_filters
from sprout.generators.flan.config import FlanTaskConfig
from sprout.generators.flan.expansion import load_source
from sprout.generators.pair_synthesis.task_spec import TaskSpec
from sprout.generators.self_instruct.config import SelfInstructConfig
from sprout.generators.self_instruct.generator import SelfInstruct
from tests.conftest import REPO, write

GUARD_S = 300  # a hang guard (a pipe read as a seed file would block forever), not a timing


def run(*args: str, python_args: tuple[str, ...] = ("-m", "sprout")) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *python_args, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"}, timeout=GUARD_S)


def snapshot(root: Path) -> dict[str, object]:
    """Every path under root with its kind, and for files their size, mtime and content hash."""
    found: dict[str, object] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            found[name] = "special"
        elif path.is_dir():
            found[name] = "dir"
        else:
            stat = path.stat()
            found[name] = (stat.st_size, stat.st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def assert_refused(result: subprocess.CompletedProcess, root: Path, before: dict, expected: list[str]) -> None:
    err = result.stderr
    shown = f"exit {result.returncode}\nstderr:\n{err[-4000:]}\nstdout:\n{result.stdout[-1000:]}"
    assert result.returncode == 2, shown
    assert "Traceback" not in err + result.stdout, shown
    lines = err.splitlines()
    assert [i for i, line in enumerate(lines) if line.startswith("error:")] == [0], shown  # one message, first...
    assert all(line.startswith("  ") for line in lines[1:]), shown  # ...then only its details (no progress bar)
    for fragment in expected:
        assert fragment in err, f"missing {fragment!r}\n{shown}"
    assert snapshot(root) == before, "a file was created or changed"
    assert not (root / "out").exists() and not (root / "cache.sqlite").exists()


def jsonl(*rows: object) -> str:
    return "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)


# --- property 3: seeds -------------------------------------------------------------------------------------------

ALPACA = {"instruction": "Name a primary colour.", "input": "", "output": "Red"}
TASK = {"id": "t1", "instruction": "Say hello to the person named.",
        "instances": [{"input": "Ann", "output": "Hi Ann"}], "is_classification": False}
HUGE = "x" * 5_000_000

# (id, file content, what stderr must say: {path} is the seed file). Each message names the file and line, and the
# header line gives the fix (the two accepted formats); some details carry their own fix too.
SEED_CASES = [
    ("invalid-json", jsonl(ALPACA, '{"instruction": "Say hi.", "output": "hi"'),
     ["{path}:2: invalid JSON: Expecting ',' delimiter", "Fix each line below"]),
    ("instruction-is-a-number", jsonl({"instruction": 5, "output": "y"}),
     ["{path}:1: instruction: Input should be a valid string"]),
    ("instances-not-a-list", jsonl({**TASK, "instances": "Hi Ann"}),
     ["{path}:1: instances: Input should be a valid list"]),
    ("is-classification-a-string", jsonl({**TASK, "is_classification": "yes"}),
     ["{path}:1: is_classification: Input should be a valid boolean"]),
    ("missing-output", jsonl({"instruction": "Say hi."}), ["{path}:1: output: missing field"]),
    ("missing-instruction", jsonl({"instances": [{"output": "hi"}]}), ["{path}:1: instruction: missing field"]),
    ("instance-missing-output", jsonl({**TASK, "instances": [{"input": "Ann"}]}),
     ["{path}:1: instances.0.output: missing field"]),
    ("blank-instruction", jsonl({**ALPACA, "instruction": "  "}), ["{path}:1: instruction: is empty"]),
    ("not-an-object", jsonl(ALPACA, "[1, 2]"), ["{path}:2: expected a JSON object, got list"]),
    ("empty-file", "", ["{path}: no seed tasks (the file is empty); add one JSON object per line."]),
    ("only-blank-lines", "\n  \n\n", ["{path}: no seed tasks (the file is empty)"]),
    ("empty-json-array", "[]\n", ["{path}: no seed tasks (an empty JSON array)"]),
    ("duplicate-ids", jsonl(TASK, {**TASK, "instruction": "Greet the person named."}),
     ["{path}:2: duplicate id 't1' (first at {path}:1); ids must be unique."]),
    ("duplicate-alpaca-rows", jsonl(ALPACA, ALPACA), ["{path}:2: exact duplicate of {path}:1; remove one of them."]),
    ("huge-line-5MB", jsonl(ALPACA, {"instruction": HUGE, "output": "y"}),
     ["{path}:2: too long: 5,000,0", f"at most {MAX_SEED_CHARS:,}", "check that this is the right file"]),
    ("huge-item-in-json-array", "[\n" + json.dumps(ALPACA) + ",\n" + json.dumps({**ALPACA, "input": HUGE}) + "\n]\n",
     ["{path}:3: too long: 5,000,0"]),
    ("invalid-utf8", b'{"instruction": "Name a colour.", "output": "Red"}\n{"instruction": "Caf\xe9", "output": "x"}\n',
     ["{path}:2: not valid UTF-8 (byte 71); save the file as UTF-8."]),
    ("lone-surrogate-escape", jsonl('{"instruction": "Say \\ud800 hi.", "output": "hi"}'),
     ["{path}:1: instruction: holds a lone surrogate", "valid \\u escape pair"]),
    ("lone-surrogate-in-self-instruct-task",
     jsonl('{"instruction": "Say hi.", "instances": [{"output": "hi \\udc80"}]}'),
     ["{path}:1: instances.0.output: holds a lone surrogate"]),
    ("deeply-nested-json", jsonl('{"instruction": "Deep.", "output": ' + "[" * 30_000 + "]" * 30_000 + "}"),
     ["{path}:1: invalid JSON: nested too deeply"]),
    ("integer-of-5000-digits", jsonl('{"instruction": 1' + "0" * 5000 + ', "output": "y"}'),
     ["{path}:1: invalid JSON: Exceeds the limit (4300 digits)"]),
    ("json-array-then-garbage", json.dumps([ALPACA]) + "\n" + json.dumps(TASK) + "\n",
     ["{path}:2: invalid JSON: extra data after the array"]),
    ("self-instruct-file-one-bad-task", jsonl(TASK, {**TASK, "id": "t2", "instances": [{"input": "Bo"}]}, {**TASK,
                                                                                                          "id": "t3"}),
     ["{path}:2: instances.0.output: missing field", "1 problem(s)"]),
    ("alpaca-array-one-bad-entry", json.dumps([ALPACA, {**ALPACA, "instruction": "Name a fruit."},
                                               {**ALPACA, "instruction": "Name a tree.", "output": 3}], indent=2),
     ["{path}:12: output: Input should be a valid string", "1 problem(s)"]),
]


def _bad_path(kind: str, root: Path) -> Path:
    if kind == "directory":
        path = root / "seeds"
        path.mkdir()
    elif kind == "missing":
        path = root / "no_such_seeds.jsonl"
    elif kind == "pipe":
        path = root / "seeds.fifo"
        os.mkfifo(path)
    else:  # a file name longer than the file system allows (ENAMETOOLONG)
        path = root / ("s" * 300 + ".jsonl")
    return path


PATH_CASES = [
    ("directory", ["{path}: is a directory, not a seed file; pass the file(s) inside it."]),
    ("missing", ["{path}: no such seed file. Check the path"]),
    ("pipe", ["{path}: not a regular file (a pipe, socket or device); pass a seed file."]),
    ("name-too-long", ["cannot read the seed file: File name too long"]),
]
VIA = {"seeds-check": lambda path, root: ("seeds", "check", str(path)),
       "data": lambda path, root: ("data", "--set", f"seeds=[{path}]", "--set", f"out_dir={root / 'out'}",
                                   "--set", f"cache={root / 'cache.sqlite'}")}


@pytest.mark.parametrize("via", VIA)
@pytest.mark.parametrize(("content", "expected"), [pytest.param(c, e, id=i) for i, c, e in SEED_CASES])
def test_bad_seed_file_is_refused_with_its_line_and_nothing_written(tmp_path, via, content, expected):
    path = write(tmp_path / ("seeds.json" if str(content).lstrip().startswith("[") else "seeds.jsonl"), content)
    before = snapshot(tmp_path)
    result = run(*VIA[via](path, tmp_path))
    assert_refused(result, tmp_path, before, [e.format(path=path) for e in expected])
    if "too long" in expected[0]:
        assert len(result.stderr) < 5000  # the message names the line; it does not print 5 MB back


@pytest.mark.parametrize("via", VIA)
@pytest.mark.parametrize(("kind", "expected"), [pytest.param(k, e, id=k) for k, e in PATH_CASES])
def test_seed_path_that_is_not_a_readable_file_is_refused(tmp_path, via, kind, expected):
    path = _bad_path(kind, tmp_path)
    before = snapshot(tmp_path)
    assert_refused(run(*VIA[via](path, tmp_path)), tmp_path, before, [e.format(path=path) for e in expected])


def test_too_few_seeds_for_the_prompts_is_refused_before_anything_is_written(tmp_path):
    path = write(tmp_path / "seeds.jsonl", jsonl(ALPACA, TASK, {**TASK, "id": "t2", "instruction": "Is it? Yes/No.",
                                                               "is_classification": True}))
    before = snapshot(tmp_path)
    result = run(*VIA["data"](path, tmp_path))
    assert_refused(result, tmp_path, before, [f"{path}: too few seeds for Self-Instruct's prompts: 3 seed tasks, "
                                              "but generators.self_instruct.in_context is 8"])


def test_seed_file_with_a_utf8_bom_is_read_as_utf8(tmp_path):
    """Windows editors save UTF-8 with a byte-order mark; it is not part of the first JSON line."""
    path = write(tmp_path / "seeds.jsonl", b"\xef\xbb\xbf" + jsonl(ALPACA, TASK).encode())
    result = run("seeds", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: 2 tasks")


# --- property 3: config ------------------------------------------------------------------------------------------

# (id, config file content or None for the shipped configs/data.yaml, extra --set, expected; {config} is the config
# file, {tmp} the temporary folder). Every case also gets --set out_dir={tmp}/out and --set cache={tmp}/cache.sqlite
# first, so a run that got past validation would write there.
CONFIG_CASES = [
    ("unknown-top-level-key", "outdir: out/x\n", [],
     ["{config}:1: unknown key 'outdir'; valid keys here: out_dir, seed, seeds, cache"]),
    ("unknown-nested-key", "generators:\n  self_instruct:\n    targt: 5\n", [],
     ["{config}:3: unknown key 'generators.self_instruct.targt'; valid keys here: mode, target"]),
    ("unknown-key-via-set", None, ["generators.self_instruct.targt=5"],
     ["--set 'generators.self_instruct.targt=5': unknown key 'generators.self_instruct.targt'; valid keys here"]),
    ("wrong-type-integer", "seed: forty-two\n", [], ["{config}:1: key 'seed': Input should be a valid integer"]),
    ("wrong-type-section", "generators: 5\n", [],
     ["{config}:1: key 'generators': Input should be a valid dictionary"]),
    ("wrong-type-list", "seeds: seeds/general.jsonl\n", [], ["{config}:1: key 'seeds': Input should be a valid list"]),
    ("wrong-type-boolean", "generators:\n  pair_synthesis:\n    - task: seeds/tasks/political_promises.yaml\n"
     "      verify_output_first: maybe\n", [],
     ["{config}:4: key 'generators.pair_synthesis.0.verify_output_first': Input should be a valid boolean"]),
    ("wrong-type-via-set", None, ["backend.batch_size=many"],
     ["--set 'backend.batch_size=many': key 'backend.batch_size': Input should be a valid integer"]),
    ("negative-target", "generators:\n  self_instruct:\n    target: -1\n", [],
     ["{config}:3: key 'generators.self_instruct.target': Input should be greater than 0"]),
    ("zero-target", "generators:\n  self_instruct:\n    target: 0\n", [],
     ["{config}:3: key 'generators.self_instruct.target': Input should be greater than 0"]),
    ("negative-target-via-set", None, ["generators.self_instruct.target=-1"],
     ["--set 'generators.self_instruct.target=-1': key 'generators.self_instruct.target': Input should be greater"]),
    ("negative-pair-count",
     "generators:\n  pair_synthesis:\n    - {task: seeds/tasks/political_promises.yaml, n: -5}\n", [],
     ["{config}:3: key 'generators.pair_synthesis.0.n': Input should be greater than 0"]),
    ("threshold-above-one", "filters:\n  rouge_l_threshold: 1.5\n", [],
     ["{config}:2: key 'filters.rouge_l_threshold': Input should be less than or equal to 1"]),
    ("missing-model-path", "backend:\n  model: /nonexistent\n", [],
     ["model '/nonexistent': no such local model folder", "Fix: set backend.model to `embedded`"]),
    ("missing-model-path-via-set", None, ["backend.model=/nonexistent"],
     ["model '/nonexistent': no such local model folder", "Fix: set backend.model"]),
    ("openai-without-server", "backend:\n  kind: openai\n", [],
     ["{config}:1: key 'backend': kind openai needs `base_url:`"]),
    ("malformed-yaml", "seed: 1\ngenerators:\n  self_instruct: {target: 5\nfilters: {}\n", [],
     ["{config}:4: invalid YAML: expected ',' or '}}'", "Fix the config there"]),
    ("tab-indented-yaml", "generators:\n\tself_instruct: {}\n", [],
     ["{config}:2: invalid YAML: found character '\\t' that cannot start any token"]),
    ("yaml-python-tag", "seed: !!python/object/apply:os.system [touch {tmp}/pwned]\n", [],
     ["{config}:1: invalid YAML: could not determine a constructor for the tag"]),
    ("repeated-key", "seed: 1\ngenerators: {}\nseed: 2\n", [],
     ["{config}:3: key 'seed' is given twice (first at line 1)", "Fix: keep one of them"]),
    ("not-a-mapping", "- seeds/general.jsonl\n", [], ["{config}: the config must be a mapping of keys"]),
    ("config-file-missing", "<missing>", [], ["{config}: no such config file. Fix: check the path"]),
    ("config-is-a-directory", "<directory>", [], ["{config}: is a directory, not a config file"]),
    ("config-invalid-utf8", b"seed: 1\nout_dir: caf\xe9\n", [], ["{config}:2: not valid UTF-8"]),
    ("unknown-rule", "filters:\n  task_rules: [word_count, wordcount]\n", [],
     ["{config}:2: key 'filters.task_rules': unknown rule(s) ['wordcount']; valid rules: banned_prefix"]),
    ("unknown-judge-prompt", "filters:\n  judges:\n    - {name: strict, prompt: judge/strictness}\n", [],
     ["{config}:3: key 'filters.judges.0': judge 'strict': prompt 'judge/strictness' not found",
      "Fix: `prompt:` names a file under prompts/"]),
    ("judge-verdict-both-keep-and-drop",
     "filters:\n  judges:\n    - {name: q, prompt: judge/quality, keep: [Valid], drop: [valid]}\n", [],
     ["{config}:3: key 'filters.judges.0': judge 'q': verdict word(s) ['valid'] both keep and drop"]),
    ("unknown-evol-operation", "generators:\n  evol_instruct:\n    operations: {deepn: 1}\n", [],
     ["{config}:3: key 'generators.evol_instruct.operations': unknown operation(s) ['deepn']; valid:"]),
    ("unknown-flan-task", "generators:\n  flan:\n    tasks: [sentimnet]\n", [],
     ["FLAN task 'sentimnet': no template file", "Known tasks: nli, paraphrase"]),
    ("missing-task-spec", "generators:\n  pair_synthesis:\n    - task: seeds/tasks/nope.yaml\n", [],
     ["seeds/tasks/nope.yaml: no such task spec. Fix: pass a YAML file"]),
    ("label-not-in-task-spec", "generators:\n  pair_synthesis:\n    - task: seeds/tasks/political_promises.yaml\n"
     "      label_distribution: {Maybe: 1}\n", [],
     ["pair_synthesis[0].label_distribution: unknown label(s) ['Maybe']"]),
    ("set-without-equals", None, ["generators.self_instruct.target"],
     ["--set 'generators.self_instruct.target': expected KEY=VALUE, e.g. --set generators.self_instruct.target=10"]),
    ("set-value-not-yaml", None, ["seeds=[unclosed"],
     ["--set 'seeds=[unclosed': the value is not valid YAML", "Fix: quote a plain string"]),
    ("set-into-a-value", None, ["seed.x=1"], ["--set 'seed.x=1': 'seed' is not a section"]),
    ("set-empty-seed-list", None, ["seeds=[]"], ["--set 'seeds=[]': key 'seeds': List should have at least 1 item"]),
    ("out-dir-is-a-file", None, ["out_dir={tmp}/taken"],
     ["key 'out_dir': {tmp}/taken is a file, not the folder the run writes", "Fix: name a folder"]),
    ("out-dir-under-a-file", None, ["out_dir={tmp}/taken/run"], ["key 'out_dir': {tmp}/taken is a file, so"]),
    ("cache-is-a-directory", None, ["cache={tmp}/cachedir"],
     ["key 'cache': {tmp}/cachedir is a folder, not the file the run writes"]),
]


@pytest.mark.parametrize(("text", "sets", "expected"), [pytest.param(t, s, e, id=i) for i, t, s, e in CONFIG_CASES])
def test_bad_config_is_refused_naming_the_key_and_nothing_written(tmp_path, text, sets, expected):
    write(tmp_path / "taken", "a file where a folder is expected\n")
    (tmp_path / "cachedir").mkdir()
    config = tmp_path / "config.yaml"
    if text == "<directory>":
        config.mkdir()
    elif text not in (None, "<missing>"):
        write(config, text.replace("{tmp}", str(tmp_path)) if isinstance(text, str) else text)
    args = ["data", *(["--config", str(config)] if text is not None else [])]
    for assignment in [f"out_dir={tmp_path / 'out'}", f"cache={tmp_path / 'cache.sqlite'}", *sets]:
        args += ["--set", assignment.replace("{tmp}", str(tmp_path))]
    before = snapshot(tmp_path)
    result = run(*args)
    assert_refused(result, tmp_path, before, [e.format(config=config, tmp=tmp_path) for e in expected])


# Every command that writes a run refuses an output path that is in the way (`taken` is a file, `folder` a folder),
# naming it the way the user gave it (--set or the command's own option), before writing anything.
ROWS = {"instruction": "Name a colour.", "input": "", "output": "Blue."}
OUTPUT_CASES = [
    ("synth", ["synth", "--task", str(REPO / "seeds/tasks/plain_english.yaml"), "--set", "out_dir={tmp}/taken",
               "--set", "cache={tmp}/cache.sqlite"],
     "--set 'out_dir={tmp}/taken': key 'out_dir': {tmp}/taken is a file"),
    ("synth-cache", ["synth", "--task", str(REPO / "seeds/tasks/plain_english.yaml"), "--set", "out_dir={tmp}/out",
                     "--set", "cache={tmp}/folder"],
     "--set 'cache={tmp}/folder': key 'cache': {tmp}/folder is a folder"),
    ("evolve", ["evolve", "--input", "{tmp}/rows.jsonl", "--set", "out_dir={tmp}/taken/run", "--set",
                "cache={tmp}/cache.sqlite"], "key 'out_dir': {tmp}/taken is a file, so {tmp}/taken/run cannot be made"),
    ("filter", ["filter", "{tmp}/rows.jsonl", "--set", "out_dir={tmp}/taken", "--set", "cache={tmp}/cache.sqlite"],
     "--set 'out_dir={tmp}/taken': key 'out_dir': {tmp}/taken is a file"),
    ("templates-expand", ["templates", "expand", "sentiment", "--out", "{tmp}/taken"],
     "--out '{tmp}/taken': key 'out_dir': {tmp}/taken is a file"),
    ("templates-grow", ["templates", "grow", "--task", "sentiment", "--set", "cache={tmp}/folder"],
     "--set 'cache={tmp}/folder': key 'cache': {tmp}/folder is a folder"),
    ("train", ["train", "--data", "{tmp}/rows.jsonl", "--out", "{tmp}/taken"],
     "--out '{tmp}/taken': key 'out_dir': {tmp}/taken is a file"),
]


@pytest.mark.parametrize(("args", "expected"), [pytest.param(a, e, id=i) for i, a, e in OUTPUT_CASES])
def test_every_run_command_refuses_an_output_path_in_the_way(tmp_path, args, expected):
    write(tmp_path / "taken", "not a folder\n")
    (tmp_path / "folder").mkdir()
    write(tmp_path / "rows.jsonl", jsonl(ROWS, ROWS | {"instruction": "Name a fruit.", "output": "Pear."}))
    before = snapshot(tmp_path)
    result = run(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert_refused(result, tmp_path, before, [expected.replace("{tmp}", str(tmp_path))])


@pytest.mark.parametrize("command", ["data", "filter"])
def test_a_bad_eval_file_for_decontamination_is_refused_before_anything_is_written(tmp_path, command):
    evals = write(tmp_path / "eval.jsonl", '{"question": "What is the boiling point of water at sea level?"}\n{oops\n')
    sets = ["filters.instance_rules=[decontamination]", f"filters.decontaminate_against=[{evals}]",
            f"out_dir={tmp_path / 'out'}", f"cache={tmp_path / 'cache.sqlite'}"]
    rows = [] if command == "data" else [str(write(tmp_path / "rows.jsonl", jsonl(ROWS)))]
    before = snapshot(tmp_path)
    result = run(command, *rows, *(arg for assignment in sets for arg in ("--set", assignment)))
    assert_refused(result, tmp_path, before, [f"{evals}:2: invalid JSON"])


# --- property 3: task specs (sprout synth) and FLAN template sets (sprout templates check) ------------------------
# The loaders' messages are tested in test_pair_synthesis.py and test_flan.py; these cases add the CLI's side (exit
# 2, one message, nothing written) and the inputs that used to crash it.

SPEC = """name: demo
kind: classification
instruction: Is it a promise?
labels: ["True", "False"]
examples:
  - input: We will build it.
    output: "True"
  - input: Nice weather.
    output: "False"
"""
SYNTH_CASES = [
    ("missing-file", "<missing>", ["{spec}: no such task spec. Fix: pass a YAML file"]),
    ("malformed-yaml", SPEC.replace("labels: [", "labels: [[", 1),
     ["{spec}:5: invalid YAML", "Fix the task spec there"]),
    ("invalid-utf8", SPEC.encode().replace(b"Nice weather", b"Nice w\xe9ather"), ["{spec}:8: not valid UTF-8"]),
    ("empty-file", "", ["{spec}: key 'name': Field required", "invalid task spec"]),
    ("output-not-a-label", SPEC.replace('output: "False"', 'output: "Yes"'),
     ["{spec}:9: examples[1].output 'Yes' is not one of the labels"]),
    ("repeated-key", SPEC + "kind: generation\n", ["{spec}:10: key 'kind' is given twice (first at line 2)"]),
]


@pytest.mark.parametrize(("text", "expected"), [pytest.param(t, e, id=i) for i, t, e in SYNTH_CASES])
def test_bad_task_spec_is_refused_by_synth_and_nothing_written(tmp_path, text, expected):
    spec = tmp_path / "task.yaml"
    if text != "<missing>":
        write(spec, text)
    before = snapshot(tmp_path)
    result = run("synth", "--task", str(spec), "--set", f"out_dir={tmp_path / 'out'}",
                 "--set", f"cache={tmp_path / 'cache.sqlite'}")
    assert_refused(result, tmp_path, before, [e.format(spec=spec) for e in expected])


FLAN_HEADER = """task: mood
kind: classification
data: {data}
label_field: label
answer_choices: [sad, happy]
templates:
  - name: ask
    instruction: "{instruction}"
    input: "{{{{ text }}}}\\n\\n{{{{ options }}}}"
    output: "{{{{ answer }}}}"
"""
ESCAPE_SUBCLASSES = "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}How does it feel?"
TEMPLATE_CASES = [
    ("reaches-mro", {"instruction": "{{ text.__class__.__mro__ }}"},
     ["{root}/mood.yaml:7: template 'ask': instruction: access to attribute '__class__' of 'str' object is unsafe",
      "Refused by the sandbox (SecurityError)", "nothing was executed"]),
    ("reaches-subclasses", {"instruction": ESCAPE_SUBCLASSES},
     ["{root}/mood.yaml:7: template 'ask': instruction: access to attribute '__class__' of 'tuple' object is unsafe",
      "SecurityError"]),
    ("reaches-os-through-globals", {"instruction": "{{ text.__init__.__globals__.os.system('touch {root}/pwned') }}"},
     ["{root}/mood.yaml:7: template 'ask': instruction: access to attribute '__init__' of 'str' object is unsafe",
      "SecurityError"]),
    ("exhausts-memory", {"instruction": "{{ 'a' * 10**10 }}"},
     ["{root}/mood.yaml:7: template 'ask': instruction: `*` would build 10,000,000,000 items", "SecurityError"]),
    ("exhausts-memory-by-padding", {"instruction": "{{ text|center(10**10) }}"},
     ["{root}/mood.yaml:7: template 'ask': instruction: filter `center` was given 10,000,000,000", "SecurityError"]),
    ("unknown-placeholder", {"instruction": "How does {{ writer }} feel?"},
     ["{root}/mood.yaml:7: template 'ask': uses unknown placeholder(s) ['writer']"]),
    ("jinja-syntax-error", {"instruction": "{% if text %}"},
     ["{root}/mood.yaml:7: template 'ask': Jinja syntax error"]),
    ("malformed-yaml", {"tail": "  - name: [unclosed\n"},
     ["{root}/mood.yaml:12: invalid YAML: expected ',' or ']'", "Fix the template file there"]),
    ("missing-data-file", {"data": "{root}/nowhere.jsonl"}, ["{root}/nowhere.jsonl: no such data file"]),
]
# `sprout templates check` reads prompts/flan/; this runs the same CLI with the template folder pointed at tmp_path.
FLAN_ROOT_CLI = ("import pathlib, sys; import sprout.generators.flan.templates as f; "
                 "f.load_template_set.__defaults__ = (pathlib.Path(sys.argv.pop(1)),); "
                 "from sprout.cli.app import main; main(prog_name='sprout')")


@pytest.mark.parametrize(("parts", "expected"), [pytest.param(p, e, id=i) for i, p, e in TEMPLATE_CASES])
def test_bad_flan_template_is_refused_by_templates_check(tmp_path, parts, expected):
    data = write(tmp_path / "mood.jsonl", jsonl({"text": "I won the lottery.", "label": 1},
                                                {"text": "My dog ran away.", "label": 0}))
    fill = {"data": str(data), "instruction": "How does the writer feel?", "tail": ""}
    fill |= {k: v.replace("{root}", str(tmp_path)) for k, v in parts.items()}
    template = FLAN_HEADER.format(data=fill["data"], instruction=fill["instruction"].replace('"', '\\"'))
    write(tmp_path / "mood.yaml", template + fill["tail"])
    before = snapshot(tmp_path)
    result = run(str(tmp_path), "templates", "check", "mood", python_args=("-c", FLAN_ROOT_CLI))
    assert_refused(result, tmp_path, before, [e.format(root=tmp_path) for e in expected])


@pytest.mark.parametrize("command", ["data", "expand"])
def test_flan_template_refused_by_the_sandbox_stops_a_run_before_anything_is_written(tmp_path, command):
    """Not only `templates check`: a run whose FLAN set holds an escaping template stops while loading, before
    Self-Instruct (which runs first in `sprout data`) has written anything."""
    data = write(tmp_path / "mood.jsonl", jsonl({"text": "I won the lottery.", "label": 1}))
    write(tmp_path / "mood.yaml", FLAN_HEADER.format(data=data, instruction="{{ text.__class__.__mro__ }}"))
    out = tmp_path / "out"
    if command == "data":
        seeds = Path(__file__).resolve().parent.parent / "seeds" / "general.jsonl"
        args = ("data", "--set", f"seeds=[{seeds}]", "--set", f"out_dir={out}", "--set", "generators.flan.tasks=[mood]",
                "--set", f"cache={tmp_path / 'cache.sqlite'}")
    else:
        args = ("templates", "expand", "mood", "--out", str(out))
    before = snapshot(tmp_path)
    result = run(str(tmp_path), *args, python_args=("-c", FLAN_ROOT_CLI))
    assert_refused(result, tmp_path, before, [f"{tmp_path}/mood.yaml:7: template 'ask': instruction: access to "
                                              "attribute '__class__' of 'str' object is unsafe", "SecurityError"])


def test_the_template_root_switch_itself_works(tmp_path):
    """The harness of the cases above: a good set in tmp_path checks ok, so the refusals are the templates' own."""
    data = write(tmp_path / "mood.jsonl", jsonl({"text": "I won the lottery.", "label": 1}))
    write(tmp_path / "mood.yaml", FLAN_HEADER.format(data=data, instruction="How does the writer feel?"))
    result = run(str(tmp_path), "templates", "check", "mood", python_args=("-c", FLAN_ROOT_CLI))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok: mood: 1 templates (0 inverted), 1 rows")


# --- property 7: seeds and data are never templates; templates are sandboxed ------------------------------------

def payloads(root: Path) -> list[str]:
    """Jinja a template would evaluate. As data it must arrive verbatim: `{{ 7 * 7 }}` never becomes 49, and the
    os.system one would leave a file behind if anything ran it."""
    return ["{{ ''.__class__.__mro__ }}",
            "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
            f"{{{{ cycler.__init__.__globals__.os.system('touch {root}/pwned') }}}}",
            "{{ 7 * 7 }}", "{{ undefined_name }}", "{% raw %}", "{# a comment #}", "{{"]


def seed_file_with_jinja(root: Path) -> Path:
    rows = []
    for i, payload in enumerate(payloads(root)):
        clf = i % 2 == 0
        rows.append({"id": f"jinja{i}", "instruction": f"Task {i}: copy {payload} exactly."
                     + (" Answer Yes or No." if clf else ""),
                     "instances": [{"input": f"input {payload} {i}", "output": "Yes" if clf else f"out {payload}"},
                                   *([{"input": f"other {i}", "output": "No"}] if clf else [])],
                     "is_classification": clf})
    return write(root / "jinja.jsonl", jsonl(*rows))


def reply(messages, sampling):
    last = messages[-1]["content"]
    if messages[-1]["role"] == "assistant" and re.fullmatch(r"\d+\.", last):
        return " Suggest three names for a small bakery.\n10. Explain why leaves change colour in autumn."
    if last in ("Input:", "Class label:"):
        return " <noinput>\nOutput: Crumb & Co" if last == "Input:" else " Yes\nInput: Is it?"
    return "Yes" if "bakery" in last else "No"  # one task of each kind, so both instance prompts are built


def test_seed_text_with_jinja_reaches_the_model_verbatim_and_nothing_runs(tmp_path, scripted):
    path = seed_file_with_jinja(tmp_path)
    assert run("seeds", "check", str(path)).returncode == 0  # to the validator it is text like any other
    seeds = load_seeds([path])
    assert [s.instruction for s in seeds] == [json.loads(line)["instruction"] for line in path.read_text().splitlines()]
    config = SelfInstructConfig(requests_per_batch=2, tasks_per_batch=2, in_context=8, from_seeds=8,
                                classify_examples=8, instance_examples=4)
    backend = CachedBackend(scripted(reply), tmp_path / "cache.sqlite")
    generator = SelfInstruct(config, seeds, backend, build_filters(FilterConfig(), [s.instruction for s in seeds]),
                             run_seed=3)
    generator.run_batch(0, needed=2)  # list continuation, classification judge, instances: every seed-fed prompt
    sent = "\n".join(m["content"] for batch in backend.inner.batches for messages in batch for m in messages)
    kinds = {messages[-1]["content"] for batch in backend.inner.batches for messages in batch}
    assert {"9.", "Input:", "Class label:"} <= kinds  # new-task and both instance prompts, built from the seeds
    for seed in seeds:
        assert seed.instruction in sent
    for payload in payloads(tmp_path):
        assert f"input {payload}" in sent  # instances too, shown as worked examples
    evaluated = sent.replace(str(tmp_path), "ROOT")  # the temporary folder's name may hold digits (pytest-49)
    assert "49" not in evaluated and "<class" not in evaluated  # nothing was evaluated
    assert not (tmp_path / "pwned").exists()
    backend.close()


def test_data_and_model_text_with_jinja_is_rendered_verbatim_by_every_prompt_kind(tmp_path):
    text = " | ".join(payloads(tmp_path))
    record = {"instruction": text, "input": text, "output": text}
    example = {"input": text, "output": "a", "explanation": text}
    task = TaskSpec(name="t", kind="classification", instruction=text, input_description=text, labels=["a", "b"],
                    label_descriptions={"a": text, "b": text}, definition=text, positive_examples=[example],
                    negative_examples=[example], examples=[example, {**example, "output": "b"}]).model_dump()
    examples = task["examples"]
    calls = {"evol/deepen": {"instruction": text}, "evol/respond": {"instruction": text},
             "judge/quality": {"record": record}, "judge/evol_equal": {"record": record, "parent": record},
             "synth/input_first": {"task": task, "examples": examples},
             "synth/output_first": {"task": task, "examples": examples, "label": "a"},
             "synth/label": {"task": task, "examples": examples, "input": text},
             "synth/output": {"task": task, "examples": examples, "input": text},
             "templates/paraphrase": {"template": text},  # a FLAN template's own text, sent to be reworded
             "self_instruct/new_tasks": {"tasks": [text] * 8, "up_to": 15}}
    for name, variables in calls.items():
        for mode in ("chat", "completion"):
            built = load_prompt(name).build(mode, **variables)
            rendered = built if isinstance(built, str) else "\n".join(m["content"] for m in built)
            assert text in rendered, (name, mode)
            for native in filter(None, [getattr(built, "chat_native", None)]):  # the form for chat-only servers
                assert text in "\n".join(m["content"] for m in native), (name, "chat-native")
    # A FLAN data row is data too: its fields go into the template as values.
    data = write(tmp_path / "mood.jsonl", jsonl({"text": text, "label": 1}))
    write(tmp_path / "flan" / "mood.yaml", FLAN_HEADER.format(data=data, instruction="How does the writer feel?"))
    source = load_source(FlanTaskConfig(task="mood"), "mood", root=tmp_path / "flan")
    row = source.templates.render(source.templates.spec.templates[0], source.rows[0][1])
    assert row["input"] == f"{text}\n\nOPTIONS:\n- sad\n- happy"
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize("escape", [
    pytest.param("{{ x.__class__.__mro__ }}", id="mro"),
    pytest.param("{% for c in ().__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}", id="subclasses"),
    pytest.param("{{ cycler.__init__.__globals__.os.system('touch PWNED') }}", id="os-system"),
    pytest.param("{{ x.format.__self__.__class__ }}", id="str-format-self"),
])
@pytest.mark.parametrize("where", ["messages", "completion"])
def test_prompt_file_reaching_python_internals_is_refused_and_runs_nothing(tmp_path, escape, where):
    escape = escape.replace("PWNED", str(tmp_path / "pwned"))
    content = json.dumps(escape)  # a YAML double-quoted scalar
    message_content = content if where == "messages" else "hi"
    write(tmp_path / "evil.yaml", f"messages:\n  - role: user\n    content: {message_content}\n"
                                  + (f"completion: {content}\n" if where == "completion" else ""))
    prompt = load_prompt("evil", root=tmp_path)
    with pytest.raises(UserError) as caught:
        prompt.build("chat" if where == "messages" else "completion", x="a")
    message = str(caught.value)
    assert f"{tmp_path / 'evil.yaml'}: cannot render" in message
    assert "is unsafe" in message and "Refused by the sandbox (SecurityError)" in message
    assert not (tmp_path / "pwned").exists()
    load_prompt.cache_clear()
