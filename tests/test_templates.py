"""Tests for promptlab.templates: variables, strict rendering, sandbox, chat templates."""

from __future__ import annotations

import pytest

from promptlab.errors import (
    ConfigError,
    InvalidInputError,
    MissingVariablesError,
    PromptlabError,
    SandboxViolationError,
    TemplateError,
    TemplateSyntaxError,
)
from promptlab.templates import (
    ChatTemplate,
    Template,
    parse_prompt_text,
    render_string,
    variables,
)

# Copied verbatim from seeds/000_e961cd618f58d8d1.txt, "Dynamic Variables".
SEED_TEXT = """Prompt Template
======
System Message: You are a helpful writing assistant.
======
Review this content and make the following changes:
{{task}}
If no changes, do not output anything and explain why. If there are changes,
explain in a table what you changed and why.
======
{{content}}"""

SEED_USER_PROMPT = (
    "Review this content and make the following changes:\n{{task}}\n"
    "If no changes, do not output anything and explain why. If there are changes,\n"
    "explain in a table what you changed and why.\n======\n{{content}}"
)


# ---------------------------------------------------------------------------- variables


def test_variables_in_order_of_first_use_not_alphabetical():
    assert variables("{{zeta}} then {{alpha}} then {{zeta}} and {{mid}}") == ["zeta", "alpha", "mid"]


def test_variables_skip_loop_targets_and_loop_but_keep_iterables_and_filters_in_loop():
    text = (
        "{{ intro }}{% for doc in docs if doc.score > threshold %}"
        "{{ loop.index }}. {{ doc.title }} ({{ suffix }}){% endfor %}"
    )
    assert variables(text) == ["intro", "docs", "threshold", "suffix"]


def test_variables_skip_set_and_macro_names_but_keep_what_they_read():
    text = (
        "{% set greeting = 'Hi ' ~ who %}{{ greeting }}"
        "{% macro bullet(item) %}- {{ item }}{{ sep }}{% endmacro %}{{ bullet(first) }}"
    )
    assert variables(text) == ["who", "sep", "first"]


def test_variables_in_conditionals_in_source_order():
    text = "{% if mode == 'short' %}{{ a }}{% elif mode == 'long' %}{{ b }}{% else %}{{ c }}{% endif %}"
    assert variables(text) == ["mode", "a", "b", "c"]
    assert variables("{{ yes if cond else no }}") == ["yes", "cond", "no"]


def test_variables_of_hyphenated_name_is_subtraction():
    assert variables("{{user-id}}") == ["user", "id"]


def test_template_exposes_text_name_variables():
    t = Template("{{b}}{{a}}", name="greet")
    assert (t.text, t.name, t.variables) == ("{{b}}{{a}}", "greet", ["b", "a"])


# ---------------------------------------------------------------------------- rendering


def test_seed_style_variables_render():
    assert render_string("Write about {{topic}}.\n", {"topic": "ML"}) == "Write about ML.\n"


def test_loops_conditionals_and_filters_render():
    t = Template(
        "{% for d in docs %}{{ loop.index }}:{{ d | upper }}{% if not loop.last %}, {% endif %}{% endfor %}"
        "{% if docs | length > 1 %} ({{ docs | length }} docs){% endif %}"
    )
    assert t.render({"docs": ["a", "b"]}) == "1:A, 2:B (2 docs)"
    assert t.render({"docs": ["x"]}) == "1:X"


def test_namespace_range_and_dict_globals_still_work():
    text = "{% set ns = namespace(n=0) %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }} {{ dict(a=1)['a'] }}"
    assert render_string(text, {}) == "6 1"


def test_extra_variables_are_ignored():
    assert render_string("{{a}}", {"a": "1", "b": "unused", "c": 3}) == "1"


def test_input_values_are_data_not_template_code():
    assert render_string("{{a}}", {"a": "{{ 7 * 7 }}{% if 1 %}x{% endif %}"}) == "{{ 7 * 7 }}{% if 1 %}x{% endif %}"


