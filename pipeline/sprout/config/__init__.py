"""Run configuration: YAML validated by pydantic. A bad key names itself, its line and the valid keys; exit 2."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from sprout.core.errors import UserError
from sprout.core.seeds import read_text
from sprout.filters.row_index import DedupOn


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingConfig(Strict):
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int = Field(256, gt=0)
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0


class PriceConfig(Strict):
    """What the model's provider charges, per million tokens; cached answers cost nothing."""

    input_per_million: float = Field(ge=0)
    output_per_million: float = Field(ge=0)
    currency: str = "USD"


class BackendConfig(Strict):
    kind: Literal["local", "openai", "vllm"] = "local"
    # local: `embedded` or a model folder; openai: the served model's name; vllm: `embedded`, a folder or a hub id
    model: str = "embedded"
    batch_size: int | None = Field(None, gt=0, description="local: rows per forward pass (default: 32 on the CPU, "
                                   "128 on CUDA)")
    threads: int | None = Field(None, gt=0)
    device: str = Field("auto", description="local: auto (CUDA when present, bf16; else CPU, fp32), cpu, cuda, "
                        "cuda:N")
    # kind: openai (any OpenAI-compatible server); a list of base URLs is a pool (least outstanding requests first)
    base_url: str | tuple[str, ...] | None = None
    api_key_env: str | None = Field(None, description="name of the environment variable holding the API key")
    max_concurrency: int = Field(8, gt=0)
    timeout: float = Field(120.0, gt=0)
    max_retries: int = Field(5, ge=0, description="per request, by the client (backoff with jitter, Retry-After)")
    set_aside_after: int = Field(3, gt=0, description="failed tries in a row before a server is set aside")
    set_aside_for: float = Field(30.0, ge=0, description="seconds a failing server gets no requests")
    prefill: Literal["auto", "continue", "completions", "chat"] = Field(
        "auto", description="how a prompt ending in a prefill reaches the server: continue_final_message (vLLM, "
        "SGLang), raw text on /v1/completions, or the prompt file's chat-native form (chat-only hosts); auto finds "
        "out once per server")
    token_field: Literal["auto", "max_tokens", "max_completion_tokens"] = Field(
        "auto", description="the request field for the token limit; auto sends max_tokens until a server asks for "
        "max_completion_tokens (reasoning models)")
    max_failure_rate: float = Field(0.2, ge=0, le=1, description="share of requests failing after retries (at "
                                    "least 5) that stops the run; fewer are recorded as backend_error rejects")
    price: PriceConfig | None = Field(None, description="optional: cost in the summary, report and --dry-run")
    # kind: vllm (in-process vLLM on this machine's GPUs)
    tensor_parallel_size: int = Field(1, gt=0)
    data_parallel_size: int = Field(1, gt=0, description="vllm: model replicas (vLLM's own option, passed through)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    max_model_len: int | None = Field(None, gt=0)
    dtype: str = "auto"

    @model_validator(mode="after")
    def _openai_needs_a_server(self) -> BackendConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("kind openai needs `base_url:` (e.g. http://localhost:8000/v1, or a list for a pool)")
        return self

    @property
    def base_urls(self) -> list[str]:
        return [self.base_url] if isinstance(self.base_url, str) else list(self.base_url or ())


PromptMode = Literal["chat", "completion"]
MODE_HELP = "chat: messages through the chat template; completion: one raw text (base models), see prompts/README.md"


class SelfInstructConfig(Strict):
    mode: PromptMode = Field("chat", description=MODE_HELP)
    target: int = Field(40, gt=0, description="new tasks to grow (each with at least one accepted instance)")
    requests_per_batch: int = Field(8, gt=0, description="list-continuation prompts per proposal round")
    tasks_per_batch: int = Field(16, gt=0, description="tasks taken from the backlog for instances per batch")
    max_batches: int = Field(40, gt=0, description="stop even if the target is not reached")
    in_context: int = Field(8, gt=1)
    from_seeds: int = Field(6, gt=0)
    list_stops_at: int = Field(16, gt=2, description="the model may continue the list up to this item, exclusive")
    instances_per_task: int = Field(5, gt=0)
    classify_examples: int = Field(8, ge=2)
    instance_examples: int = Field(2, ge=1, description="seed tasks shown as worked examples per instance prompt")
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.5, presence_penalty=2.0, max_tokens=320)
    classify_sampling: SamplingConfig = SamplingConfig(temperature=0.0, max_tokens=4)
    instance_sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=256)


