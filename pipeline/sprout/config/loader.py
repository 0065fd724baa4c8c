"""YAML config files and `--set KEY=VALUE` overrides, validated by a pydantic model.

Every problem names itself where the user must edit: the file and line of the key (or the `--set` or command line
option that gave the value), the key's dotted path, and for an unknown key the valid keys of its section. Nothing
runs until the whole config is valid: exit 2. Any sprout config (runs, task specs, mixes, training) loads here.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticUndefined

from sprout.core.errors import UserError
from sprout.core.seeds import read_text

# Keys that were renamed, per config section (the class name of its model, e.g. "FilterConfig"): old key -> new key.
# A config still using the old key is told the new one instead of "unknown key".
RENAMED_KEYS: dict[str, dict[str, str]] = {}


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The pydantic models inside an annotation: Model, Model | None, list[Model], a union of models."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models_in(arg)]


def _tags(members: list[type[BaseModel]]) -> tuple[str | None, dict[str, type[BaseModel]]]:
    """A discriminated union's tag field and its members by tag: the one-value Literal field they all have
    (`kind: Literal["openai"]`); (None, {}) for anything else."""
    for name in sorted(set.intersection(*(set(m.model_fields) for m in members))) if len(members) > 1 else ():
        values = [get_args(m.model_fields[name].annotation) for m in members]
        if all(get_origin(m.model_fields[name].annotation) is Literal and len(v) == 1 for m, v in zip(
                members, values, strict=True)):
            return name, {str(v[0]): m for m, v in zip(members, values, strict=True)}
    return None, {}


def _walk(model: type[BaseModel], loc: tuple) -> tuple[tuple, type[BaseModel] | None, dict, str | None]:
    """Follow an error location through the models: the location as the user writes it (pydantic puts a union's tag
    in it: `backend.openai.threads` is the user's `backend.threads`), the model of the section it ends in (None past
    a non-model), and the members of the last union passed by tag, with that tag (the backend's kind)."""
    clean, current, members, tag, parts = [], model, {}, None, list(loc)
    while parts:
        part = parts.pop(0)
        clean.append(part)
        if current is None or isinstance(part, int):  # a list index: the model stays the list's item model
            continue
        field = current.model_fields.get(str(part))
        found = _models_in(field.annotation) if field else []
        _, by_tag = _tags(found)
        if parts and str(parts[0]) in by_tag:
            members, tag = by_tag, str(parts.pop(0))
            current = by_tag[tag]
        else:
            current = found[0] if found else None
    return tuple(clean), current, members, tag


def _switch_kinds(model: type[BaseModel], before: dict, data: dict, overrides: list[str]) -> None:
    """`--set backend.kind=openai` over a file written for another kind switches that section: the file's keys the
    new kind does not have (`threads` of a local backend) are left out, so one config file serves every kind. A key
    given with --set is always checked, and so is a file that names one kind and keys of another."""
    set_paths = {tuple(a.partition("=")[0].split(".")) for a in overrides}
    for *parent, leaf in (path for path in set_paths if len(path) > 1):
        loc = tuple(int(p) if p.isdigit() else p for p in parent)
        _, holder, _, _ = _walk(model, loc[:-1])
        field = holder.model_fields.get(str(loc[-1])) if holder else None
        name, by_tag = _tags(_models_in(field.annotation)) if field else (None, {})
        section, old = _item(data, parent), _item(before, parent)
        if leaf != name or not isinstance(section, dict) or str(section.get(name)) not in by_tag:
            continue
        defaults = [t for t, m in by_tag.items() if m.model_fields[name].default is not PydanticUndefined]
        was = old.get(name) if isinstance(old, dict) and name in old else (defaults or [None])[0]
        new = by_tag[str(section[name])]
        if str(was) != str(section[name]):
            for key in [k for k in section if k not in new.model_fields and (*parent, k) not in set_paths]:
                del section[key]


def _item(data: Any, parts: list[str]) -> Any:
    """The value at a dotted --set path in the raw YAML data (list items by index), or None."""
    for part in parts:
        if isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        elif isinstance(data, dict):
            data = data.get(part)
        else:
            return None
    return data


def line_of(node: yaml.Node | None, loc: tuple) -> int | None:
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


def yaml_problem(exc: Exception) -> str:
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
        raise UserError(f"--set {assignment[:200]!r}: the value is not valid YAML ({yaml_problem(exc)}). Fix: "
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


def _unknown_key(model: type[BaseModel], loc: tuple, key: str) -> str:
    """An unknown key: renamed (say the new name), of another backend kind (say which), or a typo (list the valid)."""
    clean, parent, members, tag = _walk(model, loc[:-1])
    old = str(loc[-1])
    for cls in parent.__mro__ if parent else ():
        if new := RENAMED_KEYS.get(cls.__name__, {}).get(old):
            renamed = ".".join(map(str, (*clean, new)))
            return f"key {key!r} was renamed to {renamed!r}. Fix: use the new name"
    valid = ", ".join(parent.model_fields) if parent else "see configs/data.yaml"
    if tag is None:
        return f"unknown key {key!r}; valid keys here: {valid}"
    owners = [t for t, m in members.items() if old in m.model_fields]
    belongs = f" (it is a key of kind {' and '.join(owners)})" if owners else ""
    return f"key {key!r} is not a key of kind {tag}{belongs}; valid keys here: {valid}"


def _problem(model: type[BaseModel], error: dict, root, path, set_by: dict, options: dict) -> str:
    raw = tuple(error["loc"])
    loc, _, _, _ = _walk(model, raw)
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "union_tag_invalid":  # `kind: magic`: said like any other bad value, at the `kind` key
        loc += (error["ctx"]["discriminator"].strip("'"),)
        *tags, last = error["ctx"]["expected_tags"].split(", ")
        message = f"Input should be {', '.join(tags)} or {last}" if tags else f"Input should be {last}"
    key = ".".join(str(p) for p in loc)
    # A value given with --set is named as such, not by the line of the file value it replaced.
    override = next((a for k, a in set_by.items() if tuple(map(str, loc[:len(k)])) == k), None)
    line = line_of(root, loc)
    where = (f"{options[override]} {override.partition('=')[2][:200]!r}" if override in options
             else f"--set {override[:200]!r}" if override
             else f"{path}:{line}" if line else f"{path or 'config'}")
    if error["type"] == "extra_forbidden":
        return f"{where}: {_unknown_key(model, raw, key)}"
    return f"{where}: key {key!r}: {message}" if key else f"{where}: {message}"  # no key: a rule over several keys


def load_config(path: Path | None, overrides: list[str] = (), model: type[BaseModel] | None = None,
                what: str = "config", options: dict[str, str] | None = None) -> Any:
    """The config file, then each `--set KEY=VALUE`, validated by `model` (default: `sprout data`'s DataConfig).
    `options` maps further assignments to the command line option that made them ({"out_dir=x": "--out"}), so a bad
    value is named the way the user gave it."""
    if model is None:
        from sprout.config.run import DataConfig

        model = DataConfig
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
        raise UserError(f"{where}: invalid YAML: {yaml_problem(exc)}. Fix the {what} there (a mapping of "
                        "`key: value` lines; lists as [a, b] or `- item` lines).") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: the {what} must be a mapping of keys, e.g. `out_dir: out/data`.")
    if repeated := _repeated_keys(root):
        raise UserError(f"invalid {what}; nothing was run:", [
            f"{path}:{line}: key {key!r} is given twice (first at line {first}); YAML would silently keep only the "
            "second. Fix: keep one of them" for key, line, first in repeated])
    before = copy.deepcopy(data)
    for assignment in overrides:
        _apply_override(data, assignment)
    _switch_kinds(model, before, data, overrides)
    set_by = {tuple(a.partition("=")[0].split(".")): a for a in overrides}
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(model, error, root, path, set_by, options) for error in exc.errors()]
        raise UserError(f"invalid {what}; nothing was run:", problems) from None


def dump_resolved(config: BaseModel) -> str:
    """The config as it ran, every default filled in: written beside a run's outputs, and compared on a rerun."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
