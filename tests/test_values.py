"""The value boundary before SQL (promptlab/store/values.py), and the same bad values through
the Python API, the runner, exports and the gateway on SQLite and on PostgreSQL: the same
promptlab error or the same stored value on both, never a raw database error or a lost row."""

from __future__ import annotations

import json
import math

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st

import promptlab as pl
from promptlab.gateway import ApiKeys, create_app
from conftest import sim_requests
from promptlab.store.values import check_json, dumps, escape_text, problem, unescape_text

NASTY = "a\x00b \ue000 \ue0000 \x00\x00 end"


# -- the pure boundary -------------------------------------------------------------------------------


@given(st.text(alphabet=st.characters(codec=None, categories=None), max_size=50)
       | st.text(alphabet="\x00\ue000\ud800\udfff0ab", max_size=30))
def test_text_round_trips_except_lone_surrogates_which_become_the_replacement_character(text):
    stored = escape_text(text)
    assert "\x00" not in stored and not any("\ud800" <= c <= "\udfff" for c in stored)
    expected = "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    assert unescape_text(stored) == expected
    stored.encode("utf-8")  # always valid UTF-8


def test_json_problems_name_where_the_value_is():
    assert problem({"a": [1, {"b": float("nan")}]}, "input") == "input['a'][1]['b'] is nan, which is not valid JSON; use null"
    assert problem({"tags": {"x"}}, "input") == "input['tags'] is a set, which cannot be stored as JSON; pass a list"
    assert problem({1: "x"}, "metadata") == "metadata has a key 1 of type int; JSON keys are strings"
    assert problem({"ok": [1, 2.5, "x\x00", None, True]}) is None
    with pytest.raises(pl.InvalidInputError, match="input is a frozenset"):
        check_json(frozenset(), "input")
    deep: list = []
    for _ in range(150):
        deep = [deep]
    assert "nested more than 100 levels" in problem(deep)


def test_json_text_is_ascii_and_keeps_nul_but_not_lone_surrogates():
    text = dumps({"s": "a\x00b", "bad": "x\udc80y", "ok": "é😀"})
    assert text.isascii() and json.loads(text) == {"s": "a\x00b", "bad": "x\ufffdy", "ok": "é😀"}
    with pytest.raises(pl.InvalidInputError, match="inf"):
        dumps({"x": math.inf})


# -- through the API, on both stores ------------------------------------------------------------------


def test_nul_in_a_model_answer_and_its_input_is_kept(rec_lab, server):
    server.reply = lambda body: "before\x00after done"
    rec_lab.actions.create("ask", prompt="{{q}}", model="rec:m")
    r = rec_lab.actions.prompt("ask", {"q": NASTY})
    stored = rec_lab.generations.get(r.guid)
    assert stored.status == "done" and stored.msg == "before\x00after done"
    assert stored.input == {"q": NASTY}  # the input round-trips exactly


def test_nul_everywhere_in_feedback_and_metadata_round_trips(rec_lab):
    rec_lab.actions.create("ask", prompt="{{q}}", model="rec:m")
    r = rec_lab.actions.prompt("ask", {"q": "hi"}, ext_user_id="user\x00one")
    rec_lab.feedback.log(r.guid, rating="Positive", correction=NASTY, comment="lone \udcff surrogate",
                         metadata={"note": NASTY, "nested": [NASTY]})
    [row] = rec_lab.feedback.list()
    assert row.correction == NASTY and row.comment == "lone \ufffd surrogate"
    assert row.metadata == {"note": NASTY, "nested": [NASTY]}
    assert rec_lab.generations.get(r.guid).ext_user_id == "user\x00one"


def test_nan_in_feedback_metadata_is_refused_the_same_on_both_stores(rec_lab):
    rec_lab.actions.create("ask", prompt="{{q}}", model="rec:m")
    r = rec_lab.actions.prompt("ask", {"q": "hi"})
    for bad, message in [({"score": float("nan")}, r"metadata\['score'\] is nan"),
                         ({"when": float("inf")}, r"metadata\['when'\] is inf"),
                         ({"tags": {"a"}}, r"metadata\['tags'\] is a set")]:
        with pytest.raises(pl.InvalidInputError, match=message):
            rec_lab.feedback.log(r.guid, rating="Positive", metadata=bad)
    assert rec_lab.feedback.list() == []  # nothing half-written