BLACKLIST = ["image", "images", "graph", "graphs", "picture", "pictures", "file", "files", "map", "maps",
             "draw", "plot", "go to", "video", "audio", "music", "flowchart", "diagram"]
SCAFFOLD = ["#The Given Prompt#", "#Rewritten Prompt#", "#Created Prompt#", "given prompt", "rewritten prompt",
            "created prompt"]
REFUSALS = ["sorry", "as an AI", "as a language model", "I cannot", "I can't", "I am unable", "I'm unable",
            "I apologize", "I won't be able"]
# Rule names per level; filters/build.py makes each one. Order here is the default order: cheap first.
TASK_RULES = ["word_count", "blacklist", "banned_prefix", "leading_char", "scaffold_copy", "rouge_l"]
INSTANCE_RULES = ["max_instances", "conflicting_outputs", "duplicate_instance", "empty_output", "input_equals_output",
                  "trailing_colon", "format_leak", "input_length", "output_length", "refusal", "punct_stopwords_only",
                  "exact_duplicate"]
# Rules for generators whose records share one instruction (pair synthesis): dedup on the input instead.
PAIR_RULES = ["input_length", "empty_output", "input_equals_output", "trailing_colon", "format_leak", "refusal",
              "input_rouge_l", "exact_duplicate"]
# FLAN expansion renders human-written rows: no instruction dedup (templates of one row share their text).
FLAN_RULES = ["empty_output", "input_equals_output", "format_leak", "input_length", "output_length",
              "exact_duplicate"]
# Opt-in rules: in no default list, a user lists them. `decontamination` needs eval files (decontaminate_against).
OPT_IN_RULES = ["decontamination"]
KNOWN_RULES = set(TASK_RULES) | set(INSTANCE_RULES) | set(PAIR_RULES) | set(FLAN_RULES) | set(OPT_IN_RULES)


def _known_rules(names: list[str]) -> list[str]:
    unknown = [n for n in names if n not in KNOWN_RULES]
    if unknown:
        raise ValueError(f"unknown rule(s) {unknown}; valid rules: {', '.join(sorted(KNOWN_RULES))}")
    return names


RuleList = Annotated[list[str], AfterValidator(_known_rules)]


class JudgeConfig(Strict):
    """An LLM-judge rule: the prompt (under prompts/), which verdict words keep or drop, and its own model."""

    name: str
    prompt: str
    stage: Literal["tasks", "instances"] = "instances"
    generators: list[Literal["all", "self_instruct", "evol_instruct", "pair_synthesis", "flan", "filter"]] = Field(
        default_factory=lambda: ["all"], min_length=1, description="the generators whose records it judges (`filter`: "
        "sprout filter's rows); `all` by default")
    keep: list[str] | None = None  # default: the prompt file's `verdicts.keep`
    drop: list[str] | None = None
    backend: BackendConfig | None = None  # default: the run's backend
    sampling: SamplingConfig = SamplingConfig(temperature=0.0, max_tokens=8)


def _usable_judge(judge: JudgeConfig) -> JudgeConfig:
    """A judge's prompt loads and its verdict words can decide: checked with the config, so a bad judge is a config
    error before a run writes anything, not a crash after its first batch."""
    from sprout.core.prompts import load_prompt  # here, not at import: prompts is only read when a judge is configured

    try:
        prompt = load_prompt(judge.prompt)
    except UserError as exc:
        raise ValueError(f"judge {judge.name!r}: {exc.message} Fix: `prompt:` names a file under prompts/ without "
                         ".yaml, e.g. judge/quality") from None
    verdicts = prompt.meta.get("verdicts")
    verdicts = verdicts if isinstance(verdicts, dict) else {}
    keep, drop = judge.keep or verdicts.get("keep") or [], judge.drop or verdicts.get("drop") or []
    if not keep and not drop:
        raise ValueError(f"judge {judge.name!r}: no verdict words; set `keep:`/`drop:` here or `verdicts: {{keep: "
                         f"[...], drop: [...]}}` in {prompt.path}")
    overlap = sorted({str(v).lower() for v in keep} & {str(v).lower() for v in drop})
    if overlap:
        raise ValueError(f"judge {judge.name!r}: verdict word(s) {overlap} both keep and drop; list each once")
    return judge


