"""Behaviors' success and failure paths: Search, Prompt AI, Call Function, Execute Logic.

Models are the offline simulator (``sim:echo``, ``sim:extractive``) or OpenAI-compatible fakes
on an ``httpx2.MockTransport`` (real openai client, real provider code).
"""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from promptlab.errors import (
    ConfigError,
    InvalidInputError,
    NotFoundError,
    ProviderRequestError,
    ProviderServerError,
)
from promptlab.flows import (
    CallFunction,
    ExecuteLogic,
    Prompt,
    PromptAI,
    Rule,
    Search,
    SearchSpec,
    change_location,
    send_message,
    set_field,
)


def build(llm, context):
    return {"request": {"messages": [{"role": "user", "content": context["derivedData"]["lastCustomerMessage"]}]}}


def say(llm, context, completion):
    return {"actions": [send_message(completion)]}


def error_report(context):
    e = context["error"]
    return {"actions": [send_message(f"{e['type']}|{e.get('promptId')}|{e['errorClass']}")]}


def _openai_reply(body, text, finish_reason="stop"):
    return httpx2.Response(200, json={
        "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": finish_reason}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})


def register(lab, name, handler):
    lab.providers.register(name, base_url=f"http://{name}.local/v1", api_key="k", max_retries=0,
                           http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))


@pytest.fixture
def kb(lab):
    lab.contexts.create("kb")
    lab.contexts.add("kb", [
        {"id": "refunds", "title": "Refunds", "body": "Refunds are paid within five business days."},
        {"id": "returns", "title": "Returns", "body": "Returns are accepted for thirty days after delivery."},
        {"id": "shipping", "title": "Shipping", "body": "Shipping is free for orders over fifty dollars."},
    ])
    lab.contexts.create("faq")
    lab.contexts.add("faq", [{"id": "hours", "title": "Hours", "body": "Support answers from nine to five."}])
    return lab


# -- Search -----------------------------------------------------------------------------------


def collect(context):
    summary = [[inv["resource"], inv["query"], [r["record"]["document_id"] for r in inv["results"]]]
               for inv in context["searchResults"]]
    return {"actions": [set_field("session.seen", summary)]}


def test_search_results_accumulate_in_order_across_searches_and_behaviors(kb):
    flow = kb.flows.create("s", [
        ExecuteLogic("prep", rules=[set_field("session.topic", "shipping dollars"), "first"]),
        Search("first", searches=[SearchSpec("kb", "customerLastMessage", top_k=2),
                                  SearchSpec("faq", "customerLastMessage", top_k=1)], on_success="second"),
        Search("second", searches=[{"resource": "kb", "field": "botSession.topic", "top_k": 1}],
               on_success="collect"),
        CallFunction("collect", function=collect),
    ])

    result = flow.run_turn("c1", "refunds days support")

    seen = result.context["session"]["seen"]
    assert [(s[0], s[1]) for s in seen] == [("kb", "refunds days support"), ("faq", "refunds days support"),
                                            ("kb", "shipping dollars")]
    assert seen[0][2][0] == "refunds" and len(seen[0][2]) == 2
    assert seen[1][2] == ["hours"] and seen[2][2] == ["shipping"]
    hits = result.trace.of("search")
    # searches of one behavior run concurrently: the trace shows them as they finish
    assert sorted(h["data"]["resource"] for h in hits) == ["faq", "kb", "kb"]
    assert all(r["distance"] >= 0 for inv in result.context["searchResults"] for r in inv["results"])


def test_search_results_are_cleared_when_the_turn_ends(kb):
    flow = kb.flows.create("s", [
        Search("search", searches=[SearchSpec("kb", "customerLastMessage", top_k=1)], on_success="collect"),
        CallFunction("collect", function=collect),
    ])
    flow.run_turn("c1", "refunds")
    second = flow.run_turn("c1", "shipping")
    assert second.context["session"]["seen"] == [["kb", "shipping", ["shipping"]]]
    assert len(second.context["searchResults"]) == 1
    assert "searchResults" not in flow.state("c1") and flow.state("c1")["turns"] == 2


def test_search_failure_runs_on_error_with_the_error_type(kb):
    flow = kb.flows.create("s", [
        Search("search", searches=[SearchSpec("kb"), SearchSpec("no-such-library")],
               on_success=send_message("ok"), on_error=error_report),
    ])
    result = flow.run_turn("c1", "refunds")
    assert result.answer == "search|None|NotFoundError"
    assert result.context["error"]["resource"] == "no-such-library"
    assert [inv["resource"] for inv in result.context["searchResults"]] == ["kb"]