def test_no_autoescape():
    assert render_string("{{a}}", {"a": "<b>&'\""}) == "<b>&'\""


# ---------------------------------------------------------------------------- missing


def test_one_missing_variable_named():
    with pytest.raises(MissingVariablesError) as err:
        Template("{{task}} {{content}}", name="writer").render({"task": "fix"})
    assert err.value.missing == ["content"]
    assert "'content'" in str(err.value) and "'writer'" in str(err.value)


def test_every_missing_variable_named_in_order_of_use():
    with pytest.raises(MissingVariablesError) as err:
        render_string("{{ c }} {{ a }} {{ present }} {% for x in items %}{{ x }}{% endfor %}", {"present": 1})
    assert err.value.missing == ["c", "a", "items"]
    assert all(f"'{n}'" in str(err.value) for n in ("c", "a", "items"))


def test_missing_error_is_a_template_error():
    with pytest.raises(TemplateError):
        render_string("{{ a }}", {})
    with pytest.raises(PromptlabError):
        render_string("{{ a }}", {})


def test_is_defined_guard_makes_variable_optional():
    t = Template("Hi{% if name is defined %} {{ name }}{% endif %}{% if mood is not defined %}.{% endif %}")
    assert t.variables == ["name", "mood"]
    assert t.required_variables == []
    assert t.render({}) == "Hi."
    assert t.render({"name": "Ada", "mood": "ok"}) == "Hi Ada"


def test_else_branch_of_undefined_test_and_inline_if_are_guarded():
    t = Template("{% if x is undefined %}none{% else %}{{ x }}{% endif %} {{ y if y is defined else '-' }}")
    assert t.variables == ["x", "y"]
    assert t.required_variables == []
    assert t.render({}) == "none -"
    assert t.render({"x": 1, "y": 2}) == "1 2"


def test_default_filter_makes_variable_optional():
    t = Template("{{ tone | default('neutral') }} {{ topic }} {{ extra | d('-') }}")
    assert t.variables == ["tone", "topic", "extra"]
    assert t.required_variables == ["topic"]
    assert t.render({"topic": "ML"}) == "neutral ML -"
    with pytest.raises(MissingVariablesError) as err:
        t.render({})
    assert err.value.missing == ["topic"]  # the optional ones are not blamed


def test_guarded_and_unguarded_use_is_required():
    t = Template("{% if x is defined %}{{ x }}{% endif %}{{ x }}")
    assert t.required_variables == ["x"]
    with pytest.raises(MissingVariablesError):
        t.render({})


def test_variable_in_branch_not_taken_is_not_needed():
    t = Template("{% if short %}{{ summary }}{% else %}{{ body }}{% endif %}")
    assert t.render({"short": True, "summary": "s"}) == "s"
    assert t.render({"short": False, "body": "b"}) == "b"


def test_missing_attribute_of_present_variable_is_a_template_error_with_line():
    with pytest.raises(TemplateError) as err:
        Template("line one\n{{ user.nickname }}", name="t").render({"user": {"name": "Ada"}})
    assert not isinstance(err.value, MissingVariablesError)
    assert "nickname" in str(err.value) and "line 2" in str(err.value)


def test_python_error_during_render_becomes_template_error():
    with pytest.raises(TemplateError) as err:
        render_string("ok\n\n{{ n / 0 }}", {"n": 1})
    assert "ZeroDivisionError" in str(err.value) and "line 3" in str(err.value)


def test_values_must_be_a_mapping():
    with pytest.raises(InvalidInputError, match="mapping"):
        Template("{{a}}").render(["a"])  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- syntax


def test_syntax_error_has_line_number():
    with pytest.raises(TemplateSyntaxError) as err:
        variables("first line\nsecond {{ oops }\nthird")
    assert err.value.lineno == 2
    assert "line 2" in str(err.value)


