"""Prompts are data: files under prompts/, rendered with sandboxed Jinja2 and StrictUndefined.

A prompt file is YAML with a `messages` list (role + Jinja content); its content hash goes into lineage and into
the cache key (through the rendered messages), so editing a prompt never serves stale cached answers.

A prompt serves both backend modes. Chat mode sends the rendered messages. Completion mode (base models, and the
list continuation Self-Instruct was designed for) sends one raw text: the file's `completion:` template when it has
one, else the messages' contents joined by blank lines, a final assistant message being the start of the answer.

Few-shot examples are real chat turns: an entry `{repeat: VAR, as: NAME, messages: [...]}` renders its messages
once per item of the list VAR (chat models follow demonstrated turns far better than examples pasted as text).
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment, SecurityError

from sprout.backends.base import Prefilled, as_completion, is_prefill
from sprout.core.errors import UserError

Message = dict[str, str]
# The root prompts/ folder (a link in the checkout, a copy in a wheel).
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "assets" / "prompts"

# A template may build text, not exhaust the machine: `{{ 'a' * 10**10 }}` would allocate 10 GB before any limit on
# the output could see it. Jinja's sandbox already caps `range()`; this one caps the other ways a short template
# builds a huge value: repetition, powers, padding widths (`%`, `.format`, `center`...) and filter arguments.
MAX_BUILT_LENGTH = 1_000_000
MAX_POWER_DIGITS = 4_300  # Python's own cap on int -> str conversion
_HUGE_WIDTH = re.compile(r"\d{7,}")  # a width or precision of a million or more in a format spec


def _refuse_huge_numbers(what: str, arguments: Iterable[Any]) -> None:
    for argument in arguments:
        if isinstance(argument, int) and not isinstance(argument, bool) and abs(argument) > MAX_BUILT_LENGTH:
            raise SecurityError(f"{what} was given {argument:,}; templates may build at most "
                                f"{MAX_BUILT_LENGTH:,} characters.")


def _bounded_filter(name: str, function: Callable) -> Callable:
    skip = 2 if getattr(function, "jinja_pass_arg", None) else 1  # (context or environment,) the filtered value

    @functools.wraps(function)  # keeps Jinja's pass_context/pass_environment mark
    def bounded(*args: Any, **kwargs: Any) -> Any:
        _refuse_huge_numbers(f"filter `{name}`", [*args[skip:], *kwargs.values()])
        return function(*args, **kwargs)
    return bounded


class BoundedSandbox(SandboxedEnvironment):
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if (isinstance(sequence, (str, list, tuple)) and isinstance(times, int)
                        and len(sequence) * times > MAX_BUILT_LENGTH):
                    raise SecurityError(f"`*` would build {len(sequence) * times:,} items; templates may build at "
                                        f"most {MAX_BUILT_LENGTH:,}.")
        if (operator == "**" and isinstance(left, (int, float)) and isinstance(right, (int, float))
                and abs(left) > 1 and right * math.log10(abs(left)) > MAX_POWER_DIGITS):
            raise SecurityError(f"`{left} ** {right}` is too large for a template.")
        if operator == "%" and isinstance(left, str):
            if _HUGE_WIDTH.search(left):
                raise SecurityError(f"the format {left[:40]!r} asks for a width of a million characters or more.")
            if "*" in left:  # a width given as an argument: '%*s' % (n, text)
                _refuse_huge_numbers("`%`", right if isinstance(right, tuple) else [right])
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)  # Jinja's safe stand-in for 'text'.format / .format_map
        if wrapped is None:
            return None
        specs = [spec for _, _, spec, _ in string.Formatter().parse(value.__self__) if spec]

        def bounded(*args: Any, **kwargs: Any) -> str:
            if any(_HUGE_WIDTH.search(spec) for spec in specs):
                raise SecurityError(f"the format {value.__self__[:40]!r} asks for a width of a million characters "
                                    "or more.")
            if any("{" in spec for spec in specs):  # a width given as an argument: '{0:>{1}}'
                _refuse_huge_numbers("`format`", [*args, *kwargs.values()])
            return wrapped(*args, **kwargs)
        return bounded

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805 - Jinja's signature
        if isinstance(getattr(__obj, "__self__", None), (str, list, tuple)):  # 'x'.center(10**10), 'x'.zfill(...)
            _refuse_huge_numbers(f"`{getattr(__obj, '__name__', 'a method')}`", [*args, *kwargs.values()])
        return super().call(__context, __obj, *args, **kwargs)


_ENV = BoundedSandbox(undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                      lstrip_blocks=True, autoescape=False)


@cache
def compiled(source: str) -> Template:
    """A template source compiled once: a generator renders the same few prompts thousands of times."""
    return _ENV.from_string(source)


ROLES = {"system", "user", "assistant"}


def sandbox() -> SandboxedEnvironment:
    """The one Jinja environment every prompt and template renders in: sandboxed, StrictUndefined."""
    return _ENV


# What rendering a template can raise besides TemplateError: a filter or operator given the wrong type
# (`{{ text | round }}`), a division by zero, a range the sandbox refuses to build. A template's fault, not sprout's.
RENDER_ERRORS = (TemplateError, TypeError, ValueError, ArithmeticError, LookupError)


def render_problem(exc: Exception) -> str:
    """Why a template could not render, for a user message; the sandbox's refusals say so plainly."""
    if isinstance(exc, SecurityError):
        return (f"{exc} Refused by the sandbox (SecurityError): templates and prompts may only read their "
                "variables, never Python internals (`__class__`, `__mro__`, `__subclasses__`...); nothing was "
                "executed. Fix: remove that expression")
    return f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Repeat:
    """Messages rendered once per item of a list variable (few-shot turns)."""

    variable: str
    alias: str
    messages: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Prompt:
    name: str
    path: Path
    messages: tuple[tuple[str, str] | Repeat, ...]  # (role, template source) or a repeated block
    sha: str
    meta: dict[str, Any]
    completion: str | None = None  # template source for completion mode
    chat: tuple[tuple[str, str] | Repeat, ...] | None = None  # chat-native form of a prefilled prompt

    def build(self, mode: str, **variables: Any) -> list[Message] | str:
        """What a backend is sent: messages in `chat` mode (a prefilled conversation carries its chat-native form,
        for servers that cannot continue a prefill), one raw text in `completion` mode."""
        if mode == "chat":
            messages = self.render(**variables)
            if self.chat is not None and is_prefill(messages):
                return Prefilled(messages, self._render_entries(self.chat, variables))
            return messages
        if self.completion is not None:
            try:
                return compiled(self.completion).render(**variables).rstrip()
            except RENDER_ERRORS as exc:
                raise UserError(f"{self.path}: cannot render the completion of prompt {self.name!r}: "
                                f"{render_problem(exc)}") from None
        return as_completion(self.render(**variables))

    def render(self, **variables: Any) -> list[Message]:
        return self._render_entries(self.messages, variables)

    def _render_entries(self, entries: tuple, variables: dict[str, Any]) -> list[Message]:
        try:
            rendered = []
            for entry in entries:
                if isinstance(entry, Repeat):
                    for item in variables[entry.variable]:
                        rendered += _render(entry.messages, {**variables, entry.alias: item})
                else:
                    rendered += _render((entry,), variables)
            return rendered
        except RENDER_ERRORS as exc:  # KeyError (a LookupError): a `repeat:` list variable not given
            raise UserError(f"{self.path}: cannot render prompt {self.name!r}: {render_problem(exc)}") from None


