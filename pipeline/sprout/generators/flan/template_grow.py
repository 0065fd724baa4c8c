"""`sprout templates grow`: ask the model for new wordings of a FLAN template set, check them, write them for review.

A variant is kept only if it reads exactly the placeholders of the template it rewords (each as often; a dropped or
invented placeholder is a counted reject naming it), still obeys the set's rules (e.g. the options block ends a
classification template), and passes ROUGE-L against every existing and already kept template. Kept variants go to
a new file (`<task>.grown.yaml` by default) that is never used until someone points a config at it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import Field

from sprout.backends.config import BackendConfig, LocalBackendConfig
from sprout.config.base import SamplingConfig, Strict
from sprout.config.paths import OutputFile
from sprout.core.errors import UserError
from sprout.core.parsing import clean_variant
from sprout.core.prompts import load_prompt
from sprout.filters.fast_rouge import FastRougeIndex
from sprout.generators.flan.templates import SPECIAL, FlanTemplate, TemplateSet, load_template_set
from sprout.io.jsonl import atomic_write

NAME = "templates_grow"
PLACEHOLDER = re.compile(r"\{\{-?\s*([A-Za-z_]\w*)\s*-?\}\}")


class TemplatesGrowConfig(Strict):
    seed: int = 42
    cache: OutputFile = Path("out/cache/responses.sqlite")
    backend: BackendConfig = LocalBackendConfig()
    variants: int = Field(2, gt=0, description="new wordings asked for per template")
    rouge_l_threshold: float = Field(0.7, ge=0, le=1)
    sampling: SamplingConfig = SamplingConfig(temperature=0.9, top_p=0.95, max_tokens=200)


@dataclass
class GrowResult:
    kept: list[FlanTemplate] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)  # {"template", "text", "rule", "reason"}

    def counts(self) -> dict[str, int]:
        return dict(Counter(r["rule"] for r in self.rejected))


def placeholder_counts(source: str) -> Counter[str]:
    return Counter(PLACEHOLDER.findall(source))


def check_variant(templates: TemplateSet, original: FlanTemplate, text: str) -> tuple[str, str] | None:
    """(rule, reason) why a reworded instruction cannot replace the original's, or None if it can."""
    want, got = placeholder_counts(original.instruction), placeholder_counts(text)
    if want != got:
        dropped, invented = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        parts = [f"dropped {dropped}" if dropped else "", f"invented {invented}" if invented else "",
                 "" if dropped or invented else f"placeholder counts {dict(got)} != {dict(want)}"]
        return "placeholders", "; ".join(p for p in parts if p)
    variant = original.model_copy(update={"instruction": text})
    fields = {p for t in templates.spec.templates for p in t.placeholders()}
    fields -= set(SPECIAL) if templates.classification else set()  # in a generation set `answer` is a field
    try:
        problems = templates.problems(variant, fields)
    except ValueError as exc:  # a Jinja syntax error in the reworded text
        return "jinja", str(exc)
    return ("template_rules", "; ".join(problems)) if problems else None


def grow_templates(templates: TemplateSet, config: TemplatesGrowConfig, backend) -> GrowResult:
    prompt, result = load_prompt("templates/paraphrase"), GrowResult()
    originals = templates.spec.templates
    sampling = config.sampling.to_sampling(seed=config.seed, n=config.variants)
    replies = backend.generate([prompt.render(template=t.instruction) for t in originals], sampling, generator=NAME)
    index = FastRougeIndex("rouge")
    for t in originals:
        index.add(t.instruction)
    names = {t.name for t in originals}
    for original, samples in zip(originals, replies, strict=True):
        for j, reply in enumerate(samples, 1):
            text = clean_variant(reply.text)
            why = ("parse", "the reply hit the length limit") if reply.finish_reason == "length" else \
                ("parse", "the reply is empty") if not text else check_variant(templates, original, text)
            if why is None and (hit := index.exceeds(text, config.rouge_l_threshold)):
                why = ("rouge_l", f"ROUGE-L {hit[0]:.3f} > {config.rouge_l_threshold} with {hit[1]!r}")
            if why:
                result.rejected.append({"template": original.name, "text": reply.text, "rule": why[0],
                                        "reason": why[1]})
                continue
            name = f"{original.name}_v{j}"
            while name in names:
                name += "x"
            names.add(name)
            index.add(text)
            result.kept.append(original.model_copy(update={"name": name, "instruction": text,
                                                           "grown_from": original.name}))
    return result


def write_grown(templates: TemplateSet, result: GrowResult, out: Path, force: bool) -> Path:
    """The kept variants as a template file of their own (same task header), plus the rejects beside it."""
    if out.exists() and not force:
        raise UserError(f"{out} exists (maybe with your review edits). Fix: pass --out elsewhere, or --force.")
    rejects = out.with_suffix(".rejected.jsonl")
    atomic_write(rejects, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in result.rejected))
    if not result.kept:  # a template file needs at least one template; the rejects say why there is none
        return rejects
    header = templates.spec.model_dump(mode="json", exclude={"templates"}, exclude_none=True)
    body = [t.model_dump(mode="json", exclude_none=True, exclude_defaults=True) | {"name": t.name}
            for t in result.kept]
    text = (f"# Grown by `sprout templates grow` from {templates.path.name}: review before use (FLAN config\n"
            f"# `task: {out.stem}` uses it). Every entry names the template it rewords in `grown_from`.\n")
    text += yaml.safe_dump(header | {"templates": body}, sort_keys=False, allow_unicode=True, width=120)
    atomic_write(out, text)
    return out


def default_out(task: str) -> Path:
    """Beside the template file: prompts/flan/<task>.grown.yaml, or <your file's stem>.grown.yaml."""
    templates = load_template_set(task)
    return templates.path.with_name(f"{templates.name}.grown.yaml")
