"""The second seed's Python examples, run unchanged against promptlab flows.

The functions below are the seed's code as written (the seed's text lost its indentation; it is
restored, nothing else is changed). Each test wires one example into a flow and runs a turn
offline: ``sim:echo`` for the model, an ``httpx2.MockTransport`` standing in for
icanhazdadjoke.com, and context libraries for the searches.
"""

from __future__ import annotations

import json

import httpx2
import pytest

from promptlab.flows import (
    CallAPI,
    CallFunction,
    HttpTarget,
    Prompt,
    PromptAI,
    Search,
    SearchSpec,
    quiq,
)

# -- the seed's examples, verbatim ------------------------------------------------------------


def build_basic(llm, context):
    content = context['derivedData']['lastCustomerMessage']
    return {
        "request": {
            "messages": [{"role": "user", "content": content}]
        }
    }


def handle_basic(llm, context, prompt, completion):
    return { "actions": [
        {
            "action": "sendMessage",
            "message": {"text": completion}
        }
    ]}


def request_joke(context):
    joke_topic = context['derivedData']['lastCustomerMessage']
    return {
        "headers": {"Accept": "application/json"},
        "method": "GET",
        "params": {"term": joke_topic},
        "path": "/search"
    }


def parse_from_dadabase(response, context):
    joke = response['body']['results'][0]['joke']
    if joke:
        return {
            "actions": [
                {"action": "sendMessage", 'message': {'text': joke}}
            ]
        }


def print_first_search_titles(context):
    # The seed's searchResults loop, as the body of a Call Function function.
    first_search = context['searchResults'][0]
    titles = []
    for result in first_search['results']:
        titles.append(result['record']['title'])
    print("\n".join(titles))


def format_with_quiq_ctx(context):
    text = quiq.ctx.format_search_results('my-search-resource', "{title} - {body}")
    return {"actions": [{"action": "sendMessage", "message": {"text": text}}]}


# -- tests ------------------------------------------------------------------------------------


def test_build_basic_and_handle_basic_answer_the_customer(lab):
    flow = lab.flows.create("basic", [PromptAI("reply", prompts=[
        Prompt("basic", "sim:echo", build_basic, handle_basic)])])

    result = flow.run_turn("conv-1", "Tell me about refunds")

    assert result.actions == [{"action": "sendMessage", "message": {"text": "Tell me about refunds"}}]
    assert result.context["prompts"]["basic"]["completion"] == "Tell me about refunds"
    generation = lab.generations.get(result.context["prompts"]["basic"]["guid"])
    assert generation.messages == [{"role": "user", "content": "Tell me about refunds"}]
    assert generation.metadata["flow"] == "basic" and generation.metadata["prompt"] == "basic"


def test_request_joke_and_parse_from_dadabase_call_the_target(lab):
    seen = []

    def dadabase(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        term = request.url.params["term"]
        return httpx2.Response(200, json={"results": [{"id": "R7", "joke": f"A joke about {term}."}],
                                          "search_term": term})

    target = HttpTarget("icanhazdadjoke", "https://icanhazdadjoke.com/api",
                        transport=httpx2.MockTransport(dadabase))
    flow = lab.flows.create("jokes", [CallAPI("joke", target="icanhazdadjoke",
                                              request_builder=request_joke,
                                              response_handler=parse_from_dadabase)],
                            targets=[target])

    result = flow.run_turn("conv-1", "cats")

    assert result.answer == "A joke about cats."
    assert len(seen) == 1
    assert str(seen[0].url) == "https://icanhazdadjoke.com/api/search?term=cats"
    assert seen[0].method == "GET" and seen[0].headers["accept"] == "application/json"
    [api_result] = result.context["apiResults"]
    assert api_result["targetId"] == "icanhazdadjoke"
    assert api_result["request"] == request_joke(result.context)
    assert api_result["response"]["statusCode"] == 200
    assert api_result["response"]["body"]["results"][0]["joke"] == "A joke about cats."


def _kb(lab, name):
    lab.contexts.create(name)
    lab.contexts.add(name, [
        {"id": "refunds", "title": "Refunds", "body": "Refunds are paid within five business days."},
        {"id": "returns", "title": "Returns", "body": "Returns are accepted for thirty days."},
        {"id": "shipping", "title": "Shipping", "body": "Shipping is free over fifty dollars."},
    ])


def test_the_search_results_loop_prints_the_titles_of_the_first_search(lab, capsys):
    _kb(lab, "help-center")
    flow = lab.flows.create("titles", [
        Search("search", searches=[SearchSpec("help-center", "customerLastMessage", top_k=2)],
               on_success="titles"),
        CallFunction("titles", function=print_first_search_titles),
    ])

    result = flow.run_turn("conv-1", "how many days for refunds and returns")

    hits = result.context["searchResults"][0]["results"]
    expected = "\n".join(hit["record"]["title"] for hit in hits)
    assert len(hits) == 2 and set(expected.split("\n")) == {"Refunds", "Returns"}
    assert capsys.readouterr().out == expected + "\n"


def test_quiq_ctx_format_search_results_formats_the_named_resource(lab):
    _kb(lab, "my-search-resource")
    _kb(lab, "other")
    flow = lab.flows.create("fmt", [
        Search("search", searches=[SearchSpec("other", "customerLastMessage", top_k=1),
                                   SearchSpec("my-search-resource", "customerLastMessage", top_k=2)],
               on_success="format"),
        CallFunction("format", function=format_with_quiq_ctx),
    ])

    result = flow.run_turn("conv-1", "shipping dollars")

    mine = result.context["searchResults"][1]
    assert mine["resource"] == "my-search-resource"
    assert result.answer == "\n".join(f"{h['record']['title']} - {h['record']['body']}"
                                      for h in mine["results"])
    assert result.answer.startswith("Shipping - Shipping is free over fifty dollars.")


def test_quiq_ctx_outside_a_flow_function_is_a_clear_error():
    from promptlab.errors import ConfigError

    with pytest.raises(ConfigError, match="only work inside a function called by a flow"):
        quiq.ctx.format_search_results('my-search-resource', "{title} - {body}")


def test_prompt_variables_hold_the_completion_or_the_handlers_override(lab):
    def shout(llm, context, prompt, response, completion):
        assert response["choices"][0]["message"]["content"] == completion
        assert prompt == build_basic(llm, context)["request"]
        return {"completion": completion.upper()}

    flow = lab.flows.create("vars", [PromptAI("p", prompts=[
        Prompt("plain", "sim:echo", build_basic),
        Prompt("loud", "sim:echo", build_basic, shout)])])

    result = flow.run_turn("conv-1", "quiet please")

    assert result.context["prompts"]["plain"]["completion"] == "quiet please"
    assert result.context["prompts"]["loud"]["completion"] == "QUIET PLEASE"
    assert json.dumps(result.context)  # the context stays plain JSON
