"""Tests for promptlab.experiments.evaluators: factories, normalisation, isolation, LLM judge."""

from __future__ import annotations

import functools
import math
import re

import jinja2
import numpy as np
import pytest
from jinja2.sandbox import SandboxedEnvironment

from promptlab.errors import ConfigError, InvalidInputError
from promptlab.experiments.evaluators import (
    DEFAULT_JUDGE_INSTRUCTIONS,
    DEFAULT_JUDGE_PROMPT,
    LLMJudge,
    Score,
    contains,
    evaluator_name,
    exact_match,
    json_valid,
    length,
    llm_judge,
    max_length,
    min_length,
    normalize_score,
    regex,
    run_evaluators,
    split_evaluators,
)

# --------------------------------------------------------------------------- Score


def test_score_as_dict_and_float_coercion():
    s = Score("x", 1, passed=True, reason="ok")
    assert s.value == 1.0 and isinstance(s.value, float)
    assert s.as_dict() == {"name": "x", "value": 1.0, "passed": True, "reason": "ok"}
    assert not s.errored


@pytest.mark.parametrize("bad", [1.5, -0.1, "0.5", True, float("inf")])
def test_score_rejects_values_off_the_unit_scale(bad):
    with pytest.raises(InvalidInputError, match="'x'"):
        Score("x", bad)


def test_score_is_frozen():
    with pytest.raises(AttributeError):
        Score("x", 0.5).value = 1.0  # type: ignore[misc]


# --------------------------------------------------------------------------- normalisation


def test_normalize_bool():
    assert normalize_score("ok", True) == Score("ok", 1.0, passed=True)
    assert normalize_score("ok", False) == Score("ok", 0.0, passed=False)
    assert normalize_score("ok", np.bool_(True)) == Score("ok", 1.0, passed=True)


def test_normalize_float_and_int():
    assert normalize_score("sim", 0.25) == Score("sim", 0.25, passed=None)
    assert normalize_score("sim", 1) == Score("sim", 1.0)
    assert normalize_score("sim", np.float32(0.5)).value == 0.5


@pytest.mark.parametrize("bad", [1.01, -0.5, 7, float("nan")])
def test_normalize_out_of_range_names_the_evaluator(bad):
    with pytest.raises(InvalidInputError, match=r"evaluator 'my_metric' returned .*\[0, 1\]"):
        normalize_score("my_metric", bad)


def test_normalize_wrong_type():
    with pytest.raises(InvalidInputError, match="evaluator 'm' returned str"):
        normalize_score("m", "good")
    with pytest.raises(InvalidInputError, match="returned NoneType"):
        normalize_score("m", None)


def test_normalize_score_renames_to_evaluator_name():
    s = normalize_score("outer", Score("inner", 0.3, reason="r"))
    assert s == Score("outer", 0.3, reason="r")


def test_evaluator_name():
    def polite(output, row):
        return "please" in output

    assert evaluator_name(polite) == "polite"
    polite.name = "politeness"
    assert evaluator_name(polite) == "politeness"
    assert evaluator_name(functools.partial(lambda o, r, k: True, k=1)) == "<lambda>"

    class Scorer:
        def __call__(self, output, row):
            return 1.0

    assert evaluator_name(Scorer()) == "Scorer"


# --------------------------------------------------------------------------- exact_match


def test_exact_match_pass_and_fail():
    ev = exact_match()
    assert ev.name == "exact_match" and evaluator_name(ev) == "exact_match"
    ok = ev("  Paris\n", {"question": "capital?", "expected": "paris"})
    assert ok == Score("exact_match", 1.0, passed=True, reason="matches expected")
    bad = ev("Lyon", {"expected": "Paris"})
    assert bad.passed is False and bad.value == 0.0
    assert bad.reason == "expected 'Paris', got 'Lyon'"


def test_exact_match_options():
    strict = exact_match(ignore_case=False, strip=False)
    assert strict("Paris", {"expected": "Paris"}).passed
    assert not strict("paris", {"expected": "Paris"}).passed
    assert not strict("Paris ", {"expected": "Paris"}).passed


def test_exact_match_list_of_answers_and_other_key():
    ev = exact_match(expected_key="answer")
    assert ev.name == "exact_match:answer"
    assert ev("NYC", {"answer": ["New York", "nyc"]}).passed
    assert not ev("LA", {"answer": ["New York", "nyc"]}).passed


