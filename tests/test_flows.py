"""Flows: the turn engine (transitions, resting points, persistence, per-turn clearing, trace),
the store area, ``lab.flows`` and A/B comparison of two flows."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

import promptlab as pl
from promptlab.errors import ConfigError, InvalidInputError, StoreError
from promptlab.experiments.evaluators import contains, llm_judge
from promptlab.flows import (
    CallFunction,
    ExecuteLogic,
    Flow,
    Prompt,
    PromptAI,
    Rule,
    Search,
    SearchSpec,
    send_message,
    set_field,
)
from promptlab.flows.resource import normalize_conversations


def echo_build(llm, context):
    return {"request": {"messages": [{"role": "user", "content": context["derivedData"]["lastCustomerMessage"]}]}}


def echo_handle(llm, context, completion):
    return {"actions": [send_message(completion)]}


def echo_flow(lab, name="echo"):
    return lab.flows.create(name, [PromptAI("reply", prompts=[Prompt("p", "sim:echo", echo_build, echo_handle)])])


# -- definition ---------------------------------------------------------------------------------


def test_flow_definition_is_validated():
    reply = ExecuteLogic("reply", rules=send_message("hi"))
    with pytest.raises(ConfigError, match="duplicate behavior name"):
        Flow("f", [reply, ExecuteLogic("reply")])
    with pytest.raises(ConfigError, match="start 'nope' is not a behavior"):
        Flow("f", [reply], start="nope")
    with pytest.raises(ConfigError, match="needs at least one behavior"):
        Flow("f", [])
    with pytest.raises(ConfigError, match="is not a behavior"):
        Flow("f", ["reply"])
    with pytest.raises(ConfigError, match="flow name"):
        Flow("bad name!", [reply])
    with pytest.raises(ConfigError, match="max_steps"):
        Flow("f", [reply], max_steps=0)
    flow = Flow("f", [ExecuteLogic("a", rules=Rule("true", then="b")), ExecuteLogic("b", on_enter="a")])
    assert flow.start == "a"
    assert flow.edges() == [{"from": "a", "handler": "rules", "to": "b"},
                            {"from": "b", "handler": "on_enter", "to": "a"}]


def test_an_unbound_flow_explains_how_to_bind(lab):
    flow = Flow("f", [ExecuteLogic("reply", rules=send_message("hi"))])
    with pytest.raises(ConfigError, match="not bound to a Lab"):
        flow.run_turn("c1", "x")
    assert flow.bind(lab).run_turn("c1", "x").answer == "hi"
    assert lab.flows.add(flow).lab is lab and lab.flows.get("f").name == "f"
    assert Flow("g", [ExecuteLogic("reply", rules=send_message("yo"))], lab=lab).run_turn("c1", "x").answer == "yo"


def test_bad_turn_input_is_refused(lab):
    flow = echo_flow(lab)
    with pytest.raises(InvalidInputError, match="conversation id"):
        flow.run_turn("", "hi")
    with pytest.raises(InvalidInputError, match="conversation id"):
        flow.run_turn("x" * 201, "hi")
    with pytest.raises(InvalidInputError, match="customer message must be text"):
        flow.run_turn("c1", 42)
    assert flow.run_turn("c1", {"text": "dict message"}).answer == "dict message"


# -- turns --------------------------------------------------------------------------------------


def remember(context):
    n = (context["session"].get("count") or 0) + 1
    return {"actions": [set_field("session.count", n), set_field("conversation.last", context["turn"]),
                        send_message(f"turn {context['turn']} count {n} "
                                     f"history {len(context['conversation']['messages'])}")]}


def test_session_and_conversation_fields_persist_across_turns(lab):
    flow = lab.flows.create("mem", [CallFunction("remember", function=remember)])
    first = flow.run_turn("c1", "a")
    second = flow.run_turn("c1", "b")
    other = flow.run_turn("c2", "a")
    assert first.answer == "turn 1 count 1 history 1"
    assert second.answer == "turn 2 count 2 history 3"  # customer, bot, customer
    assert other.answer == "turn 1 count 1 history 1"
    state = flow.state("c1")
    assert state["session"] == {"count": 2} and state["fields"] == {"last": 2} and state["turns"] == 2
    assert [m["author"] for m in state["messages"]] == ["Customer", "Bot", "Customer", "Bot"]
    assert second.context["botSession"] == {"count": 2}


def test_a_second_flow_instance_reads_the_stored_conversation(db_url):
    with pl.Lab(db_url) as lab:
        lab.flows.create("mem", [CallFunction("remember", function=remember)]).run_turn("c1", "a")
    with pl.Lab(db_url) as lab:
        flow = lab.flows.create("mem", [CallFunction("remember", function=remember)])
        assert flow.run_turn("c1", "b").answer == "turn 2 count 2 history 3"


def test_per_turn_keys_are_cleared_for_the_next_turn(lab):
    lab.contexts.create("kb")
    lab.contexts.add("kb", [{"text": "Refunds take five days."}])

    def peek(context):
        return {"actions": [send_message(f"{len(context['searchResults'])} {sorted(context['prompts'])} "
                                         f"{context['error']}")]}

    flow = lab.flows.create("f", [
        Search("search", searches=[SearchSpec("kb")], on_success="ask"),
        PromptAI("ask", prompts=[Prompt("p", "sim:echo", echo_build)], on_success="peek"),
        CallFunction("peek", function=peek),
    ])
    assert flow.run_turn("c1", "refunds").answer == "1 ['p'] None"
    assert flow.run_turn("c1", "refunds").answer == "1 ['p'] None"  # not 2: cleared between turns
    stored = lab.store.get_flow_conversation("f", "c1")
    assert set(stored) >= {"session", "fields", "messages", "location", "turns"}
    assert "searchResults" not in str(stored["session"])


def test_resting_points_decide_where_the_next_turn_starts(lab):
    flow = lab.flows.create("f", [
        ExecuteLogic("greet", rules=[send_message("hello"), "ask"]),
        PromptAI("ask", prompts=[Prompt("p", "sim:echo", echo_build, echo_handle)]),
    ])
    first = flow.run_turn("c1", "one")
    assert first.trace.behaviors == ["greet", "ask"] and first.location == "ask"
    second = flow.run_turn("c1", "two")
    assert second.trace.behaviors == ["ask"] and second.answer == "two"

    back = lab.flows.create("g", [
        ExecuteLogic("greet", rules=[send_message("hello"), "done"]),
        ExecuteLogic("done", rules=send_message("bye")),
    ])
    assert back.run_turn("c1", "one").location == "greet"  # not a resting point: back to start


def test_wait_for_response_rests_at_the_target(lab):
    flow = lab.flows.create("f", [
        ExecuteLogic("ask_order", rules=[send_message("Your order number?"), "lookup"], wait_for_response=True),
        ExecuteLogic("lookup", rules=[set_field("session.order", expression="customerLastMessage"),
                                      send_message("Looking it up.")]),
    ])
    first = flow.run_turn("c1", "where is my order")
    assert first.messages == ["Your order number?"] and first.location == "lookup"
    second = flow.run_turn("c1", "A-123")
    assert second.trace.behaviors == ["lookup"] and second.context["session"]["order"] == "A-123"


def test_a_looping_flow_is_stopped_and_leaves_no_state(lab):
    flow = lab.flows.create("loop", [ExecuteLogic("a", rules="b"), ExecuteLogic("b", rules="a")], max_steps=7)
    with pytest.raises(ConfigError, match="entered 7 behaviors in one turn"):
        flow.run_turn("c1", "x")
    assert flow.state("c1") is None and lab.flows.turns(flow="loop").empty
    [row] = lab.generations.list(model="flow:loop")
    assert row.status == "error" and row.error_type == "ConfigError"


def test_the_turn_answer_is_a_generation_that_takes_feedback(lab):
    flow = echo_flow(lab)
    flow.run_turn("c1", "first")
    result = flow.run_turn("c1", "second")
    turn = lab.generations.get(result.guid)
    assert turn.model == "flow:echo" and turn.status == "done" and turn.msg == "second"
    assert turn.input == "second"
    assert turn.messages == [{"role": "user", "content": "first"}, {"role": "assistant", "content": "first"},
                             {"role": "user", "content": "second"}]
    assert turn.metadata["generations"] == result.generations and turn.metadata["turn"] == 2
    assert turn.usage["total_tokens"] == lab.generations.get(result.generations[0]).usage["total_tokens"]
    lab.feedback.log(result.guid, rating="Negative", correction="Say it differently.", issue="Vague")
    assert lab.feedback.latest(result.guid)["correction"] == "Say it differently."
    exported = lab.data.to_pandas(kind="generations")
    assert {"flow:echo", "sim:echo"} <= set(exported["model"])


def test_turns_are_logged_with_their_trace(lab):
    flow = echo_flow(lab)
    result = flow.run_turn("c1", "hello")
    turns = lab.flows.turns(flow="echo")
    assert list(turns["answer"]) == ["hello"] and list(turns["guid"]) == [result.guid]
    assert turns.iloc[0]["generations"] == result.generations
    assert flow.turns("c1").shape[0] == 1
    trace = lab.flows.trace(result.guid)
    assert list(trace["event"]) == [e["event"] for e in result.trace]
    conversations = lab.flows.conversations("echo")
    assert list(conversations["conversation"]) == ["c1"] and list(conversations["location"]) == ["reply"]


def test_trace_lists_behaviors_handlers_and_timings(lab):
    flow = lab.flows.create("f", [
        ExecuteLogic("route", rules=Rule("true", then="ask")),
        PromptAI("ask", prompts=[Prompt("p", "sim:echo", echo_build, echo_handle)],
                 on_success=set_field("session.done", True)),
    ])
    result = flow.run_turn("c1", "x")
    frame = result.trace.to_pandas()
    assert list(frame.columns) == ["step", "t_ms", "behavior", "kind", "event", "detail", "duration_ms"]
    events = list(frame["event"])
    for needed in ("enter", "rule", "action", "exit", "function", "prompt", "handler", "rest"):
        assert needed in events
    assert result.trace.behaviors == ["route", "ask"]
    assert frame["t_ms"].is_monotonic_increasing
    assert list(result.trace.to_pandas(timings=False).columns) == ["step", "behavior", "kind", "event", "detail"]
    assert "route -> ask" in repr(result.trace)


def test_concurrent_turns_of_one_conversation_do_not_overwrite_each_other(lab):
    flow = echo_flow(lab)
    flow.run_turn("c1", "a")
    state = {"location": "reply", "session": {}, "fields": {}, "messages": [], "turns": 2}
    from promptlab.store import new_guid, utcnow

    stale_turn = {"guid": new_guid(), "flow_name": "echo", "conversation_id": "c1", "turn": 2, "message": "b",
                  "answer": "", "actions": [], "trace": [], "generations": [], "created_at": utcnow()}
    generation = {"guid": stale_turn["guid"], "status": "done", "model": "flow:echo", "cached": False,
                  "streaming": False, "created_at": utcnow()}
    with pytest.raises(StoreError, match="got another turn while this one ran"):
        lab.store.save_flow_turn("echo", "c1", 0, state, stale_turn, generation)  # it already has 1 turn
    flow.run_turn("c1", "b")
    with pytest.raises(StoreError, match="got another turn"):
        lab.store.save_flow_turn("echo", "c1", 1, state, stale_turn, generation)  # now it has 2
    assert flow.state("c1")["turns"] == 2


def test_reset_forgets_a_conversation(lab):
    flow = lab.flows.create("mem", [CallFunction("remember", function=remember)])
    flow.run_turn("c1", "a")
    assert flow.reset("c1") is True and flow.reset("c1") is False
    assert flow.run_turn("c1", "a").answer == "turn 1 count 1 history 1"


async def test_arun_turn(lab):
    flow = echo_flow(lab)
    result = await flow.arun_turn("c1", "async hello")
    assert result.answer == "async hello"


def test_flow_tables_exist_after_migration(lab):
    tables = set(sa.inspect(lab.store.engine).get_table_names())
    assert {"flow_conversations", "flow_turns"} <= tables


# -- A/B ----------------------------------------------------------------------------------------


def test_normalize_conversations():
    convs = normalize_conversations(["hi", ["a", "b"], {"id": "x", "message": "m", "expected": "e", "tier": 1}])
    assert [c["id"] for c in convs] == ["c1", "c2", "x"]
    assert convs[1]["messages"] == ["a", "b"] and convs[2]["expected"] == ["e"] and convs[2]["tier"] == 1
    with pytest.raises(InvalidInputError, match="row 1: a conversation needs 'messages'"):
        normalize_conversations([{"messages": []}])
    with pytest.raises(InvalidInputError, match="'expected' has 1 values for 2 messages"):
        normalize_conversations([{"messages": ["a", "b"], "expected": ["x"]}])
    with pytest.raises(InvalidInputError, match="duplicate conversation id"):
        normalize_conversations([{"id": "a", "messages": ["x"]}, {"id": "a", "messages": ["y"]}])
    with pytest.raises(InvalidInputError, match="empty"):
        normalize_conversations([])


def test_compare_two_flows_over_conversations(lab):
    def polite(llm, context, completion):
        return {"actions": [send_message(f"Thanks for asking! {completion}")]}

    flow_a = echo_flow(lab, "plain")
    lab.flows.create("polite", [PromptAI("reply", prompts=[Prompt("p", "sim:echo", echo_build, polite)])])
    lab.actions.create("judge", model="sim:judge",
                       prompt="Score 0-100.\n\nQuestion:\n{{input}}\n\nAnswer:\n{{output}}\n\n"
                              "Reference:\n{{reference}}")
    conversations = [
        {"id": "refund", "messages": ["refund please", "how long"], "expected": ["refund", "long"]},
        "thanks",
    ]
    df = lab.flows.compare(flow_a, "polite", conversations,
                           evaluators=[contains("thanks"), llm_judge("judge", name="judge")])

    assert list(df[["conversation", "turn"]].itertuples(index=False, name=None)) == [
        ("refund", 1), ("refund", 2), ("c2", 1)]
    assert list(df["answer_a"]) == ["refund please", "how long", "thanks"]
    assert list(df["answer_b"]) == ["Thanks for asking! refund please", "Thanks for asking! how long",
                                    "Thanks for asking! thanks"]
    assert list(df["contains:thanks_a"]) == [0.0, 0.0, 1.0] and list(df["contains:thanks_b"]) == [1.0, 1.0, 1.0]
    assert df["judge_a"].between(0, 1).all() and not df["judge_a"].isna().any()
    assert df[["error_a", "error_b"]].isna().all().all()
    run = df.attrs["run"]
    assert df.attrs["flow_a"] == "plain" and df.attrs["flow_b"] == "polite"

    turn_a = lab.generations.get(df.loc[0, "guid_a"])
    assert turn_a.model == "flow:plain" and turn_a.variant == "a" and turn_a.run == run
    assert turn_a.metadata["run"] == run and turn_a.metadata["source_conversation"] == "refund"
    inner = lab.generations.list(run=run, model="sim:echo")
    assert len(inner) == 6 and {g.variant for g in inner} == {"a", "b"}
    # second turn of the conversation continued it (history), per variant
    assert lab.generations.get(df.loc[1, "guid_b"]).messages[0] == {"role": "user", "content": "refund please"}
    scores = lab.feedback.list(generation=df.loc[2, "guid_b"])
    assert {(f.evaluator, f.score, f.source) for f in scores} >= {("contains:thanks", 1.0, "evaluator")}
    assert lab.flows.get("plain") is flow_a


def test_compare_records_turn_errors_and_goes_on(lab):
    def fragile(context):
        if "boom" in context["derivedData"]["lastCustomerMessage"]:
            raise RuntimeError("exploded")
        return {"actions": [send_message("fine")]}

    good = lab.flows.create("good", [ExecuteLogic("r", rules=send_message("fine"))])
    bad = lab.flows.create("bad", [CallFunction("f", function=fragile)])
    df = lab.flows.compare(good, bad, [["boom", "after"]], evaluators=[contains("fine")])
    assert list(df["error_b"].fillna("")) == ["RuntimeError: exploded", ""]
    assert df["answer_b"].isna().tolist() == [True, False] and df.loc[1, "answer_b"] == "fine"
    assert math.isnan(df.loc[0, "contains:fine_b"]) and df.loc[1, "contains:fine_b"] == 1.0
    with pytest.raises(ConfigError, match="concurrency"):
        lab.flows.compare(good, bad, ["x"], concurrency=0)
