"""promptlab.flows.logic: context paths, conditions, actions, rules and signatures (pure)."""

from __future__ import annotations

import pytest

from promptlab.errors import ConfigError, InvalidInputError
from promptlab.flows.engine import new_context
from promptlab.flows.logic import (
    Rule,
    actions_of,
    call_by_name,
    change_location,
    check_signature,
    evaluate,
    expression_value,
    get_path,
    normalize_logic,
    send_message,
    set_field,
    set_path,
    static_locations,
    validate_action,
)


@pytest.fixture
def context():
    ctx = new_context("f", "conv-1", 2, "start", {"session": {"lang": "en", "order": {"id": 42}},
                                                   "fields": {"vip": True}, "messages": []}, "Hi there")
    ctx["evidenceScores"] = {"maxScore": 72.0, "meanScore": 50.0, "minScore": 28.0, "numErrors": 0,
                             "numScores": 2}
    return ctx


def test_new_context_has_the_customer_assistant_shape():
    ctx = new_context("support", "c-9", 1, "greet", None, "Where is my parcel?")
    assert ctx["derivedData"] == {"lastCustomerMessage": "Where is my parcel?"}
    assert ctx["conversation"] == {"id": "c-9", "fields": {},
                                   "messages": [{"author": "Customer", "text": "Where is my parcel?", "turn": 1}]}
    assert ctx["session"] is ctx["botSession"]
    assert (ctx["searchResults"], ctx["apiResults"], ctx["prompts"]) == ([], [], {})
    assert ctx["evidenceScores"] is None and ctx["error"] is None


def test_get_path_reads_nested_fields_and_aliases(context):
    assert get_path(context, "session.order.id") == 42
    assert get_path(context, "botSession.lang") == "en"
    assert get_path(context, "customerLastMessage") == "Hi there"
    assert get_path(context, "conversation.messages.0.text") == "Hi there"
    assert get_path(context, "session.missing", "dflt") == "dflt"
    with pytest.raises(InvalidInputError, match=r"'session.nope' is not set; session has \['lang', 'order'\]"):
        get_path(context, "session.nope")
    with pytest.raises(ConfigError, match="empty segment"):
        get_path(context, "session..x")


def test_set_path_writes_session_and_conversation_fields_only(context):
    set_path(context, "session.answer", "yes")
    set_path(context, "botSession.order.status", "shipped")
    set_path(context, "conversation.topic", "billing")
    set_path(context, "conversation.fields.tier", 2)
    assert context["session"]["answer"] == "yes" and context["botSession"]["order"] == {"id": 42, "status": "shipped"}
    assert context["conversation"]["fields"] == {"vip": True, "topic": "billing", "tier": 2}
    for bad in ("searchResults.x", "derivedData.lastCustomerMessage", "session", "conversation.id",
                "conversation.messages"):
        with pytest.raises(InvalidInputError, match="setField cannot write|setField needs"):
            set_path(context, bad, 1)
    with pytest.raises(InvalidInputError, match="JSON-serialisable"):
        set_path(context, "session.obj", object())


def test_set_path_copies_the_value(context):
    value = {"a": [1]}
    set_path(context, "session.copy", value)
    value["a"].append(2)
    assert context["session"]["copy"] == {"a": [1]}


@pytest.mark.parametrize("expression, expected", [
    ("evidenceScores.maxScore >= 70", True),
    ("evidenceScores.numScores > 0 and evidenceScores.minScore > 30", False),
    ("session.lang == 'en' and conversation.fields.vip", True),
    ("'hi' in customerLastMessage|lower", True),
    ("not session.order.id is none", True),
])
def test_expressions_read_context_fields(context, expression, expected):
    assert evaluate(expression, context) is expected


def test_condition_errors_name_the_condition(context):
    with pytest.raises(InvalidInputError, match=r"condition 'session\.nope == 1'.*nope"):
        evaluate("session.nope == 1", context)
    context["evidenceScores"]["maxScore"] = None
    with pytest.raises(InvalidInputError, match="failed"):
        evaluate("evidenceScores.maxScore > 50", context)
    with pytest.raises(ConfigError, match="does not parse"):
        evaluate("session.lang ==", context)
    with pytest.raises(InvalidInputError):
        evaluate("session.__class__", context)