def test_syntax_error_names_template_and_unknown_filter_is_syntax_error():
    with pytest.raises(TemplateSyntaxError) as err:
        Template("{% if x %}never closed", name="broken")
    assert "'broken'" in str(err.value)
    with pytest.raises(TemplateSyntaxError, match="nosuchfilter"):
        Template("\n{{ x | nosuchfilter }}")


def test_include_import_extends_are_rejected():
    for text in ('{% include "other" %}', '{% import "m" as m %}', '{% extends "base" %}'):
        with pytest.raises(TemplateError, match="include"):
            Template(text)


# ---------------------------------------------------------------------------- sandbox


class Canary:
    """An input object whose private/side-effecting members must never run."""

    def __init__(self):
        self.fired: list[str] = []

    def _secret(self):
        self.fired.append("_secret")
        return "leaked"

    @property
    def _prop(self):
        self.fired.append("_prop")
        return "leaked"

    def hello(self):
        return "hello"


@pytest.mark.parametrize(
    "text",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ x.__globals__ }}",
        "{{ cycler.__init__.__globals__.os.system('id') }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ self._TemplateReference__context }}",
        "{{ c._secret() }}",
        "{{ c._prop }}",
        "{{ c | attr('_secret') }}",
        "{{ c['__dict__'] }}",
        "{% set k = ''.__class__ %}{{ k }}",
        "{% if c.__class__ is defined %}yes{% endif %}",
    ],
)
def test_escape_visible_in_text_is_rejected_at_compile_time(text):
    canary = Canary()
    with pytest.raises(SandboxViolationError, match="sandbox"):
        Template(text)
    with pytest.raises(SandboxViolationError):
        render_string(text, {"c": canary, "x": canary.hello})
    assert canary.fired == []


def test_os_system_through_globals_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    text = "{{ cycler.__init__.__globals__.os.system('touch ' ~ path) }}"
    with pytest.raises(SandboxViolationError):
        render_string(text, {"path": str(marker), "cycler": object()})
    assert not marker.exists()


@pytest.mark.parametrize(
    "text, values",
    [
        ('{{ "{0.__class__.__mro__}".format(n) }}', {"n": 1}),
        ('{{ "{x.__class__}".format_map(d) }}', {"d": {"x": 1}}),
        ("{{ t.mro() }}", {"t": int}),
        ("{{ g.gi_frame.f_globals }}", {"g": (i for i in [])}),
        ("{{ co.co_consts }}", {"co": (lambda: None).__code__}),
        ("{{ c | attr(name) }}", {"c": Canary(), "name": "__init__"}),
        ("{{ c[key] }}", {"c": Canary(), "key": "__class__"}),
    ],
)
def test_escape_hidden_from_text_is_blocked_at_render_time(text, values):
    Template(text)  # nothing suspicious in the text itself
    with pytest.raises(SandboxViolationError, match="sandbox"):
        render_string(text, values)


def test_inputs_cannot_be_mutated_by_template():
    items = ["a"]
    settings = {"k": "v"}
    for text in ("{{ items.append('pwned') }}", "{{ settings.update({'k': 'x'}) }}", "{{ items.pop() }}"):
        with pytest.raises(SandboxViolationError):
            render_string(text, {"items": items, "settings": settings})
    assert items == ["a"] and settings == {"k": "v"}


def test_dangerous_globals_are_removed():
    for name in ("cycler", "joiner", "lipsum"):
        assert variables("{{ %s() }}" % name) == [name]
        with pytest.raises(MissingVariablesError):
            render_string("{{ %s() }}" % name, {})


def test_underscore_dict_key_still_reachable_by_subscript():
    assert render_string("{{ row['_id'] }}", {"row": {"_id": 7}}) == "7"


def test_public_method_of_input_still_callable():
    assert render_string("{{ c.hello() }}", {"c": Canary()}) == "hello"


# ---------------------------------------------------------------------------- chat templates