def test_search_on_an_empty_field_is_an_error_and_without_handler_the_turn_raises(kb):
    flow = kb.flows.create("s", [Search("search", searches=[SearchSpec("kb", "session.rephrased")])])
    with pytest.raises(InvalidInputError, match="'session.rephrased' holds no search text"):
        flow.run_turn("c1", "refunds")
    assert flow.state("c1") is None  # the failed turn changed nothing
    errors = kb.generations.list(model="flow:s")
    assert [g.status for g in errors] == ["error"] and errors[0].error_type == "InvalidInputError"


def test_search_requires_at_least_one_search():
    with pytest.raises(ConfigError, match="needs at least one search"):
        Search("s", searches=[])


# -- Prompt AI ----------------------------------------------------------------------------------


def test_prompts_run_in_parallel(lab):
    # Each request waits until the other one has arrived: this passes only if both are in
    # flight at once (a sequential run would time out the barrier and fail the prompt).
    barrier = asyncio.Barrier(2)

    async def handler(request):
        body = json.loads(request.content)
        await asyncio.wait_for(barrier.wait(), timeout=10)
        return _openai_reply(body, "reply to " + body["messages"][-1]["content"])

    register(lab, "pair", handler)

    def build_a(llm, context):
        return {"request": {"messages": [{"role": "user", "content": "A"}]}}

    def build_b(llm, context):
        return {"request": {"messages": [{"role": "user", "content": "B"}]}}

    flow = lab.flows.create("par", [PromptAI("both", prompts=[Prompt("a", "pair:m", build_a, say),
                                                               Prompt("b", "pair:m", build_b, say)])])
    result = flow.run_turn("c1", "go")
    assert result.messages == ["reply to A", "reply to B"]  # applied in prompt order
    assert result.context["prompts"]["a"]["error"] is None


def test_each_prompt_is_a_logged_generation_with_flow_metadata(lab):
    def build_with_params(llm, context):
        return {"request": {"messages": [{"role": "system", "content": "Be brief."},
                                         {"role": "user", "content": "hello"}],
                            "temperature": 0.3, "max_tokens": 50}}

    flow = lab.flows.create("logged", [PromptAI("ask", prompts=[Prompt("greet", "sim:echo", build_with_params, say)])])
    result = flow.run_turn("c7", "hi")
    guid = result.context["prompts"]["greet"]["guid"]
    generation = lab.generations.get(guid)
    assert generation.status == "done" and generation.msg == "hello"
    assert generation.model == "sim:echo" and generation.action == "logged/ask/greet"
    assert generation.params == {"temperature": 0.3, "max_tokens": 50}
    assert generation.messages[0] == {"role": "system", "content": "Be brief."}
    assert {k: generation.metadata[k] for k in ("flow", "behavior", "prompt", "conversation", "turn")} == {
        "flow": "logged", "behavior": "ask", "prompt": "greet", "conversation": "c7", "turn": 1}
    assert generation.metadata["turn_guid"] == result.guid
    assert result.generations == [guid]
    lab.feedback.log(guid, rating="Positive")
    assert lab.feedback.latest(guid)["rating"] == "Positive"


def test_on_success_runs_after_the_handlers_and_can_move_the_flow(lab):
    flow = lab.flows.create("f", [
        PromptAI("ask", prompts=[Prompt("echo", "sim:echo", build)],
                 on_success=[set_field("session.answer", expression="prompts.echo.completion"), "done"]),
        ExecuteLogic("done", rules=send_message("saved")),
    ])
    result = flow.run_turn("c1", "remember me")
    assert result.context["session"]["answer"] == "remember me"
    assert result.answer == "saved"
    assert result.trace.behaviors == ["ask", "done"]


def test_on_entered_change_location_short_circuits_the_prompts(lab):
    flow = lab.flows.create("f", [
        PromptAI("ask", prompts=[Prompt("echo", "sim:echo", build, say)],
                 on_enter=Rule("session.skip is defined", then="elsewhere"),
                 on_success=set_field("session.skip", True)),
        ExecuteLogic("elsewhere", rules=send_message("skipped the prompt")),
    ])
    first = flow.run_turn("c1", "one")
    assert first.answer == "one" and first.location == "ask"  # resting point: stays at the prompt
    second = flow.run_turn("c1", "two")
    assert second.answer == "skipped the prompt"
    assert "echo" not in second.context["prompts"] and second.generations == []


def test_function_error_in_a_builder_runs_on_error(lab):
    def broken(llm, context):
        return {"request": {"messages": [{"role": "user", "content": context["session"]["missing"]}]}}

    flow = lab.flows.create("f", [PromptAI("ask", prompts=[Prompt("ok", "sim:echo", build, say),
                                                            Prompt("bad", "sim:echo", broken, say)],
                                           on_error=error_report)])
    result = flow.run_turn("c1", "hi")
    assert result.answer == "function|bad|KeyError"  # the good prompt's message is not sent
    assert result.context["prompts"]["ok"]["completion"] == "hi"
    assert result.context["prompts"]["bad"]["error"]["type"] == "function"