def test_callable_conditions_and_expression_values(context):
    assert evaluate(lambda c: c["session"]["lang"] == "en", context) is True
    assert expression_value("session.order.id + 1", context) == 43
    assert expression_value("derivedData.lastCustomerMessage", context) == "Hi there"


def test_action_helpers_build_the_seed_shapes():
    assert send_message("Hi") == {"action": "sendMessage", "message": {"text": "Hi"}}
    assert set_field("session.a", 1) == {"action": "setField", "field": "session.a", "value": 1}
    assert set_field("session.a", expression="prompts.x.completion") == {
        "action": "setField", "field": "session.a", "expression": "prompts.x.completion"}
    assert change_location("answer") == {"action": "changeLocation", "location": "answer"}


@pytest.mark.parametrize("action, message", [
    ("sendMessage", "must be a dict"),
    ({"action": "sendmessage"}, "unknown action 'sendmessage'"),
    ({"action": "sendMessage", "message": "hi"}, "needs a 'message' dict"),
    ({"action": "sendMessage", "message": {"text": 3}}, "text must be a string"),
    ({"action": "setField", "field": "session.a"}, "exactly one of 'value' or 'expression'"),
    ({"action": "setField", "field": "prompts.a", "value": 1}, "cannot write"),
    ({"action": "changeLocation"}, "needs a 'location'"),
])
def test_malformed_actions_are_refused(action, message):
    with pytest.raises(InvalidInputError, match=message):
        validate_action(action)


def test_actions_of_accepts_the_seeds_return_shapes():
    assert actions_of(None, "f") == []
    assert actions_of({}, "f") == [] and actions_of({"actions": None}, "f") == []
    assert actions_of({"actions": [send_message("a")]}, "f") == [send_message("a")]
    assert actions_of([send_message("b")], "f") == [send_message("b")]
    with pytest.raises(InvalidInputError, match="f must return a dict"):
        actions_of("text", "f")
    with pytest.raises(InvalidInputError, match=r"f actions\[0\]: unknown action"):
        actions_of({"actions": [{"action": "dance"}]}, "f")


def test_logic_normalizes_every_accepted_form():
    def fn(context):
        return None

    rule = Rule("session.x", then="b", otherwise=[send_message("no")])
    steps = normalize_logic(["a", send_message("hi"), rule, fn, [set_field("session.y", 2)]])
    assert steps[0] == change_location("a") and steps[1] == send_message("hi")
    assert steps[2] is rule and steps[3] is fn and steps[4] == set_field("session.y", 2)
    assert rule.then == (change_location("b"),) and rule.otherwise == (send_message("no"),)
    assert static_locations(steps) == ["a", "b"]
    assert normalize_logic(None) == ()
    with pytest.raises(ConfigError, match="unknown action"):
        normalize_logic({"action": "nope"})
    with pytest.raises(ConfigError, match="expected a behavior name"):
        normalize_logic(42)
    with pytest.raises(ConfigError, match="does not parse"):
        Rule("a ==")


def test_functions_are_called_by_parameter_name():
    def handle_basic(llm, context, prompt, completion):
        return (llm, completion)

    def handle_full(llm, context, prompt, response, completion):
        return response

    def takes_kwargs(**kw):
        return sorted(kw)

    available = {"llm": "m", "context": {}, "prompt": {}, "response": {"r": 1}, "completion": "c"}
    assert call_by_name(handle_basic, available, "h") == ("m", "c")
    assert call_by_name(handle_full, available, "h") == {"r": 1}
    assert call_by_name(takes_kwargs, available, "h") == sorted(available)
    assert check_signature(lambda context, extra=1: None, ("context",), "f") == ("context",)

    def wrong(ctx):
        return None

    with pytest.raises(ConfigError, match="has parameter 'ctx'; it can take context"):
        check_signature(wrong, ("context",), "function")
    with pytest.raises(ConfigError, match="must be a function"):
        check_signature("nope", ("context",), "function")