def _render(messages: tuple[tuple[str, str], ...], variables: dict[str, Any]) -> list[Message]:
    return [{"role": role, "content": compiled(source).render(**variables).strip()}
            for role, source in messages]


def _parse_messages(items: Any, path: Path, nested: bool = False) -> tuple:
    parsed: list = []
    for item in items:
        if not nested and isinstance(item, dict) and "repeat" in item:
            inner = _parse_messages(item["messages"], path, nested=True)
            parsed.append(Repeat(str(item["repeat"]), str(item.get("as", "item")), inner))
            continue
        role, source = str(item["role"]), str(item["content"])
        if role not in ROLES:
            raise UserError(f"{path}: unknown role {role!r}; use system, user or assistant.")
        try:
            _ENV.parse(source)
        except TemplateError as exc:
            raise UserError(f"{path}: Jinja syntax error: {exc}") from None
        parsed.append((role, source))
    return tuple(parsed)


@cache
def load_prompt(name: str, root: Path = PROMPTS_DIR) -> Prompt:
    """Load `prompts/<name>.yaml` (name may contain a subfolder, e.g. `self_instruct/new_tasks`)."""
    path = root / f"{name}.yaml"
    if not path.is_file():
        raise UserError(f"prompt {name!r} not found: expected {path}.")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
        messages = _parse_messages(data["messages"], path)
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise UserError(f"{path}: a prompt file needs `messages:` with role/content items ({exc}).") from None
    completion = data.get("completion")
    if completion is not None:
        try:
            _ENV.parse(str(completion))
        except TemplateError as exc:
            raise UserError(f"{path}: Jinja syntax error in `completion:`: {exc}") from None
    chat = None
    if data.get("chat") is not None:
        try:
            chat = _parse_messages(data["chat"], path)
        except (KeyError, TypeError) as exc:
            raise UserError(f"{path}: `chat:` needs role/content items like `messages:` ({exc}).") from None
        if chat and not isinstance(chat[-1], Repeat) and chat[-1][0] == "assistant":
            raise UserError(f"{path}: `chat:` is the form without a prefill: it must not end in an assistant "
                            "message.")
    meta = {k: v for k, v in data.items() if k not in ("messages", "completion", "chat")}
    return Prompt(name, path, messages, hashlib.sha256(raw).hexdigest()[:12], meta,
                  None if completion is None else str(completion), chat)


class PromptSet(dict):
    """A generator's prompts by key, built in the generator's mode (`chat` or `completion`)."""

    def __init__(self, prompts: dict[str, Prompt], mode: str):
        super().__init__(prompts)
        self.mode = mode

    def build(self, key: str, **variables: Any) -> list[Message] | str:
        return self[key].build(self.mode, **variables)