def test_malformed_builder_result_and_handler_errors_are_function_errors(lab):
    def no_request(llm, context):
        return {"messages": []}

    def bad_handler(llm, context, completion):
        return {"actions": [{"action": "teleport"}]}

    flow = lab.flows.create("f", [PromptAI("ask", prompts=[Prompt("a", "sim:echo", no_request),
                                                            Prompt("b", "sim:echo", build, bad_handler)],
                                           on_error=error_report)])
    result = flow.run_turn("c1", "hi")
    assert result.context["prompts"]["a"]["error"]["message"].startswith("prompt builder ask/a must return")
    assert "unknown action 'teleport'" in result.context["prompts"]["b"]["error"]["message"]
    assert result.answer == "function|a|InvalidInputError"


def test_token_limit_from_finish_reason_length(lab):
    def long_build(llm, context):
        return {"request": {"messages": [{"role": "user", "content": "one two three four five six"}],
                            "max_tokens": 2}}

    flow = lab.flows.create("f", [PromptAI("ask", prompts=[Prompt("p", "sim:echo", long_build, say)],
                                           on_error=Rule("error.type == 'token_limit'",
                                                         then=send_message("too long"),
                                                         otherwise=send_message("other")))])
    result = flow.run_turn("c1", "hi")
    assert result.answer == "too long"
    assert result.context["prompts"]["p"]["finishReason"] == "length"
    assert result.context["prompts"]["p"]["completion"] == "one two"


def test_token_limit_from_a_context_length_provider_error(lab):
    def handler(request):
        return httpx2.Response(400, json={"error": {
            "message": "This model's maximum context length is 8 tokens. However, you requested 9000 tokens.",
            "type": "invalid_request_error", "code": "context_length_exceeded"}})

    register(lab, "small", handler)
    flow = lab.flows.create("f", [PromptAI("ask", prompts=[Prompt("p", "small:m", build, say)],
                                           on_error=error_report)])
    result = flow.run_turn("c1", "hi")
    assert result.answer == "token_limit|p|ProviderRequestError"
    failed = lab.generations.get(result.generations[0])
    assert failed.status == "error" and failed.metadata["prompt"] == "p"


def test_provider_error_runs_on_error_and_without_handler_raises(lab):
    def handler(request):
        return httpx2.Response(500, json={"error": {"message": "boom", "type": "server_error"}})

    register(lab, "down", handler)
    handled = lab.flows.create("h", [PromptAI("ask", prompts=[Prompt("p", "down:m", build, say)],
                                              on_error=error_report)])
    assert handled.run_turn("c1", "hi").answer == "provider|p|ProviderServerError"

    unhandled = lab.flows.create("u", [PromptAI("ask", prompts=[Prompt("p", "down:m", build, say)])])
    with pytest.raises(ProviderServerError):
        unhandled.run_turn("c1", "hi")
    assert unhandled.state("c1") is None


def test_other_4xx_provider_errors_are_provider_errors(lab):
    register(lab, "bad", lambda request: httpx2.Response(400, json={"error": {"message": "bad param"}}))
    flow = lab.flows.create("f", [PromptAI("ask", prompts=[Prompt("p", "bad:m", build, say)])])
    with pytest.raises(ProviderRequestError):
        flow.run_turn("c1", "hi")


def test_prompt_definitions_are_validated():
    with pytest.raises(ConfigError, match="prompt id 'my-id' must be an identifier"):
        Prompt("my-id", "sim:echo", build)
    with pytest.raises(ConfigError, match="has parameter 'ctx'"):
        Prompt("p", "sim:echo", lambda llm, ctx: None)
    with pytest.raises(ConfigError, match="duplicate prompt id"):
        PromptAI("x", prompts=[Prompt("p", "sim:echo", build), Prompt("p", "sim:echo", build)])
    with pytest.raises(ConfigError, match="needs a list of Prompt"):
        PromptAI("x", prompts=[])


def test_request_keys_model_and_stream_are_refused(lab):
    def with_model(llm, context):
        return {"request": {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}}

    flow = lab.flows.create("f", [PromptAI("ask", prompts=[Prompt("p", "sim:echo", with_model)],
                                           on_error=error_report)])
    result = flow.run_turn("c1", "hi")
    assert result.answer == "function|p|InvalidInputError"
    assert "request key 'model' is not allowed" in result.context["error"]["message"]


# -- Call Function ----------------------------------------------------------------------------


