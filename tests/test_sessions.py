"""lab.sessions: the seed's "Sessions & Memory" (create a session, then run an action in it).

Every test using ``lab`` runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import pytest

import promptlab as pl

SEED_ACTION_INPUT = {"topic": "Machine Learning.", "task": "Help me build my first ML feature"}


@pytest.fixture
def coach(lab):
    return lab.actions.create("coach", system="You are a coach.", prompt="{{task}} ({{topic}})", model="sim:echo")


def test_the_sessions_user_and_name_go_with_every_generation_of_the_session(lab, coach):
    # The seed's two steps, with its spellings.
    session = lab.sessions.create(action=coach.guid, extUserId="elon@musk.net",
                                  name="A conversation about X.com with Elon Musk")
    first = lab.actions.prompt(action=coach.guid, input=SEED_ACTION_INPUT, session=session.guid)
    streamed = lab.actions.prompt(coach.guid, SEED_ACTION_INPUT, session=session.guid, streaming=True)
    "".join(streamed.stream)
    for generation in (first, streamed, lab.generations.get(first.guid), lab.generations.get(streamed.guid)):
        assert generation.session == session.guid and generation.ext_user_id == "elon@musk.net"
        assert generation.metadata["session_name"] == "A conversation about X.com with Elon Musk"
    # A call's own ext_user_id wins.
    own = lab.actions.prompt(coach.guid, SEED_ACTION_INPUT, session=session.guid, ext_user_id="assistant-7")
    assert own.ext_user_id == "assistant-7" == lab.generations.get(own.guid).ext_user_id
    # The generation log finds the session's generations by its user.
    assert {g.guid for g in lab.generations.list(ext_user_id="elon@musk.net")} == {first.guid, streamed.guid}
    # A failed call of the session is logged with its user too.
    with pytest.raises(pl.MissingVariablesError):
        lab.actions.prompt(coach.guid, {"task": "no topic"}, session=session.guid)
    assert lab.generations.list(limit=1, status="error")[0].ext_user_id == "elon@musk.net"


def test_a_session_without_user_or_name_adds_nothing(lab, coach):
    session = lab.sessions.create(action="coach")
    r = lab.actions.prompt("coach", SEED_ACTION_INPUT, session=session.guid)
    assert r.ext_user_id is None and "session_name" not in (r.metadata or {})


def test_the_experiment_form_carries_the_sessions_user(lab, coach):
    lab.actions.create("coach-v2", system="Be warm.", prompt="{{task}}", model="sim:echo")
    exp = lab.experiments.create("tone", action_a="coach", action_b="coach-v2")
    session = lab.sessions.create(action="coach", ext_user_id="u-1")
    r = lab.experiments.prompt(experiment_guid=exp.guid, input=SEED_ACTION_INPUT, session=session.guid)
    assert r.experiment == exp.guid and r.ext_user_id == "u-1"


def test_find_reads_a_session_without_its_messages(lab, coach):
    session = lab.sessions.create(action="coach", ext_user_id="u-2", name="n")
    lab.actions.prompt("coach", SEED_ACTION_INPUT, session=session.guid)
    found = lab.sessions.find(session.guid)
    assert (found.guid, found.ext_user_id, found.name, found.messages) == (session.guid, "u-2", "n", [])
    assert len(lab.sessions.get(session.guid).messages) == 2
    with pytest.raises(pl.NotFoundError, match="session"):
        lab.sessions.find("no-such-session")
    with pytest.raises(pl.InvalidInputError, match="disagree"):
        lab.sessions.create(ext_user_id="a", extUserId="b")


async def test_async_twins_create_and_read_sessions(lab, coach):
    # The seed's example: await klu.sessions.create(action=..., extUserId=..., name=...)
    session = await lab.sessions.acreate(action=coach.guid, extUserId="elon@musk.net", name="chat")
    r = await lab.actions.aprompt(action=coach.guid, input=SEED_ACTION_INPUT, session=session.guid)
    assert r.ext_user_id == "elon@musk.net"
    assert (await lab.sessions.aget(session.guid)).messages[-1] == {"role": "assistant", "content": r.msg}
    assert (await lab.sessions.afind(session.guid)).name == "chat"
    assert [s.guid for s in await lab.sessions.alist(ext_user_id="elon@musk.net")] == [session.guid]
    assert len(await lab.sessions.ahistory(session.guid)) == 2
    with pytest.raises(pl.NotFoundError):
        await lab.sessions.aget("no-such-session")