def test_exact_match_missing_key_names_key_and_evaluator():
    with pytest.raises(InvalidInputError) as info:
        exact_match()("x", {"question": "q"})
    msg = str(info.value)
    assert "'exact_match'" in msg and "'expected'" in msg and "'question'" in msg


def test_exact_match_config_error():
    with pytest.raises(ConfigError, match="expected_key"):
        exact_match(expected_key="")


# --------------------------------------------------------------------------- contains


def test_contains_single_needle():
    ev = contains("refund")
    assert ev.name == "contains:refund"
    assert ev("Your REFUND is on its way", {}).passed
    s = ev("No money back", {})
    assert s.passed is False and s.value == 0.0 and s.reason == "none found of 'refund'"


def test_contains_case_sensitive():
    assert not contains("Refund", ignore_case=False)("refund issued", {}).passed


def test_contains_any_and_all():
    any_ = contains("refund", "credit")
    assert any_.name == "contains_any:refund,credit"
    assert any_("store credit", {}).value == 1.0
    all_ = contains("refund", "policy", "days", mode="all")
    assert all_.name == "contains_all:refund,policy,days"
    partial = all_("refund policy applies", {})
    assert partial.passed is False
    assert partial.value == pytest.approx(2 / 3)
    assert partial.reason == "missing 'days'"
    assert all_("refund policy: 30 days", {}).passed


def test_contains_from_row_key():
    ev = contains(key="expected_contains", mode="all")
    assert ev.name == "contains_all:{expected_contains}"
    assert ev("Paris is in France", {"expected_contains": ["paris", "france"]}).passed
    assert ev("Paris", {"expected_contains": "Paris"}).passed
    assert not ev("Paris", {"expected_contains": ["paris", "france"]}).passed
    with pytest.raises(InvalidInputError, match="'expected_contains'"):
        ev("Paris", {"q": 1})
    with pytest.raises(InvalidInputError, match="non-empty string"):
        ev("Paris", {"expected_contains": []})


@pytest.mark.parametrize("kwargs, needles, msg", [
    ({}, (), "at least one needle"),
    ({"key": "k"}, ("a",), "not both"),
    ({"mode": "some"}, ("a",), "mode"),
    ({}, ("",), "non-empty"),
])
def test_contains_config_errors(kwargs, needles, msg):
    with pytest.raises(ConfigError, match=msg):
        contains(*needles, **kwargs)


# --------------------------------------------------------------------------- regex


def test_regex_pass_fail_and_name():
    ev = regex(r"\d+ days")
    assert ev.name == r"regex:\d+ days"
    s = ev("Refunds take 5 days.", {})
    assert s.passed and s.reason == "matched '5 days'"
    assert not ev("Refunds take a while.", {}).passed


def test_regex_flags_and_compiled_pattern():
    assert regex("^yes", flags=re.IGNORECASE)("YES indeed", {}).passed
    assert regex(re.compile("^yes"), flags=re.IGNORECASE)("YES", {}).passed
    assert not regex("^yes")("YES", {}).passed


def test_regex_invalid_pattern_fails_at_factory_time():
    with pytest.raises(ConfigError, match=r"invalid pattern '\(unclosed'"):
        regex("(unclosed")


# --------------------------------------------------------------------------- json_valid


def test_json_valid():
    ev = json_valid()
    assert ev.name == "json_valid"
    assert ev(' {"a": 1} \n', {}).passed
    assert ev("[1, 2]", {}).passed
    bad = ev("{'a': 1}", {})
    assert bad.passed is False and bad.reason.startswith("not valid JSON")
    assert not ev('```json\n{"a": 1}\n```', {}).passed


def test_json_valid_required_keys():
    ev = json_valid(required_keys=("answer", "sources"))
    assert ev.name == "json_valid:answer,sources"
    assert ev('{"answer": "x", "sources": []}', {}).passed
    s = ev('{"answer": "x"}', {})
    assert not s.passed and s.reason == "missing keys: 'sources'"
    assert ev("[1]", {}).reason == "JSON list, not an object with keys"
    # a single string is one key, not its characters
    assert json_valid("answer").name == "json_valid:answer"


# --------------------------------------------------------------------------- length