def test_call_function_success_applies_actions_then_on_success(lab):
    def greet(context):
        return {"actions": [send_message("Hello " + context["derivedData"]["lastCustomerMessage"]),
                            set_field("conversation.greeted", True)]}

    flow = lab.flows.create("f", [CallFunction("greet", function=greet, on_success=send_message("after"))])
    result = flow.run_turn("c1", "Ada")
    assert result.messages == ["Hello Ada", "after"]
    assert result.context["conversation"]["fields"]["greeted"] is True
    assert [a["action"] for a in result.actions] == ["sendMessage", "setField", "sendMessage"]


def test_call_function_errors_run_on_error(lab):
    def boom(context):
        raise ValueError("no luck")

    def wrong_shape(context):
        return "just text"

    def bad_location(context):
        return {"actions": [change_location("nowhere")]}

    for fn, klass in ((boom, "ValueError"), (wrong_shape, "InvalidInputError"), (bad_location, "InvalidInputError")):
        flow = lab.flows.create("f", [CallFunction("fn", function=fn, on_error=error_report,
                                                   on_success=send_message("unreachable"))])
        result = flow.run_turn(f"c-{fn.__name__}", "x")
        assert result.answer == f"function|None|{klass}"


def test_call_function_error_without_handler_raises_the_functions_error(lab):
    def boom(context):
        raise KeyError("missing")

    flow = lab.flows.create("f", [CallFunction("fn", function=boom)])
    with pytest.raises(KeyError, match="missing"):
        flow.run_turn("c1", "x")


def test_functions_get_a_copy_of_the_context(lab):
    def vandal(context):
        context["session"]["hacked"] = True
        context["searchResults"].append("junk")
        return None

    flow = lab.flows.create("f", [CallFunction("fn", function=vandal)])
    result = flow.run_turn("c1", "x")
    assert result.context["session"] == {} and result.context["searchResults"] == []


def test_async_functions_are_awaited(lab):
    async def fetch(context):
        await asyncio.sleep(0)
        return {"actions": [send_message("async ok")]}

    flow = lab.flows.create("f", [CallFunction("fn", function=fetch)])
    assert flow.run_turn("c1", "x").answer == "async ok"


# -- Execute Logic ------------------------------------------------------------------------------


def test_execute_logic_rules_branch_on_context_fields(lab):
    flow = lab.flows.create("f", [
        ExecuteLogic("route", rules=[
            Rule("'refund' in customerLastMessage|lower", then=[set_field("session.intent", "refund"), "refunds"]),
            Rule(lambda c: len(c["derivedData"]["lastCustomerMessage"]) < 4, then=send_message("Say more?"),
                 otherwise=send_message("Let me look.")),
        ]),
        ExecuteLogic("refunds", rules=send_message("Refunds take five days.")),
    ])
    assert flow.run_turn("a", "I want a REFUND").answer == "Refunds take five days."
    assert flow.run_turn("b", "hm").answer == "Say more?"
    assert flow.run_turn("c", "where is my order").answer == "Let me look."
    rules = flow.run_turn("d", "refund").trace.of("rule")
    assert rules[0]["detail"].endswith("-> True")


def test_on_enter_and_on_leave_logic_of_other_behaviors(lab):
    def stamp(context):
        return {"actions": [set_field("session.visits", (context["session"].get("visits") or 0) + 1)]}

    flow = lab.flows.create("f", [
        CallFunction("count", function=stamp, on_enter=send_message("entering"),
                     on_leave=send_message("leaving"), on_success="end"),
        ExecuteLogic("end", rules=send_message(None, card={"title": "rich"})),
    ])
    result = flow.run_turn("c1", "x")
    assert [a.get("message") for a in result.actions if a["action"] == "sendMessage"] == [
        {"text": "entering"}, {"text": "leaving"}, {"card": {"title": "rich"}}]
    assert result.messages == ["entering", "leaving"]  # rich messages have no text
    assert result.context["session"]["visits"] == 1


def test_condition_on_a_missing_field_fails_the_turn_with_a_clear_error(lab):
    flow = lab.flows.create("f", [ExecuteLogic("r", rules=Rule("session.plan == 'pro'", then=send_message("pro")))])
    with pytest.raises(InvalidInputError, match="condition \"session.plan == 'pro'\""):
        flow.run_turn("c1", "x")


def test_unknown_behavior_in_a_rule_is_found_at_definition_time(lab):
    with pytest.raises(ConfigError, match="moves to unknown behavior 'nowhere'"):
        lab.flows.create("f", [ExecuteLogic("r", rules=Rule("true", then="nowhere"))])


def test_get_an_unknown_flow(lab):
    with pytest.raises(NotFoundError, match="no flow 'ghost'"):
        lab.flows.get("ghost")