def test_chat_template_renders_openai_messages_in_order():
    ct = ChatTemplate(
        system="You are {{persona}}.",
        messages=[
            {"role": "user", "content": "Example: {{example_in}}"},
            {"role": "assistant", "content": "{{example_out}}"},
        ],
        prompt="{{question}} ({{persona}})",
    )
    assert ct.variables == ["persona", "example_in", "example_out", "question"]
    values = {"persona": "terse", "example_in": "2+2", "example_out": "4", "question": "3+3?"}
    assert ct.render(values) == [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Example: 2+2"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "3+3? (terse)"},
    ]


def test_chat_template_omits_empty_system_and_none_prompt():
    assert ChatTemplate(system="", prompt="{{q}}").render({"q": "hi"}) == [{"role": "user", "content": "hi"}]
    assert ChatTemplate(system="S").render({}) == [{"role": "system", "content": "S"}]


def test_chat_template_reports_missing_across_all_parts_at_once():
    ct = ChatTemplate(
        system="{{a}}{{ opt | default('') }}",
        messages=[{"role": "user", "content": "{{b}}"}],
        prompt="{{c}}{{a}}",
    )
    assert ct.required_variables == ["a", "b", "c"]
    assert ct.variables == ["a", "opt", "b", "c"]
    with pytest.raises(MissingVariablesError) as err:
        ct.render({"b": 1})
    assert err.value.missing == ["a", "c"]


def test_chat_template_rejects_malformed_messages():
    with pytest.raises(ConfigError, match="role"):
        ChatTemplate(prompt="x", messages=[{"role": "wizard", "content": "x"}])
    with pytest.raises(ConfigError, match="messages\\[0\\]"):
        ChatTemplate(prompt="x", messages=[{"content": "x"}])


def test_chat_template_dict_round_trip():
    ct = ChatTemplate(system="S {{a}}", prompt="P {{b}}", messages=[{"role": "assistant", "content": "M"}], name="w")
    d = ct.to_dict()
    assert d == {
        "system": "S {{a}}",
        "messages": [{"role": "assistant", "content": "M"}],
        "prompt": "P {{b}}",
        "name": "w",
    }
    back = ChatTemplate.from_dict(d)
    assert back == ct and back.to_dict() == d and back.variables == ["a", "b"]
    with pytest.raises(ConfigError, match="bogus"):
        ChatTemplate.from_dict({**d, "bogus": 1})


# ---------------------------------------------------------------------------- seed text format


def test_seed_plain_text_example():
    ct = ChatTemplate.from_text(SEED_TEXT)
    assert ct.system == "You are a helpful writing assistant."
    assert ct.prompt == SEED_USER_PROMPT
    assert ct.variables == ["task", "content"]
    msgs = ct.render({"task": "Fix grammar.", "content": "Thier text."})
    assert msgs[0] == {"role": "system", "content": "You are a helpful writing assistant."}
    assert msgs[1]["role"] == "user"
    assert msgs[1]["content"].endswith("why.\n======\nThier text.")
    assert "\nFix grammar.\n" in msgs[1]["content"]


def test_parse_prompt_text_is_from_text_and_plain_text_is_just_a_prompt():
    assert parse_prompt_text(SEED_TEXT) == ChatTemplate.from_text(SEED_TEXT)
    plain = "Write a sentence about {{topic}}."
    ct = parse_prompt_text(plain)
    assert ct.system is None and ct.prompt == plain


def test_prompt_without_system_block_keeps_separators():
    text = "Review this:\n{{task}}\n======\n{{content}}"
    ct = parse_prompt_text(text)
    assert ct.system is None and ct.prompt == text and ct.variables == ["task", "content"]


def test_two_system_blocks_rejected_with_line():
    with pytest.raises(TemplateSyntaxError) as err:
        parse_prompt_text("System Message: a\n======\nSystem Message: b\n======\n{{x}}")
    assert err.value.lineno == 3