def test_an_input_that_cannot_be_stored_is_refused_before_the_call_and_logged(rec_lab, server):
    rec_lab.actions.create("ask", prompt="{{q}}", model="rec:m")
    with pytest.raises(pl.InvalidInputError, match=r"input\['q'\] is a set, which cannot be stored as JSON"):
        rec_lab.actions.prompt("ask", {"q": {"a", "b"}})
    with pytest.raises(pl.InvalidInputError, match="input is a set"):
        rec_lab.actions.prompt("ask", {"a", "b"})  # the seed's "Request" example, as a set
    assert server.bodies == []  # nothing was sent (or paid for)
    rows = rec_lab.generations.list()
    assert len(rows) == 2 and {g.status for g in rows} == {"error"}
    assert all(g.input is None and "input_not_stored" in g.metadata for g in rows)


def test_exports_stay_valid_json_with_nul_text(rec_lab, server, tmp_path):
    server.reply = lambda body: "x\x00y"
    rec_lab.actions.create("ask", prompt="{{q}}", model="rec:m")
    r = rec_lab.actions.prompt("ask", {"q": "a\x00b"})
    rec_lab.feedback.log(r.guid, rating="Positive", correction="fixed\x00text")
    for kind in ("generations", "feedback", "finetune"):
        path = rec_lab.data.export(tmp_path / f"{kind}.jsonl", kind=kind).path
        lines = [json.loads(line) for line in open(path, encoding="utf-8")]
        assert lines and any("\x00" in text for text in strings(lines)), kind


def strings(value):
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def test_a_run_whose_row_makes_the_model_echo_nul_records_every_cell(lab):
    lab.actions.create("a", prompt="{{m}}", model="sim:echo")
    lab.actions.create("b", prompt="B {{m}}", model="sim:echo")
    exp = lab.experiments.create("nul", action_a="a", action_b="b")
    rows = [{"m": f"row {i}" + ("\x00 with a NUL" if i % 3 == 0 else "")} for i in range(30)]
    run = lab.experiments.run(exp, rows, concurrency=4, progress=False)
    assert run.status == "done" and len(run.cells()) == 60
    assert "\x00" in run.cells().query("row_index == 0").output.iloc[0]


def test_a_dataset_row_that_cannot_be_stored_names_its_row(lab):
    lab.actions.create("a", prompt="{{m}}", model="sim:echo")
    lab.actions.create("b", prompt="B {{m}}", model="sim:echo")
    exp = lab.experiments.create("bad rows", action_a="a", action_b="b")
    with pytest.raises(pl.InvalidInputError, match=r"row 2: the row\['m'\] is a set"):
        lab.experiments.run(exp, [{"m": "ok"}, {"m": {"x"}}], progress=False)
    assert lab.experiments.runs(exp) == []


async def test_the_gateway_stores_and_answers_nul_text_plain_and_streamed(lab):
    lab.actions.create("echo", prompt="{{text}}", model="sim:echo")
    _, token = ApiKeys(lab.store).create("tests", ["run"])
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(lab)), base_url="http://gw.test",
                                  headers={"Authorization": f"Bearer {token}"}) as client:
        plain = await client.post("/v1/actions/", json={"action": "echo", "input": {"text": "a\x00b"}})
        assert plain.status_code == 200 and plain.json()["msg"] == "a\x00b"
        streamed = await client.post("/v1/actions/", json={"action": "echo", "input": {"text": "c\x00d"},
                                                            "streaming": True})
        assert streamed.status_code == 200 and "event: done" in streamed.text
    assert sorted(g.status for g in lab.generations.list()) == ["done", "done"]
    assert sorted(g.msg for g in lab.generations.list()) == ["a\x00b", "c\x00d"]


@pytest.mark.parametrize("bound", [False, True])
def test_a_malformed_metadata_filter_is_refused_with_or_without_a_bound_context(lab, bound):
    if bound:
        lab.contexts.create("kb")
        lab.contexts.add("kb", [{"text": "Refunds take 5 days.", "metadata": {"tenant": "a"}}])
    lab.actions.create("ask", prompt="{{question}}" + (" {{context}}" if bound else ""), model="sim:echo",
                       context={"name": "kb"} if bound else None)
    with pytest.raises(pl.InvalidInputError, match=r"\$where"):
        lab.actions.prompt("ask", {"question": "refunds?"}, metadata_filter={"$where": "1"})
    assert lab.providers.sim_app.state.stats.requests == 0