def _eval_file(path: Path) -> Path:
    """An eval file for the `decontamination` rule exists: checked with the config, not when the stage is built."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "no such file"
        raise ValueError(f"{path}: {what}. Fix: name an eval file (.jsonl, .json array, or .txt with one item a line)")
    return path


class FilterConfig(Strict):
    task_rules: RuleList = Field(default_factory=lambda: list(TASK_RULES))
    instance_rules: RuleList = Field(default_factory=lambda: list(INSTANCE_RULES))
    min_words: int = Field(4, ge=0, description="keep instructions with more than 3 words")
    max_words: int = Field(150, gt=0)
    input_max_words: int = Field(1000, gt=0)
    output_min_words: int = Field(1, ge=0)
    output_max_words: int = Field(1000, gt=0)
    blacklist: list[str] = Field(default_factory=lambda: list(BLACKLIST))
    banned_prefixes: list[str] = Field(default_factory=lambda: ["Write a program"])
    format_markers: list[str] = Field(default_factory=lambda: ["Input:", "Output:", "Class label:", "Task:"])
    scaffold_phrases: list[str] = Field(default_factory=lambda: list(SCAFFOLD))
    refusal_phrases: list[str] = Field(default_factory=lambda: list(REFUSALS))
    refusal_max_words: int = Field(80, gt=0, description="a refusal phrase drops outputs shorter than this")
    rouge_l_threshold: float = Field(0.7, ge=0, le=1)
    input_rouge_l_threshold: float = Field(0.7, ge=0, le=1, description="input_rouge_l: for synthesised inputs")
    rouge_tokenizer: Literal["rouge", "unicode"] = "rouge"
    dedup_on: DedupOn = Field("instruction", description="what `rouge_l` compares: instruction (Self-Instruct's "
                              "task-level rule), instruction+input, or all (instruction, input and output: rows are "
                              "near-duplicates only when each field is)")
    max_instances_per_task: int = Field(5, gt=0)
    judges: list[Annotated[JudgeConfig, AfterValidator(_usable_judge)]] = Field(default_factory=list)
    # The opt-in `decontamination` rule (see pipeline/decontaminate.py): list it in a rule list to use it.
    decontaminate_against: list[Annotated[Path, AfterValidator(_eval_file)]] = Field(
        default_factory=list, description="eval files: drop records sharing an n-gram with any of their items")
    decontamination_n: int = Field(13, gt=0, description="tokens per n-gram")
    decontamination_min_tokens: int = Field(8, gt=0, description="an eval text shorter than n tokens but at least "
                                            "this long must appear whole; shorter ones are not indexed")
    decontamination_fields: list[Literal["instruction", "input", "output"]] = Field(
        default_factory=lambda: ["instruction", "input"], min_length=1, description="record fields checked")
    decontamination_eval_field: str | None = Field(None, description="index only this field of each eval item "
                                                   "(default: every string in it, nested ones too)")

    @model_validator(mode="after")
    def _decontamination_needs_eval_files(self) -> FilterConfig:
        listed = [key for key in ("task_rules", "instance_rules") if "decontamination" in getattr(self, key)]
        if listed and not self.decontaminate_against:
            raise ValueError(f"{listed[0]} lists `decontamination` but `decontaminate_against` names no eval file. "
                             "Fix: add `decontaminate_against: [path/to/eval.jsonl]` under `filters:`, or drop the "
                             "rule")
        return self


EVOL_OPERATIONS = ["add_constraints", "deepen", "concretize", "increase_reasoning", "complicate_input", "breadth"]


def _known_operations(weights: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(weights) - set(EVOL_OPERATIONS))
    if unknown:
        raise ValueError(f"unknown operation(s) {unknown}; valid: {', '.join(EVOL_OPERATIONS)}")
    if not any(w > 0 for w in weights.values()) or any(w < 0 for w in weights.values()):
        raise ValueError("weights must be >= 0 with at least one > 0")
    return weights


class EvolInstructConfig(Strict):
    """Evol-Instruct (Xu et al., 2023): in-depth and in-breadth evolution in rounds, with the paper's elimination."""

    mode: PromptMode = Field("chat", description=MODE_HELP)
    source: Literal["pool", "seeds", "file"] = Field(
        "pool", description="in `sprout data`: the grown tasks, the seed tasks, or `input` (sprout evolve: --input)")
    input: Path | None = None
    rounds: int = Field(4, gt=0, description="generations: each round gives every row one evolution attempt")
    per_round: int | None = Field(None, gt=0, description="optional cap on attempts per round, for sampling a big "
                                  "dataset: a seeded sample of this many rows is evolved, the rest are left out "
                                  "(and counted); null = every row, as the paper")
    step_rows: int = Field(64, gt=0, description="rows attempted together within a round: a step's answers are "
                           "cached and its lines written at once, so a killed run loses at most one step")
    keep_original: bool = Field(False, description="sprout evolve: write the input rows too, beside their "
                                "evolutions (as WizardLM's data mixes them)")
    operations: Annotated[dict[str, float], AfterValidator(_known_operations)] = Field(
        default_factory=lambda: dict.fromkeys(EVOL_OPERATIONS, 1.0))
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=160)
    response_sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=256)
    judge: Annotated[JudgeConfig, AfterValidator(_usable_judge)] = JudgeConfig(name="equal", prompt="judge/evol_equal")
    rules: RuleList = Field(default_factory=lambda: ["word_count", "scaffold_copy", "empty_output", "refusal",
                                                     "punct_stopwords_only", "rouge_l"])

    @model_validator(mode="after")
    def _file_needs_input(self) -> EvolInstructConfig:
        if self.source == "file" and self.input is None:
            raise ValueError("source `file` needs `input: path/to/data.jsonl`")
        return self