def test_length_bounds():
    ev = length(max_chars=10, min_words=2)
    assert ev.name == "length:chars<=10,words>=2"
    assert ev("two words\n", {}).passed  # 9 chars after strip
    s = ev("three short words", {})
    assert not s.passed and s.reason == "17 chars > 10"
    s = ev("one", {})
    assert not s.passed and s.reason == "1 words < 2"


def test_length_boundaries_are_inclusive():
    assert length(min_chars=3, max_chars=3)("abc", {}).passed
    assert length(min_words=2, max_words=2)("a b", {}).passed


def test_max_and_min_length_aliases():
    mx = max_length(chars=5)
    assert mx.name == "max_length:chars=5"
    assert mx("abcde", {}).passed and not mx("abcdef", {}).passed
    mn = min_length(words=3)
    assert mn.name == "min_length:words=3"
    assert mn("a b c", {}).passed and not mn("a b", {}).passed
    assert max_length(chars=5, words=2).name == "max_length:chars=5,words=2"


@pytest.mark.parametrize("kwargs, msg", [
    ({}, "at least one"),
    ({"min_chars": 5, "max_chars": 2}, "greater than"),
    ({"min_words": 3, "max_words": 1}, "greater than"),
    ({"max_chars": -1}, "max_chars"),
    ({"max_words": 2.5}, "max_words"),
])
def test_length_config_errors(kwargs, msg):
    with pytest.raises(ConfigError, match=msg):
        length(**kwargs)


def test_max_length_needs_a_bound():
    with pytest.raises(ConfigError):
        max_length()


def test_non_text_output_is_a_clear_error():
    with pytest.raises(InvalidInputError, match="'contains:a' expects the output as text"):
        contains("a")(None, {})


# --------------------------------------------------------------------------- run_evaluators


def test_run_evaluators_isolates_errors_and_keeps_order():
    def boom(output, row):
        raise ValueError("bad thing")

    def too_big(output, row):
        return 3.0

    def polite(output, row):
        return "please" in output

    scores = run_evaluators([contains("refund"), boom, too_big, polite, exact_match()],
                            "refund please", {"q": "x"})
    assert [s.name for s in scores] == ["contains:refund", "boom", "too_big", "polite",
                                        "exact_match"]
    assert scores[0].passed is True
    assert math.isnan(scores[1].value) and scores[1].passed is None and scores[1].errored
    assert scores[1].reason == "error: ValueError: bad thing"
    assert scores[2].errored and scores[2].reason.startswith("error: InvalidInputError: ")
    assert "'too_big'" in scores[2].reason
    assert scores[3] == Score("polite", 1.0, passed=True)
    # the missing 'expected' key becomes an error score too, with the helpful message
    assert scores[4].errored and "needs the row key 'expected'" in scores[4].reason


def test_run_evaluators_refuses_judges_and_duplicates():
    with pytest.raises(ConfigError, match="LLM judge 'llm_judge'"):
        run_evaluators([contains("a"), llm_judge("judge")], "a", {})
    with pytest.raises(ConfigError, match="two evaluators are named 'contains:a'"):
        run_evaluators([contains("a"), contains("a", ignore_case=False)], "a", {})
    with pytest.raises(ConfigError, match="not callable"):
        run_evaluators(["exact_match"], "a", {})


def test_split_evaluators():
    j = llm_judge("judge", name="helpfulness")
    plain, judges = split_evaluators([exact_match(), j, contains("x")])
    assert [evaluator_name(p) for p in plain] == ["exact_match", "contains:x"]
    assert judges == [j]
    assert split_evaluators(exact_match())[0][0].name == "exact_match"


# --------------------------------------------------------------------------- LLM judge


def test_llm_judge_build_input():
    j = llm_judge("judge-action", threshold=0.7, instructions="Be strict.")
    assert isinstance(j, LLMJudge) and j.action == "judge-action" and j.name == "llm_judge"
    row = {"question": "Capital of France?", "context": {"country": "FR"},
           "expected": "Paris", "expected_contains": ["Paris"]}
    assert j.build_input("It is Paris.", row) == {
        "input": 'question: Capital of France?\ncontext: {"country": "FR"}',
        "output": "It is Paris.",
        "reference": "Paris",
        "instructions": "Be strict.",
    }