def nested(depth: int, leaf="x") -> dict:
    value: object = leaf
    for _ in range(depth):
        value = {"d": value}
    return value


HUGE = ("Lorem ipsum \x00 dolor é😀 " * 100_000)[:2_000_000]  # 2 M characters, NUL and astral ones inside


def test_huge_text_and_deep_json_are_stored_whole_through_api_and_runner(lab):
    lab.actions.create("echo", prompt="{{text}}", model="sim:echo")
    r = lab.actions.prompt("echo", {"text": HUGE, "deep": nested(60)})
    stored = lab.generations.get(r.guid)
    assert stored.msg == HUGE and stored.input == {"text": HUGE, "deep": nested(60)}
    lab.feedback.log(r.guid, rating="Positive", correction=HUGE, metadata={"deep": nested(60)})
    [row] = lab.feedback.list()
    assert row.correction == HUGE and row.metadata == {"deep": nested(60)}

    lab.actions.create("echo2", prompt="again {{text}}", model="sim:echo")
    exp = lab.experiments.create("huge", action_a="echo", action_b="echo2")
    run = lab.experiments.run(exp, [{"text": "short"}, {"text": HUGE, "deep": nested(60)}], progress=False)
    assert run.status == "done" and sorted(map(len, run.cells().output)) == [5, 11, len(HUGE), len(HUGE) + 6]


def test_json_nested_too_deep_is_refused_before_anything_is_sent_or_stored(lab):
    lab.actions.create("echo", prompt="{{text}}", model="sim:echo")
    with pytest.raises(pl.InvalidInputError, match="nested more than 100 levels"):
        lab.actions.prompt("echo", {"text": "hi", "deep": nested(150)})
    r = lab.actions.prompt("echo", {"text": "hi"})
    with pytest.raises(pl.InvalidInputError, match="nested more than 100 levels"):
        lab.feedback.log(r.guid, rating="Positive", metadata={"deep": nested(150)})
    exp = lab.experiments.create("deep", action_a="echo", action_b="echo")
    with pytest.raises(pl.InvalidInputError, match="row 1: .*nested more than 100 levels"):
        lab.experiments.run(exp, [{"text": "a", "deep": nested(150)}], progress=False)
    assert sim_requests(lab) == 1 and lab.feedback.list() == [] and lab.experiments.runs(exp) == []


async def test_the_gateway_keeps_huge_text_and_refuses_deep_or_non_finite_json_without_a_500(lab):
    lab.actions.create("echo", prompt="{{text}}", model="sim:echo")
    _, token = ApiKeys(lab.store).create("tests", ["run", "feedback"])
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(lab)), base_url="http://gw.test",
                                  headers=headers, timeout=60) as client:  # the default 1 MB body limit
        too_big = await client.post("/v1/actions/", json={"action": "echo", "input": {"text": HUGE}})
        assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "payload_too_large"
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=create_app(lab, max_body_bytes=20_000_000)),
                                  base_url="http://gw.test", headers=headers, timeout=60) as client:
        huge = await client.post("/v1/actions/", json={"action": "echo", "input": {"text": HUGE}})
        assert huge.status_code == 200 and huge.json()["msg"] == HUGE
        deep = await client.post("/v1/actions/", json={"action": "echo", "input": {"text": "x", "d": nested(20)}})
        assert deep.status_code == 200
        for body in (b'{"action": "echo", "input": {"text": "x", "n": NaN}}',
                     b'{"action": "echo", "input": {"text": "x", "n": Infinity}}',
                     json.dumps({"action": "echo", "input": {"text": "x", "d": nested(150)}}).encode(),
                     b'{"action": "echo", "input": {"text": "lone \\ud800 surrogate"}}'):
            refused = await client.post("/v1/actions/", content=body, headers={"Content-Type": "application/json"})
            assert refused.status_code in (400, 422), (body[:60], refused.status_code, refused.text[:200])
    assert [len(g.msg) for g in lab.generations.list(limit=10) if g.status == "done"].count(len(HUGE)) == 1
    assert sim_requests(lab) == 2
