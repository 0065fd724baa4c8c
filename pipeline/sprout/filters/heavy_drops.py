"""The loud line: a rule that drops more than half of what it checked is said in the summary and every report, with
the config key that tunes it, because a user's dataset is precious and a mis-set rule can quietly eat most of it."""

from __future__ import annotations

# The config keys (under `filters:`) that tune each rule; a rule without one is tuned by taking it off its list.
TUNED_BY: dict[str, tuple[str, ...]] = {
    "word_count": ("min_words", "max_words"),
    "blacklist": ("blacklist",),
    "banned_prefix": ("banned_prefixes",),
    "scaffold_copy": ("scaffold_phrases",),
    "rouge_l": ("dedup_on", "rouge_l_threshold"),
    "input_rouge_l": ("input_rouge_l_threshold",),
    "max_instances": ("max_instances_per_task",),
    "conflicting_outputs": ("rouge_l_threshold",),
    "format_leak": ("format_markers",),
    "input_length": ("input_max_words",),
    "output_length": ("output_min_words", "output_max_words"),
    "refusal": ("refusal_phrases", "refusal_max_words"),
    "decontamination": ("decontaminate_against", "decontamination_n", "decontamination_fields"),
}

# Where each stage's rule list is set, per command (the run's report names its command).
_PREFIX = {"data": "generators.", "evolve": "", "synth": "", "flan": "", "filter": ""}
_LISTS = {"tasks": "filters.task_rules", "instances": "filters.instance_rules",
          "rows": "filters.task_rules or filters.instance_rules"}


def _rule_list(command: str, stage: str) -> str:
    if stage in _LISTS:
        return _LISTS[stage]
    prefix = _PREFIX.get(command, "")
    if stage == "evolutions":
        return f"{prefix}evol_instruct.rules"
    if stage.startswith("pairs:"):
        return f"{prefix}pair_synthesis[…].rules" if command == "data" else "synth.rules"
    if stage == "flan":
        return f"{prefix}flan.rules"
    return "the stage's rule list"


def _fix(command: str, stage: str, rule: str) -> str:
    if rule.startswith("judge:"):
        name = rule.split(":")[1]
        where = "evol_instruct.judge" if stage == "evolutions" else f"filters.judges (name {name})"
        return f"check the judge's prompt and verdicts ({where}), or remove the judge"
    keys = " or ".join(f"filters.{key}" for key in TUNED_BY.get(rule, ()))
    unlist = f"take {rule} out of {_rule_list(command, stage)}"
    return f"change {keys}, or {unlist}" if keys else unlist


def heavy_drops(stages: dict, command: str = "") -> list[str]:
    """One line per (stage, rule) that dropped more than half of what it checked. Drops decided outside the rules
    (parse failures, backend errors, quotas) are not rules a user tunes, so they are left out."""
    lines = []
    for stage, counts in stages.items():
        for rule, tally in (counts.get("rules") or {}).items():
            checked, dropped = tally.get("checked", 0), tally.get("dropped", 0)
            if checked and 2 * dropped > checked and not _outside_the_rules(rule):
                lines.append(f"rule {rule} ({stage}) dropped {dropped:,} of the {checked:,} it checked "
                             f"({dropped / checked:.0%}); if that is not what you want, {_fix(command, stage, rule)}.")
    return lines


def _outside_the_rules(rule: str) -> bool:
    return rule.startswith("parse:") or rule in ("backend_error", "not_needed", "target_reached", "label_quota_full",
                                                 "label_not_in_set", "label_mismatch")
