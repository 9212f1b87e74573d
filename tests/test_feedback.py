"""lab.feedback: the seed's "Save User Feedback", history with latest-wins, preferences.

Every test using ``lab`` runs on SQLite and on PostgreSQL (see conftest.py)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import promptlab as pl
from promptlab.feedback import DEFAULT_ISSUE_TAGS, FeedbackRecord, normalize_rating

SEED_CORRECTION = ("Machine Learning, a category of artificial intelligence, is a process where computers "
                   "analyze data to learn patterns or behaviors.")


@pytest.fixture
def gens(lab):
    """Three finished generations of a sim:echo action."""
    lab.actions.create("echo", prompt="{{text}}", model="sim:echo")
    return [lab.actions.prompt("echo", f"text {i}") for i in range(3)]


def stored_feedback(lab) -> list[dict]:
    return lab.store.dump_table("feedback")


# -- ratings ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spelling, canonical", [
    ("Positive", "Positive"), ("positive", "Positive"), (" POSITIVE ", "Positive"), (2, "Positive"),
    ("2", "Positive"), (True, "Positive"),
    ("Negative", "Negative"), ("negative", "Negative"), (1, "Negative"), ("1", "Negative"),
    (False, "Negative"),
])
def test_every_rating_spelling_maps_to_one_canonical_form(spelling, canonical):
    assert normalize_rating(spelling) == canonical


@pytest.mark.parametrize("bad", [0, 3, -1, 2.0, "good", "", "thumbs up", [2], {"rating": 2}])
def test_other_ratings_are_rejected_listing_the_accepted_values(bad):
    with pytest.raises(pl.InvalidInputError) as err:
        normalize_rating(bad)
    message = str(err.value)
    assert repr(bad) in message and "'Positive'/'Negative'" in message and "2/1" in message


def test_seed_example_is_stored_with_one_rating_form(lab, gens):
    record = lab.feedback.log(gens[0].guid, correction=SEED_CORRECTION, rating="Positive", issue="Vague")
    assert isinstance(record, FeedbackRecord)
    assert (record.generation, record.rating, record.correction, record.issue, record.source) == (
        gens[0].guid, "Positive", SEED_CORRECTION, "Vague", "human")
    assert record.created_at is not None and record.created_at.tzinfo is not None
    lab.feedback.log(gens[1].guid, rating=2)          # the HTTP API's spelling
    lab.feedback.log(gens[2].guid, rating="1")
    lab.feedback.log(gens[2], rating=False, comment="a Generation object works as well as its GUID")
    rows = stored_feedback(lab)
    assert [r["rating"] for r in rows] == ["Positive", "Positive", "Negative", "Negative"]
    assert rows[0]["guid"] == record.guid and rows[0]["generation_guid"] == gens[0].guid


# -- validation: clear errors, nothing written ---------------------------------------------------


def test_bad_input_raises_and_writes_nothing(lab, gens):
    guid = gens[0].guid
    cases = [
        (dict(rating="great"), pl.InvalidInputError, "invalid rating 'great'"),
        (dict(rating="Positive", issue="Too verbose"), pl.InvalidInputError, "unknown issue tag 'Too verbose'"),
        (dict(), pl.InvalidInputError, "at least one of rating, correction, issue, comment, score"),
        (dict(correction="  "), pl.InvalidInputError, "correction must not be empty"),
        (dict(score=1.5, evaluator="x", source="evaluator"), pl.InvalidInputError, "score must be a number from 0 to 1"),
        (dict(score=True, evaluator="x", source="evaluator"), pl.InvalidInputError, "score"),
        (dict(score=0.5, source="evaluator"), pl.InvalidInputError, "needs evaluator="),
        (dict(score=0.5, evaluator="exact_match"), pl.InvalidInputError, "source is 'human'"),
        (dict(rating=2, source="robot"), pl.InvalidInputError, "invalid source 'robot'"),
        (dict(rating=2, metadata={"when": object()}), pl.InvalidInputError, "cannot be stored as JSON"),
        (dict(rating=2, metadata=["not", "a", "dict"]), pl.InvalidInputError, "metadata must be a dict"),
        (dict(rating=2, comment=42), pl.InvalidInputError, "comment must be a string"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            lab.feedback.log(guid, **kwargs)
    with pytest.raises(pl.NotFoundError, match="no generation 'no-such-guid'"):
        lab.feedback.log("no-such-guid", rating="Positive")
    with pytest.raises(pl.InvalidInputError, match="generation GUID"):
        lab.feedback.log(None, rating="Positive")
    assert stored_feedback(lab) == []


def test_unknown_issue_error_lists_the_vocabulary(lab, gens):
    with pytest.raises(pl.InvalidInputError) as err:
        lab.feedback.log(gens[0].guid, issue="Wordy")
    for tag in DEFAULT_ISSUE_TAGS:
        assert repr(tag) in str(err.value)


def test_issue_tags_match_case_insensitively_to_the_canonical_spelling(lab, gens):
    assert lab.feedback.log(gens[0].guid, issue="too LONG").issue == "Too long"
    assert lab.feedback.log(gens[0].guid, issue=" off-topic ").issue == "Off-topic"
    assert lab.feedback.tags == list(DEFAULT_ISSUE_TAGS)


def test_a_lab_can_configure_its_own_issue_vocabulary(db_url):
    with pl.Lab(db_url, issue_tags=["Bias", "Leaks PII"]) as lab:
        lab.actions.create("echo", prompt="{{text}}", model="sim:echo")
        guid = lab.actions.prompt("echo", "x").guid
        assert lab.feedback.log(guid, issue="leaks pii").issue == "Leaks PII"
        with pytest.raises(pl.InvalidInputError, match=r"\['Bias', 'Leaks PII'\]"):
            lab.feedback.log(guid, issue="Vague")  # a default tag is not in this vocabulary
        assert lab.feedback.tags == ["Bias", "Leaks PII"]


# -- history and latest wins --------------------------------------------------------------------


def test_history_is_kept_and_the_latest_human_value_of_each_field_wins(lab, gens):
    g = gens[0].guid
    lab.feedback.log(g, rating="Positive", issue="Tone")
    lab.feedback.log(g, rating="Negative", correction="Better text.")
    lab.feedback.log(g, comment="only a comment: must not erase the rating")
    lab.feedback.log(g, score=1.0, evaluator="exact_match", source="evaluator", comment="match")
    assert [r.rating for r in lab.feedback.list(g)] == ["Positive", "Negative", None, None]
    assert lab.feedback.latest(g) == {"rating": "Negative", "correction": "Better text.", "issue": "Tone"}
    assert lab.feedback.ratings([gens[0], gens[1].guid]) == {g: "Negative"}
    assert lab.feedback.latest(gens[1]) == {"rating": None, "correction": None, "issue": None}


def test_evaluator_feedback_never_overrides_a_human_rating(lab, gens):
    g = gens[0].guid
    lab.feedback.log(g, rating="Positive")
    record = lab.feedback.log(g, rating="Negative", score=0.0, evaluator="exact_match",
                              source="evaluator", comment="expected 'x'")
    assert (record.source, record.evaluator, record.score) == ("evaluator", "exact_match", 0.0)
    assert lab.feedback.ratings([g]) == {g: "Positive"}


# -- log_many -----------------------------------------------------------------------------------


def _count_commits(lab) -> list[int]:
    commits = [0]

    def on_commit(_conn):
        commits[0] += 1

    sa.event.listen(lab.store.engine, "commit", on_commit)
    return commits


def test_log_many_writes_a_batch_in_one_transaction(lab, gens):
    commits = _count_commits(lab)
    records = lab.feedback.log_many(
        [{"guid": g.guid, "score": 1.0, "evaluator": "exact_match", "source": "evaluator",
          "comment": f"matched {i}"} for i, g in enumerate(gens)]
        + [{"guid": gens[0].guid, "rating": 1, "issue": "incorrect"}])
    assert commits[0] == 1
    assert [r.generation for r in records] == [g.guid for g in gens] + [gens[0].guid]
    assert records[-1].rating == "Negative" and records[-1].issue == "Incorrect"
    assert len(stored_feedback(lab)) == 4
    assert lab.feedback.log_many([]) == []


def test_log_many_writes_nothing_when_any_entry_is_bad(lab, gens):
    good = {"guid": gens[0].guid, "rating": "Positive"}
    with pytest.raises(pl.InvalidInputError) as err:
        lab.feedback.log_many([good, good, {"guid": gens[1].guid, "rating": 7}])
    assert err.value.row == 3 and "invalid rating 7" in str(err.value)
    with pytest.raises(pl.NotFoundError, match="missing-1"):
        lab.feedback.log_many([good, {"guid": "missing-1", "rating": 2}, {"guid": "missing-2", "rating": 2}])
    with pytest.raises(pl.ConfigError, match="unknown field.*'ratting'"):
        lab.feedback.log_many([good, {"guid": gens[0].guid, "ratting": 2}])
    with pytest.raises(pl.InvalidInputError, match="needs 'guid'") as err:
        lab.feedback.log_many([{"rating": 2}])
    assert err.value.row == 1
    assert stored_feedback(lab) == []


# -- preferences --------------------------------------------------------------------------------


def test_prefer_records_pairwise_preferences(lab, gens):
    a, b, c = gens
    first = lab.feedback.prefer(a.guid, b.guid, winner="a", ext_user_id="u-1", comment="crisper")
    assert (first.winner, first.chosen, first.rejected) == ("a", a.guid, b.guid)
    second = lab.feedback.prefer(a, c, winner=c.guid)  # the winner's GUID works too
    assert (second.winner, second.chosen, second.rejected) == ("b", c.guid, a.guid)
    tie = lab.feedback.prefer(b.guid, c.guid, winner="TIE")
    assert (tie.winner, tie.chosen, tie.rejected) == ("tie", None, None)
    judged = lab.feedback.prefer(b.guid, c.guid, winner="b", source="evaluator", evaluator="judge")
    assert [p.guid for p in lab.feedback.preferences()] == [first.guid, second.guid, tie.guid, judged.guid]
    assert [p.guid for p in lab.feedback.preferences(a.guid)] == [first.guid, second.guid]
    assert [p.guid for p in lab.feedback.preferences(source="evaluator")] == [judged.guid]
    assert lab.feedback.preferences(winner="tie")[0].ext_user_id is None
    assert lab.feedback.preferences(ext_user_id="u-1")[0].comment == "crisper"


def test_prefer_rejects_bad_pairs_and_writes_nothing(lab, gens):
    a, b, _ = gens
    with pytest.raises(pl.InvalidInputError, match="two different generations"):
        lab.feedback.prefer(a.guid, a.guid, winner="a")
    with pytest.raises(pl.InvalidInputError, match="invalid winner 'left'"):
        lab.feedback.prefer(a.guid, b.guid, winner="left")
    with pytest.raises(pl.NotFoundError, match="no generation 'ghost'"):
        lab.feedback.prefer(a.guid, "ghost", winner="a")
    with pytest.raises(pl.InvalidInputError, match="needs evaluator="):
        lab.feedback.prefer(a.guid, b.guid, winner="a", source="evaluator")
    assert lab.store.dump_table("preferences") == []


# -- reading ------------------------------------------------------------------------------------


def test_list_and_to_pandas_filter_feedback(lab, gens):
    lab.actions.create("other", prompt="{{text}}", model="sim:echo")
    other = lab.actions.prompt("other", "y")
    lab.feedback.log(gens[0].guid, rating="Positive", ext_user_id="u-1")
    lab.feedback.log(gens[1].guid, rating="Negative", issue="Vague")
    lab.feedback.log(other.guid, rating=2)
    lab.feedback.log(gens[1].guid, score=0.25, evaluator="length", source="evaluator")

    assert [r.generation for r in lab.feedback.list(rating=1)] == [gens[1].guid]
    assert [r.generation for r in lab.feedback.list(rating="positive", action="echo")] == [gens[0].guid]
    assert [r.generation for r in lab.feedback.list(action="other")] == [other.guid]
    assert [r.evaluator for r in lab.feedback.list(source="evaluator")] == ["length"]
    assert [r.ext_user_id for r in lab.feedback.list(ext_user_id="u-1")] == ["u-1"]
    assert len(lab.feedback.list(issue="vague")) == 1
    assert len(lab.feedback.list(limit=2)) == 2
    assert lab.feedback.list(since="2000-01-01", until="2000-01-02") == []
    assert len(lab.feedback.list(since="2000-01-01")) == 4

    df = lab.feedback.to_pandas()
    assert list(df.columns) == ["guid", "generation", "rating", "correction", "issue", "comment", "score",
                                "evaluator", "source", "ext_user_id", "metadata", "created_at"]
    assert df["rating"].fillna("-").tolist() == ["Positive", "Negative", "Positive", "-"]
    assert lab.feedback.to_pandas(rating="Negative")["issue"].tolist() == ["Vague"]
    with pytest.raises(pl.ConfigError, match="unknown feedback filter.*'colour'"):
        lab.feedback.list(colour="red")
    with pytest.raises(pl.InvalidInputError, match="since='yesterday'"):
        lab.feedback.list(since="yesterday")


# -- the feedback URL and the async twins --------------------------------------------------------


def test_a_feedback_url_absolute_or_relative_names_the_generation(lab, gens):
    relative = gens[0].feedback_url
    assert relative == f"/v1/data/{gens[0].guid}"
    absolute = f"https://gw.example.com/v1/data/{gens[1].guid}"
    assert lab.feedback.log(relative, rating="Positive").generation == gens[0].guid
    assert lab.feedback.log(absolute, rating=1).generation == gens[1].guid
    assert lab.feedback.log(absolute + "/feedback", issue="Vague").generation == gens[1].guid
    [many] = lab.feedback.log_many([{"guid": gens[2].feedback_url, "comment": "ok"}])
    assert many.generation == gens[2].guid
    assert lab.feedback.prefer(relative, absolute, winner=absolute).winner == "b"
    assert [r.generation for r in lab.feedback.list(absolute)] == [gens[1].guid, gens[1].guid]
    assert lab.feedback.ratings([relative, absolute]) == {gens[0].guid: "Positive", gens[1].guid: "Negative"}
    assert lab.feedback.latest(absolute)["issue"] == "Vague"
    assert lab.generations.get(absolute).guid == gens[1].guid
    for bad in ("https://gw.example.com/v1/data/", "/v1/data/a/b/c"):
        with pytest.raises(pl.InvalidInputError, match="data point URL"):
            lab.feedback.log(bad, rating="Positive")
    with pytest.raises(pl.NotFoundError):
        lab.feedback.log("https://gw.example.com/v1/data/no-such-generation", rating="Positive")
    assert len(stored_feedback(lab)) == 4


async def test_async_twins_log_and_read_feedback(lab, gens):
    # The seed's example: await klu.feedback.log(guid=..., correction=..., rating=..., issue=...)
    record = await lab.feedback.alog(guid=gens[0].guid, correction=SEED_CORRECTION, rating="Positive",
                                     issue="Vague")
    assert (record.generation, record.rating, record.issue) == (gens[0].guid, "Positive", "Vague")
    await lab.feedback.alog_many([{"guid": gens[1].guid, "rating": 2}, {"guid": gens[2].feedback_url, "rating": 1}])
    preference = await lab.feedback.aprefer(gens[0].guid, gens[1].guid, winner="tie")
    assert [p.guid for p in await lab.feedback.apreferences()] == [preference.guid]
    assert len(await lab.feedback.alist()) == 3 and len(await lab.feedback.ato_pandas()) == 3
    assert await lab.feedback.aratings(gens) == {gens[0].guid: "Positive", gens[1].guid: "Positive",
                                                 gens[2].guid: "Negative"}
    assert (await lab.feedback.alatest(gens[0]))["correction"] == SEED_CORRECTION
    with pytest.raises(pl.InvalidInputError):
        await lab.feedback.alog(gens[0].guid, rating="great")
    assert len(stored_feedback(lab)) == 3
