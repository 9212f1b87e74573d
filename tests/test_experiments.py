"""lab.experiments: definitions, online A/B traffic split, and starting/reopening runs."""

from __future__ import annotations

import random
from collections import Counter

import pytest

import promptlab as pl
from promptlab.experiments import Variant, assign_variant, load_rows


@pytest.fixture
def ab(lab):
    lab.actions.create("writer", system="Be concise.", prompt="{{task}}: {{content}}", model="sim:echo")
    lab.actions.create("writer-v2", system="Be warm.", prompt="Topic {{topic}}. {{task}}", model="sim:echo")
    return lab.experiments.create("tone", action_a="writer", action_b="writer-v2", split=0.5)


def test_create_names_variants_and_validates(lab, ab):
    assert [(v.label, v.action, v.weight) for v in ab.variants] == [("A", "writer", 0.5), ("B", "writer-v2", 0.5)]
    assert lab.experiments.get("tone").guid == lab.experiments.get(ab.guid).guid == ab.guid
    with pytest.raises(pl.ConfigError, match="already exists"):
        lab.experiments.create("tone", action_a="writer", action_b="writer-v2")
    with pytest.raises(pl.ConfigError, match="split"):
        lab.experiments.create("bad", action_a="writer", action_b="writer-v2", split=1.5)
    with pytest.raises(pl.NotFoundError, match="nope"):
        lab.experiments.create("bad", action_a="writer", action_b="nope")
    with pytest.raises(pl.NotFoundError):
        lab.experiments.get("missing")
    three = lab.experiments.create("three", variants={"A": "writer", "B": ("writer-v2", 2.0),
                                                      "C": {"action": "writer", "weight": 1.0}})
    assert [v.weight for v in three.variants] == [1.0, 2.0, 1.0]


def test_assignment_is_sticky_and_weighted():
    variants = [Variant("A", "a", "ga", 1.0), Variant("B", "b", "gb", 3.0)]
    assert {assign_variant("exp", variants, "user-7").label for _ in range(20)} == {
        assign_variant("exp", variants, "user-7").label}
    by_user = Counter(assign_variant("exp", variants, f"user-{i}").label for i in range(4000))
    assert 0.70 < by_user["B"] / 4000 < 0.80  # weight 3 of 4
    rng = random.Random(1)
    anonymous = Counter(assign_variant("exp", variants, None, rng).label for _ in range(4000))
    assert 0.70 < anonymous["B"] / 4000 < 0.80


def test_online_prompt_logs_the_variant_and_accepts_the_union_of_variables(lab, ab):
    # writer uses task+content, writer-v2 uses topic+task: the request carries all three
    inputs = {"topic": "Machine Learning.", "task": "Help me build my first ML feature", "content": "draft"}
    seen = {}
    for i in range(40):
        r = lab.experiments.prompt(ab.guid, inputs, ext_user_id=f"user-{i}")
        seen.setdefault(r.variant, r)
        assert r.experiment == ab.guid and r.status == "done"
        again = lab.experiments.prompt(ab.guid, inputs, ext_user_id=f"user-{i}")
        assert again.variant == r.variant  # sticky
    assert set(seen) == {"A", "B"}
    assert seen["A"].action == "writer" and seen["B"].action == "writer-v2"
    logged = lab.generations.get(seen["B"].guid)
    assert (logged.variant, logged.experiment) == ("B", ab.guid)


def test_online_prompt_sticks_by_session_too(lab, ab):
    session = lab.sessions.create(name="s")
    inputs = {"topic": "t", "task": "x", "content": "c"}
    labels = {lab.experiments.prompt(ab, inputs, session=session.guid).variant for _ in range(5)}
    assert len(labels) == 1
    with pytest.raises(pl.ConfigError, match="unknown option"):
        lab.experiments.prompt(ab, inputs, environment="Preview")