def test_llm_judge_build_input_defaults():
    vars_ = llm_judge("j").build_input("out", {"topic": "ML"})
    assert vars_["reference"] == "" and vars_["input"] == "topic: ML"
    assert vars_["instructions"] == DEFAULT_JUDGE_INSTRUCTIONS


@pytest.mark.parametrize("reply, value, reason", [
    ('{"score": 80, "reason": "Mostly right."}', 0.8, "Mostly right."),
    ('```json\n{"score": 35, "reason": "Misses the point."}\n```', 0.35, "Misses the point."),
    ('Here is my grade:\n{"Score": "90", "reason": "Good"} Hope this helps.', 0.9, "Good"),
    ("72", 0.72, None),
    ("72/100", 0.72, None),
    ("8/10", 0.8, None),
    ("Score: 65\nReason: too long", 0.65, "too long"),
    ("**Score:** 100", 1.0, None),
    ('{"score": 0}', 0.0, None),
])
def test_llm_judge_parse_variants(reply, value, reason):
    s = llm_judge("j", threshold=0.7).parse(reply)
    assert s.name == "llm_judge"
    assert s.value == pytest.approx(value)
    assert s.reason == reason
    assert s.passed is (value >= 0.7)


@pytest.mark.parametrize("reply, msg", [
    ("I think it is pretty good.", "no 0-100 score found in reply 'I think it is pretty good.'"),
    ('{"score": 140}', "score 140 is outside 0-100"),
    ('{"grade": 5}', "no 0-100 score"),
    ("", "no 0-100 score"),
])
def test_llm_judge_parse_errors_quote_the_reply(reply, msg):
    with pytest.raises(InvalidInputError, match=re.escape(msg)):
        llm_judge("j", name="judge-x").parse(reply)


def test_llm_judge_parse_error_names_the_judge():
    with pytest.raises(InvalidInputError, match="judge 'tone'"):
        llm_judge("j", name="tone").parse("meh")


@pytest.mark.parametrize("kwargs, msg", [
    ({"threshold": 70}, "0..1"),
    ({"threshold": -0.1}, "0..1"),
    ({"name": ""}, "name"),
])
def test_llm_judge_config_errors(kwargs, msg):
    with pytest.raises(ConfigError, match=msg):
        llm_judge("j", **kwargs)
    with pytest.raises(ConfigError, match="action"):
        llm_judge("")


async def test_llm_judge_evaluate_with_a_fake_completion():
    calls = []

    async def complete(action, variables):
        calls.append((action, variables))
        return '{"score": 40, "reason": "Partly correct."}'

    j = llm_judge("judge-v1", threshold=0.5)
    s = await j.evaluate("Lyon", {"q": "Capital?", "expected": "Paris"}, complete)
    assert s == Score("llm_judge", 0.4, passed=False, reason="Partly correct.")
    assert calls == [("judge-v1", {"input": "q: Capital?", "output": "Lyon",
                                   "reference": "Paris",
                                   "instructions": DEFAULT_JUDGE_INSTRUCTIONS})]


def _render(template: str, **variables: str) -> str:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(template).render(**variables)


def test_default_judge_prompt_sections_at_line_start():
    vars_ = llm_judge("j").build_input("Paris.", {"question": "Capital?", "expected": "Paris"})
    text = _render(DEFAULT_JUDGE_PROMPT, **vars_)
    lines = text.splitlines()
    for header, body in [("Question:", "question: Capital?"), ("Answer:", "Paris."),
                         ("Reference:", "Paris")]:
        i = lines.index(header)
        assert lines[i + 1] == body
    assert lines.index("Question:") < lines.index("Answer:") < lines.index("Reference:")
    assert DEFAULT_JUDGE_INSTRUCTIONS in text
    assert '{"score":' in text and '"reason":' in text
    # The last section runs to the end of the prompt: a section parser must not swallow
    # the reply-format instructions into the reference.
    assert text.rstrip().endswith("Reference:\nParis")


def test_default_judge_prompt_without_reference_and_strict_variables():
    vars_ = llm_judge("j").build_input("Paris.", {"question": "Capital?"})
    text = _render(DEFAULT_JUDGE_PROMPT, **vars_)
    assert "Reference:" not in text.splitlines()
    assert text.rstrip().endswith("Answer:\nParis.")
    with pytest.raises(jinja2.UndefinedError):
        _render(DEFAULT_JUDGE_PROMPT, input="q", output="o", reference="")