class PairSynthesisConfig(Strict):
    """Pairs for one user task (a task spec under seeds/tasks/): input-first and output-first, labels balanced."""

    task: Path
    mode: PromptMode = Field("chat", description=MODE_HELP)
    n: int = Field(24, gt=0, description="accepted pairs to make")
    input_first_share: float = Field(0.5, ge=0, le=1, description="classification; generation is input-first")
    label_distribution: dict[str, float] | None = Field(None, description="label -> weight; default uniform")
    requests_per_batch: int = Field(16, gt=0)
    max_batches: int = Field(20, gt=0, description="stop even if `n` is not reached")
    examples_shown: int = Field(4, gt=0, description="task examples shown per prompt, drawn afresh each time")
    verify_output_first: bool = Field(False, description="ask the label prompt about output-first inputs too")
    input_sampling: SamplingConfig = SamplingConfig(temperature=1.0, top_p=0.95, max_tokens=96)
    label_sampling: SamplingConfig = SamplingConfig(temperature=0.0, max_tokens=8)
    output_sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_tokens=256)
    rules: RuleList = Field(default_factory=lambda: list(PAIR_RULES))

    @model_validator(mode="after")
    def _weights(self) -> PairSynthesisConfig:
        weights = self.label_distribution
        if weights is not None and (not any(w > 0 for w in weights.values()) or any(w < 0 for w in weights.values())):
            raise ValueError("label_distribution: weights must be >= 0 with at least one > 0")
        return self


class FlanTaskConfig(Strict):
    """One template set under prompts/flan/ and the rows it expands (by default the file its `data:` names)."""

    task: str
    data: Path | None = Field(None, description="any datasets-loadable local file or saved dataset folder")
    split: str = "train"
    fields: dict[str, str] = Field(default_factory=dict, description="placeholder -> column of the data file")
    max_rows: int | None = Field(None, gt=0)


