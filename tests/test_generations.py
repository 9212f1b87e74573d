"""lab.generations: the generation log, feedback URLs, and waiting for async-mode generations.

Every test using ``lab`` runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import pytest

import promptlab as pl
from promptlab.generations import feedback_url, generation_guid


def test_feedback_url_is_absolute_under_a_gateway_and_gateway_relative_without_one():
    assert feedback_url(None, "g-1") == "/v1/data/g-1"
    assert feedback_url("https://gw.example/", "g-1") == "https://gw.example/v1/data/g-1"
    for url in ("/v1/data/g-1", "https://gw.example/v1/data/g-1", "https://gw.example/v1/data/g-1/feedback",
                "http://localhost:8080/base/v1/data/g-1/?x=1", "g-1"):
        assert generation_guid(url) == "g-1"
    for bad in ("", None, 3, "/v1/data/", "/v1/data/a/b"):
        with pytest.raises(pl.InvalidInputError):
            generation_guid(bad)


@pytest.fixture
def echo(lab):
    return lab.actions.create("echo", prompt="{{text}}", model="sim:echo")


def test_get_and_wait_accept_the_feedback_url(lab, echo):
    r = lab.actions.prompt("echo", "later", async_mode=True)
    assert r.feedback_url == f"/v1/data/{r.guid}"
    done = lab.generations.wait(r.feedback_url)
    assert done.status == "done" and done.msg == "later" and done.feedback_url == r.feedback_url
    assert lab.generations.get(r.feedback_url).guid == r.guid
    with pytest.raises(pl.ConfigError, match="timeout"):
        lab.generations.wait(r.guid, timeout=-1)


async def test_async_twins_read_and_await_generations(lab, echo):
    started = [await lab.actions.aprompt("echo", f"t{i}", async_mode=True) for i in range(3)]
    done = [await lab.generations.await_(g.guid) for g in started]
    assert [g.msg for g in done] == ["t0", "t1", "t2"] and all(g.status == "done" for g in done)
    assert (await lab.generations.aget(started[0].feedback_url)).msg == "t0"
    assert [g.guid for g in await lab.generations.alist(limit=2)] == [started[2].guid, started[1].guid]
    assert len(await lab.generations.ato_pandas()) == 3
    with pytest.raises(pl.NotFoundError):
        await lab.generations.await_("no-such-generation", timeout=1)
    with pytest.raises(pl.ConfigError, match="poll_interval"):
        await lab.generations.await_(started[0].guid, poll_interval=None)


async def test_await_of_a_generation_another_process_runs_polls_the_store(lab, echo):
    # A pending row with no in-flight task here: as if another process sharing the store ran it.
    call = await lab.engine.plan("echo", "elsewhere")
    lab.store.insert_generation(call.row())
    with pytest.raises(TimeoutError, match="still pending"):
        await lab.generations.await_(call.guid, timeout=0.2, poll_interval=0.01)
    lab.store.update_generation(call.guid, {"status": "done", "output": "elsewhere"})
    assert (await lab.generations.await_(call.guid, timeout=5)).msg == "elsewhere"
