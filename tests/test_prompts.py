import json
import re

import pytest

from sprout.core.errors import UserError
from sprout.core.prompts import PROMPTS_DIR, load_prompt
from tests.conftest import write

PY_SOURCES = list((PROMPTS_DIR.parent / "pipeline").rglob("*.py"))


def test_new_tasks_prompt_numbers_the_list_and_prefills_the_next_number():
    messages = load_prompt("self_instruct/new_tasks").render(tasks=[f"Task number {i}." for i in range(8)])
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert "1. Task number 0.\n2. Task number 1." in messages[1]["content"]
    assert messages[1]["content"].rstrip().endswith("8. Task number 7.")
    assert messages[2]["content"] == "9."


def test_few_shot_examples_render_as_chat_turns():
    examples = [{"instruction": "Is it spam? Answer Spam or Ham.", "is_classification": True},
                {"instruction": "Write a haiku about rain.", "is_classification": False}]
    messages = load_prompt("self_instruct/is_classification").render(examples=examples, task="Sort these words.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in messages[2:5:2]] == ["Yes", "No"]
    assert messages[-1]["content"] == "Sort these words."


def test_instance_prompts_show_noinput_and_prefill():
    examples = [{"instruction": "Name a colour.", "instances": [("", "Red")]}]
    first = load_prompt("self_instruct/input_first").render(examples=examples, task="T", max_instances=5)
    assert "Input: <noinput>\nOutput: Red" in first[2]["content"]
    assert first[-1] == {"role": "assistant", "content": "Input:"}
    clf = [{"instruction": "Spam or Ham?", "instances": [("Win money", "Spam"), ("Lunch at 1?", "Ham")]}]
    second = load_prompt("self_instruct/output_first").render(examples=clf, task="T", max_instances=5)
    assert "Class label: Spam\nInput: Win money\n\nClass label: Ham\nInput: Lunch at 1?" in second[2]["content"]


def test_missing_variable_is_an_error_not_an_empty_string():
    with pytest.raises(UserError, match="undefined"):
        load_prompt("self_instruct/new_tasks").render()


def test_sandbox_blocks_unsafe_attribute_access(tmp_path):
    write(tmp_path / "evil.yaml", "messages:\n  - role: user\n    content: \"{{ x.__class__.__mro__ }}\"\n")
    with pytest.raises(UserError):
        load_prompt("evil", root=tmp_path).render(x="a")


def test_hash_changes_with_content(tmp_path):
    write(tmp_path / "p.yaml", "messages:\n  - role: user\n    content: hello\n")
    first = load_prompt("p", root=tmp_path).sha
    load_prompt.cache_clear()
    write(tmp_path / "p.yaml", "messages:\n  - role: user\n    content: hello!\n")
    assert load_prompt("p", root=tmp_path).sha != first
    load_prompt.cache_clear()


def test_bad_role_and_bad_jinja_are_user_errors(tmp_path):
    write(tmp_path / "r.yaml", "messages:\n  - role: robot\n    content: hi\n")
    with pytest.raises(UserError, match="unknown role"):
        load_prompt("r", root=tmp_path)
    write(tmp_path / "j.yaml", "messages:\n  - role: user\n    content: \"{{ unclosed\"\n")
    with pytest.raises(UserError, match="Jinja syntax error"):
        load_prompt("j", root=tmp_path)


def test_no_prompt_prose_in_python():
    """Prompts are data: no Python file holds a long English sentence aimed at a model."""
    pattern = re.compile(r"(You are|You write|Write up to|Continue the list|Reply with)")
    offenders = [str(p) for p in PY_SOURCES if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []


def test_completion_mode_uses_the_files_completion_template():
    tasks = [f"Task number {i}." for i in range(8)]
    text = load_prompt("self_instruct/new_tasks").build("completion", tasks=tasks)
    assert isinstance(text, str) and "<|im_start|>" not in text
    assert "1. Task number 0.\n2. Task number 1." in text and text.endswith("8. Task number 7.\n9.")
    chat = load_prompt("self_instruct/new_tasks").build("chat", tasks=tasks, up_to=15)
    assert chat[-1] == {"role": "assistant", "content": "9."}
    # Its chat-native form (for servers that cannot continue a prefill) asks for the same items as a new message.
    assert chat.chat_native[-1]["role"] == "user" and "Write tasks 9 to 15" in chat.chat_native[-1]["content"]
    assert all(task in chat.chat_native[-1]["content"] for task in tasks)


def test_completion_mode_without_a_template_joins_the_messages_and_ends_with_the_prefill():
    examples = [{"instruction": "Name a colour.", "instances": [("", "Red")]}]
    prompt = load_prompt("self_instruct/input_first")
    text = prompt.build("completion", examples=examples, task="Name a fruit.", max_instances=5)
    messages = prompt.render(examples=examples, task="Name a fruit.", max_instances=5)
    assert text == "\n\n".join(m["content"] for m in messages)
    assert text.endswith("Task: Name a fruit.\n\nInput:")


def test_a_broken_completion_template_is_a_user_error(tmp_path):
    write(tmp_path / "p.yaml", "messages:\n  - {role: user, content: hi}\ncompletion: '{% for x in %}'\n")
    with pytest.raises(UserError, match="completion"):
        load_prompt("p", root=tmp_path)


@pytest.mark.parametrize("template", [
    "{{ 'a' * 10**10 }}", "{{ ['a'] * 10**10 }}", "{{ 9 ** 99999 }}", "{{ 'x'|center(10**10) }}",
    "{{ 'x'|indent(10**10) }}", "{{ 'x'.rjust(10**10) }}", "{{ '%10000000000s' % 'x' }}", "{{ '%*s' % (10**10, 'x') }}",
    "{{ '{:>10000000000}'.format('x') }}", "{{ '{0:>{1}}'.format('x', 10**10) }}",
])
def test_a_template_cannot_exhaust_memory(tmp_path, template):
    """A short template must not build gigabytes: refused by the sandbox, at once, as a user error."""
    write(tmp_path / "greedy.yaml", f"messages:\n  - role: user\n    content: {json.dumps(template)}\n")
    with pytest.raises(UserError, match="Refused by the sandbox"):
        load_prompt("greedy", root=tmp_path).render()
    load_prompt.cache_clear()


def test_the_bounds_leave_ordinary_templates_alone(tmp_path):
    template = ("{{ '-' * 20 }}|{{ 2 ** 10 }}|{{ text|center(9) }}|{{ '%5s' % text }}|{{ '{:>6}'.format(text) }}|"
                "{{ '{0:>{1}}'.format(text, 5) }}|{{ '{}'.format(12345678) }}|{{ 12345678|round|int }}|"
                "{{ text|truncate(5000) }}")
    write(tmp_path / "ordinary.yaml", f"messages:\n  - role: user\n    content: {json.dumps(template)}\n")
    rendered = load_prompt("ordinary", root=tmp_path).render(text="abc")[0]["content"]
    assert rendered == "--------------------|1024|   abc   |  abc|   abc|  abc|12345678|12345678|abc"
    load_prompt.cache_clear()


def test_every_prefilled_prompt_has_a_chat_native_form_without_the_prefill():
    """A chat-only endpoint cannot continue a prefill: each prompt file ending in one carries its `chat:` form."""
    prefilled = []
    for path in sorted(PROMPTS_DIR.rglob("*.yaml")):
        name = str(path.relative_to(PROMPTS_DIR).with_suffix(""))
        if name.startswith("flan/"):  # template sets, not chat prompts
            continue
        prompt = load_prompt(name)
        last = prompt.messages[-1]
        if isinstance(last, tuple) and last[0] == "assistant":
            prefilled.append(name)
            assert prompt.chat is not None, f"{name}: ends in a prefill and has no `chat:` form"
            assert prompt.chat[-1][0] == "user"
    assert prefilled == ["self_instruct/input_first", "self_instruct/new_tasks", "self_instruct/output_first"]


def test_a_chat_native_answer_becomes_the_continuation_of_the_prefill():
    from sprout.backends.base import continuation

    assert continuation("9.", "9. Name a bird.\n10. Sort the list.") == " Name a bird.\n10. Sort the list."
    assert continuation("Input:", "  Input: a text\nOutput: b") == " a text\nOutput: b"
    # An answer that does not start with the prefill is kept whole, for the parser to judge.
    assert continuation("Class label:", "Sure! Class label: Yes") == "Sure! Class label: Yes"


def test_a_chat_form_ending_in_a_prefill_is_refused(tmp_path):
    write(tmp_path / "p.yaml", "messages:\n  - {role: user, content: hi}\n  - {role: assistant, content: 'A:'}\n"
                               "chat:\n  - {role: user, content: hi}\n  - {role: assistant, content: 'A:'}\n")
    with pytest.raises(UserError, match="must not end in an assistant message"):
        load_prompt("p", tmp_path)