def test_load_rows_accepts_frames_lists_and_rejects_bad_rows(lab):
    import pandas as pd

    frame = pd.DataFrame([{"q": "a", "expected": "x"}, {"q": "b", "expected": None}])
    assert load_rows(lab, frame) == [{"input": {"q": "a"}, "expected": "x"}, {"input": {"q": "b"}, "expected": None}]
    with pytest.raises(pl.InvalidInputError, match="row 2"):
        load_rows(lab, [{"q": "a"}, "not a dict"])
    with pytest.raises(pl.InvalidInputError, match="no rows"):
        load_rows(lab, [])


def test_start_pins_versions_and_reopens_from_the_store(lab, ab):
    run = lab.experiments.start(ab, [{"task": "t", "content": "c", "topic": "p"}], repeats=2)
    lab.actions.update("writer", system="Changed after the run started.")
    assert run.config["variants"]["A"]["version"] == 1
    done = lab.experiments.run(ab, resume=run, progress=False)
    assert set(done.cells().action_version) == {1}  # the pinned version, not the new one
    assert [r.guid for r in lab.experiments.runs("tone")] == [run.guid]
    with pytest.raises(pl.ConfigError, match="different number of rows"):
        lab.experiments.run(ab, [{"task": "t"}, {"task": "u"}], resume=run, progress=False)
    with pytest.raises(pl.ConfigError, match="resume"):
        lab.experiments.run(ab, retry_errors=True, progress=False)


# -- the seed's spellings, the shared assignment and the async twins -------------------------------

SEED_INPUT = {"topic": "Machine Learning.", "task": "Help me build my first ML feature", "content": "draft"}


def test_prompt_takes_the_seeds_experiment_guid_and_extuserid(lab, ab):
    # The seed's example: klu.experiments.prompt(experiment_guid=..., input={...})
    r = lab.experiments.prompt(experiment_guid=ab.guid, input=SEED_INPUT)
    assert r.experiment == ab.guid and r.variant in ("A", "B") and r.status == "done"
    user = lab.experiments.prompt(experiment_guid=ab.guid, input=SEED_INPUT, extUserId="u-9")
    assert user.ext_user_id == "u-9"
    assert user.variant == lab.experiments.prompt(ab.guid, SEED_INPUT, ext_user_id="u-9").variant
    with pytest.raises(pl.ConfigError, match="disagree"):
        lab.experiments.prompt(ab.guid, SEED_INPUT, experiment_guid="other")
    with pytest.raises(pl.ConfigError, match="name the experiment"):
        lab.experiments.prompt(input=SEED_INPUT)


def test_assign_is_the_one_variant_rule(lab, ab):
    for i in range(20):
        exp, chosen = lab.experiments.assign(ab.guid, ext_user_id=f"user-{i}")
        assert exp.guid == ab.guid
        assert chosen == assign_variant(ab.guid, ab.variants, f"user-{i}")
        assert chosen.label == lab.experiments.prompt(ab, SEED_INPUT, ext_user_id=f"user-{i}").variant
    assert lab.experiments.assign("tone", draw=False)[1].label == "A"  # no user, no session: the first
    assert lab.experiments.assign("tone", variant="writer-v2")[1].label == "B"
    with pytest.raises(pl.InvalidInputError, match="not a variant"):
        lab.experiments.assign("tone", variant="nope")


async def test_async_twins_of_experiments(lab, ab):
    # The seed's example: await klu.experiments.prompt(experiment_guid=..., input={...})
    r = await lab.experiments.aprompt(experiment_guid=ab.guid, input=SEED_INPUT, ext_user_id="u-1")
    assert r.variant == (await lab.experiments.aassign(ab, ext_user_id="u-1"))[1].label
    created = await lab.experiments.acreate("tone-2", action_a="writer", action_b="writer-v2")
    assert (await lab.experiments.aget("tone-2")).guid == created.guid
    assert {e.name for e in await lab.experiments.alist()} == {"tone", "tone-2"}
    run = await lab.experiments.astart(ab, [{"task": "t", "content": "c", "topic": "p"}])
    assert (await lab.experiments.aget_run(run.guid)).guid == run.guid
    assert [x.guid for x in await lab.experiments.aruns(ab)] == [run.guid]
    assert (await lab.experiments.alatest_unfinished(ab)).guid == run.guid
    results = await lab.experiments.aresults(ab)
    assert sum(results.assignments.values()) == 1
