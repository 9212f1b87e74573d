"""The Lab and its resources as a whole: every public method answers wrong input with
promptlab's error tree, and no SQL text or stored value reaches an error message or a log."""

from __future__ import annotations

import asyncio
import inspect
import logging

import pytest

import promptlab as pl
from promptlab.store import new_guid, utcnow

RESOURCES = ["actions", "generations", "sessions", "feedback", "experiments", "contexts", "data", "flows"]
BAD = [object(), {"a"}, float("nan"), -1, "", "\x00zz", b"bytes", None, [object()], {"k": object()}]
# wait() polls for as long as it is told; run() of a bad dataset is covered by the runner's tests
SLOW = {("generations", "wait"), ("experiments", "run"), ("experiments", "arun")}


def call(method, kwargs):
    result = method(**kwargs)
    if inspect.iscoroutine(result):
        asyncio.run(result)
    elif inspect.isgenerator(result):
        list(result)


def public_methods(lab):
    for resource in RESOURCES:
        for name, method in inspect.getmembers(getattr(lab, resource), inspect.ismethod):
            if not name.startswith("_"):
                yield resource, name, method, list(inspect.signature(method).parameters.values())


def required(params):
    return [p for p in params if p.default is p.empty
            and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def test_every_public_method_answers_wrong_types_with_promptlab_errors(lab, tmp_path):
    lab.actions.create("a", prompt="{{x}}", model="sim:echo")
    lab.actions.create("b", prompt="B {{x}}", model="sim:echo")
    r = lab.actions.prompt("a", {"x": "hi"})
    lab.experiments.create("e", action_a="a", action_b="b")
    lab.contexts.create("kb")
    session = lab.sessions.create(action="a")
    # plausible values for required arguments, so that each optional one can be wrong on its own
    good = {"action": "a", "name": "kb", "guid": r.guid, "generation": r.guid, "generations": [r.guid],
            "experiment": "e", "dataset": [{"x": "1"}], "path": str(tmp_path / "out.jsonl"),
            "kind": "generations", "query": "refund", "documents": [{"text": "hello"}],
            "records": [{"guid": r.guid, "rating": 1}], "generation_a": r.guid, "generation_b": r.guid,
            "winner": "a", "session": session.guid, "input": {"x": "y"}, "context": "kb"}
    leaks, calls = [], 0
    for resource, name, method, params in public_methods(lab):
        if (resource, name) in SLOW:
            continue
        needed = required(params)
        attempts = [{p.name: bad for p in needed} for bad in BAD]
        if all(p.name in good for p in needed):
            for option in [p for p in params if p.default is not p.empty
                           and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]:
                attempts += [{**{p.name: good[p.name] for p in needed}, option.name: bad} for bad in BAD]
        for kwargs in attempts:
            calls += 1
            try:
                call(method, kwargs)
            except pl.PromptlabError:
                pass
            except Exception as exc:  # anything else is a leak
                leaks.append(f"{resource}.{name}({kwargs}): {type(exc).__name__}: {exc}")
    assert calls > 500 and leaks == []


def test_database_errors_carry_no_sql_and_no_values(lab, caplog):
    lab.actions.create("a", prompt="{{x}}", model="sim:echo")
    secret = "customer-secret-text-42"
    r = lab.actions.prompt("a", {"x": secret})
    row = dict(guid=r.guid, status="done", output=secret, cached=False, streaming=False, created_at=utcnow())
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(pl.ConfigError) as duplicate:  # the same primary key twice
            lab.store.insert_generation(row)
        with pytest.raises(pl.InvalidInputError) as too_big:  # an integer the column cannot hold
            lab.store.insert_generation({**row, "guid": new_guid(), "action_version": 2**70})
    texts = [str(duplicate.value), str(too_big.value), caplog.text]
    for text in texts:
        assert secret not in text and "INSERT" not in text.upper() and "SELECT" not in text.upper()
    assert duplicate.value.__cause__ is None and duplicate.value.__suppress_context__


# -- async twins ----------------------------------------------------------------------------------

TWINNED = ["actions", "generations", "sessions", "feedback", "experiments"]
NOT_IO = {("actions", "cached"), ("experiments", "plan_online")}  # no store access / a planning step


def twin_name(name):
    return "await_" if name == "wait" else f"a{name}"  # ``await`` is a keyword


def test_every_public_io_method_has_an_a_prefixed_async_twin_with_its_signature(lab):
    for resource in TWINNED:
        for name, method in inspect.getmembers(getattr(lab, resource), inspect.ismethod):
            if name.startswith("_") or inspect.iscoroutinefunction(method) or (resource, name) in NOT_IO:
                continue
            twin = getattr(getattr(lab, resource), twin_name(name), None)
            assert twin is not None and inspect.iscoroutinefunction(twin), f"{resource}.{name} has no async twin"
            params = list(inspect.signature(method).parameters)
            assert list(inspect.signature(twin).parameters)[:len(params)] == params, f"{resource}.{twin_name(name)}"


async def test_async_twins_never_touch_the_store_on_the_callers_thread(lab, tmp_path):
    import threading

    import sqlalchemy as sa

    lab.actions.create("a", prompt="{{x}}", model="sim:echo")
    lab.actions.create("b", prompt="B {{x}}", model="sim:echo")
    later = lab.actions.prompt("a", {"x": "later"}, async_mode=True)
    caller, on_caller = threading.get_ident(), []

    def seen(*_args):
        if threading.get_ident() == caller:
            on_caller.append(_args[2][:60])

    sa.event.listen(lab.store.engine, "before_cursor_execute", seen)
    try:
        act = await lab.actions.acreate("c", prompt="C {{x}}", model="sim:echo")
        await lab.actions.aget_action_prompt(act.name, {"x": "hi"})
        exp = await lab.experiments.acreate("e", action_a="a", action_b="b")
        assert (await lab.experiments.aget("e")).guid == exp.guid
        session = await lab.sessions.acreate(action="a", extUserId="u-1", name="chat")
        r = await lab.actions.aprompt("a", {"x": "hi"}, session=session.guid)
        assert (await lab.sessions.aget(session.guid)).messages[-1]["content"] == r.msg
        pending = await lab.generations.await_(later.feedback_url)
        assert pending.guid == later.guid and pending.status == "done"
        assert [g.guid for g in await lab.generations.alist(limit=1)] == [r.guid]
        record = await lab.feedback.alog(r.feedback_url, rating="Positive", issue="Vague")
        assert record.generation == r.guid and (await lab.feedback.alatest(r.guid))["rating"] == "Positive"
        await lab.feedback.aprefer(r.guid, pending.guid, winner="a")
        assert len(await lab.feedback.apreferences(r.guid)) == 1
        run = await lab.experiments.astart(exp, [{"x": "1"}])
        assert [x.guid for x in await lab.experiments.aruns(exp)] == [run.guid]
    finally:
        sa.event.remove(lab.store.engine, "before_cursor_execute", seen)
    assert on_caller == []