def _task_entries(value: Any) -> Any:
    return [{"task": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value


class FlanConfig(Strict):
    """FLAN-style expansion: every sampled (row, template) pair becomes a record; no model call."""

    tasks: Annotated[list[FlanTaskConfig], BeforeValidator(_task_entries)] = Field(min_length=1)
    templates_per_row: int | None = Field(3, gt=0, description="templates sampled per row; null = all of them")
    inverted_share: float = Field(0.3, ge=0, le=1, description="share of the sampled templates that are inverted")
    rules: RuleList = Field(default_factory=lambda: list(FLAN_RULES))


class GeneratorsConfig(Strict):
    self_instruct: SelfInstructConfig = SelfInstructConfig()
    evol_instruct: EvolInstructConfig | None = None  # set it to evolve the grown tasks after Self-Instruct
    pair_synthesis: list[PairSynthesisConfig] = Field(default_factory=list)  # one entry per user task
    flan: FlanConfig | None = None


def in_the_way(path: Path, folder: bool) -> str | None:
    """Why `path` cannot be made or used as an output folder (or file), or None: checked before any work (with the
    config, or by a command for its --out), because finding out at the first write leaves a half-made run behind."""
    try:
        if path.exists():
            if folder != path.is_dir():
                found, wanted = ("file", "folder") if folder else ("folder", "file")
                return f"{path} is a {found}, not the {wanted} the run writes"
            return None
        blocker = next((p for p in path.parents if p.exists()), Path("."))
        if not blocker.is_dir():
            return f"{blocker} is a file, so {path} cannot be made"
        if not os.access(blocker, os.W_OK | os.X_OK):
            return f"{blocker} is not writable, so {path} cannot be made"
    except OSError as exc:
        return f"not a usable path ({exc.strerror or exc})"
    return None


def _output_folder(path: Path) -> Path:
    if problem := in_the_way(path, folder=True):
        raise ValueError(f"{problem}. Fix: name a folder that does not exist yet (it is made) or a run folder")
    return path


def _output_file(path: Path) -> Path:
    if problem := in_the_way(path, folder=False):
        raise ValueError(f"{problem}. Fix: name a file path, e.g. out/cache/responses.sqlite")
    return path


OutputFolder = Annotated[Path, AfterValidator(_output_folder)]  # for every run config's `out_dir`
OutputFile = Annotated[Path, AfterValidator(_output_file)]  # for `cache`


class DataConfig(Strict):
    out_dir: OutputFolder = Path("out/data")
    seed: int = 42
    seeds: list[Path] = Field(default_factory=lambda: [Path("seeds/general.jsonl")], min_length=1)
    cache: OutputFile = Path("out/cache/responses.sqlite")
    backend: BackendConfig = BackendConfig()
    generators: GeneratorsConfig = GeneratorsConfig()
    filters: FilterConfig = FilterConfig()

    @model_validator(mode="after")
    def _decontamination_needs_eval_files(self) -> DataConfig:
        gens = self.generators
        lists = {"generators.evol_instruct.rules": gens.evol_instruct.rules if gens.evol_instruct else [],
                 "generators.flan.rules": gens.flan.rules if gens.flan else [],
                 **{f"generators.pair_synthesis.{i}.rules": p.rules for i, p in enumerate(gens.pair_synthesis)}}
        listed = [key for key, rules in lists.items() if "decontamination" in rules]
        if listed and not self.filters.decontaminate_against:
            raise ValueError(f"{listed[0]} lists `decontamination` but `filters.decontaminate_against` names no eval "
                             "file. Fix: add `decontaminate_against: [path/to/eval.jsonl]` under `filters:`")
        return self


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation: Model, Model | None, list[Model]."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for arg in get_args(annotation) if (m := _model_in(arg))), None)


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    for part in loc:
        if isinstance(part, int):  # a list index: the model stays the list's item model
            continue
        field = model.model_fields.get(str(part))
        model = _model_in(field.annotation) if field else None
        if model is None:
            return None
    return model


def _line_of(node: yaml.Node | None, loc: tuple) -> int | None:
    """Line of the YAML key at `loc`, so the message points where the user must edit."""
    line = None
    for part in loc:
        if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
            continue
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if k.value == str(part)), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line


def _yaml_problem(exc: Exception) -> str:
    """What is wrong with a YAML text, for a message (the line goes in front, where there is one)."""
    if isinstance(exc, yaml.YAMLError):
        return str(getattr(exc, "problem", None) or exc)
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc)  # ValueError: e.g. an integer of more than 4,300 digits


def _apply_override(data: dict, assignment: str) -> None:
    key, sep, value = assignment.partition("=")
    if not sep or not key:
        raise UserError(f"--set {assignment!r}: expected KEY=VALUE, e.g. --set generators.self_instruct.target=10")
    *parents, leaf = key.split(".")
    node = data
    for part in parents:
        if isinstance(node, list):  # stages.0.size: a list item, counted from 0
            node = node[_list_index(node, part, assignment)]
        else:
            node = node.setdefault(part, {})
        if not isinstance(node, dict | list):
            raise UserError(f"--set {assignment!r}: {part!r} is not a section")
    if isinstance(node, list):
        leaf = _list_index(node, leaf, assignment)
    try:
        node[leaf] = yaml.safe_load(value)
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise UserError(f"--set {assignment[:200]!r}: the value is not valid YAML ({_yaml_problem(exc)}). Fix: "
                        f"quote a plain string, e.g. --set '{key}=\"...\"'; a list is [a, b].") from None


def _list_index(items: list, part: str, assignment: str) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise UserError(f"--set {assignment[:200]!r}: {part!r} is not an item of that list (it has {len(items)}; "
                        f"count from 0, e.g. 0 for the first).")
    return int(part)


def _repeated_keys(node: yaml.Node | None) -> list[tuple[str, int, int]]:
    """(key, line, first line) for every key given twice in one mapping, anywhere in the document."""
    found = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                line = key.start_mark.line + 1
                if key.value in first:
                    found.append((key.value, line, first[key.value]))
                first.setdefault(key.value, line)
            found += _repeated_keys(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            found += _repeated_keys(item)
    return found


def load_config(path: Path | None, overrides: list[str] = (), model: type[BaseModel] = DataConfig,
                what: str = "config", options: dict[str, str] | None = None) -> Any:
    """The config file, then each `--set KEY=VALUE`, validated. `options` maps further assignments to the command
    line option that made them ({"out_dir=x": "--out"}), so a bad value is named the way the user gave it."""
    options = options or {}
    overrides = [*overrides, *options]
    text = ""
    if path is not None:
        text = read_text(Path(path), f"{what} file", "Fix: check the path (shipped configs are in configs/).")
    try:
        data = yaml.safe_load(text) or {}
        root = yaml.compose(text) if text else None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: invalid YAML: {_yaml_problem(exc)}. Fix the {what} there (a mapping of "
                        "`key: value` lines; lists as [a, b] or `- item` lines).") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: the {what} must be a mapping of keys, e.g. `out_dir: out/data`.")
    if repeated := _repeated_keys(root):
        raise UserError(f"invalid {what}; nothing was run:", [
            f"{path}:{line}: key {key!r} is given twice (first at line {first}); YAML would silently keep only the "
            "second. Fix: keep one of them" for key, line, first in repeated])
    for assignment in overrides:
        _apply_override(data, assignment)
    set_by = {tuple(a.partition("=")[0].split(".")): a for a in overrides}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            key = ".".join(str(p) for p in loc)
            # A value given with --set is named as such, not by the line of the file value it replaced.
            override = next((a for k, a in set_by.items() if tuple(map(str, loc[:len(k)])) == k), None)
            line = _line_of(root, loc)
            where = (f"{options[override]} {override.partition('=')[2][:200]!r}" if override in options
                     else f"--set {override[:200]!r}" if override
                     else f"{path}:{line}" if line else f"{path or 'config'}")
            if error["type"] == "extra_forbidden":
                parent = _model_at(model, loc[:-1])
                valid = ", ".join(parent.model_fields) if parent else "see configs/data.yaml"
                problems.append(f"{where}: unknown key {key!r}; valid keys here: {valid}")
            elif key:
                problems.append(f"{where}: key {key!r}: {error['msg'].removeprefix('Value error, ')}")
            else:  # a rule over several keys
                problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
        raise UserError(f"invalid {what}; nothing was run:", problems) from None


def dump_resolved(config: BaseModel) -> str:
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
