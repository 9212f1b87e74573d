"""pl.charts: figures carry the numbers of the data they were given (checked independently)."""

from __future__ import annotations

import struct
from datetime import datetime, timedelta, timezone

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

import promptlab as pl
from promptlab import charts
from promptlab.experiments.evaluators import contains
from promptlab.experiments.stats import summarize_numbers, wilson_interval

ROWS = [{"message": f"Order {i} arrived damaged" + (", I want a refund." if i % 2 else ".")} for i in range(8)]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_run(lab, evaluators=()):
    lab.actions.create("concise", system="Be concise.", prompt="Customer: {{message}}", model="sim:extractive")
    lab.actions.create("warm", system="Be warm.", prompt="Customer says: {{message}}", model="sim:echo")
    exp = lab.experiments.create("tone", action_a="concise", action_b="warm")
    return lab.experiments.run(exp, ROWS, concurrency=4, evaluators=list(evaluators), progress=False)


def guids(run, label):
    cells = run.cells()
    return cells[cells.variant == label].generation_guid.tolist()


def annotations(fig):
    return [a.text for a in fig.layout.annotations]


def summary_frame(**columns):
    """A run.summary()-shaped frame for variants A and B from per-column [A, B] values."""
    base = {"variant": ["A", "B"], "rated": [0, 0], "positive_rate": [None, None],
            "positive_ci_low": [None, None], "positive_ci_high": [None, None],
            "wins": [0, 0], "ties": [0, 0], "losses": [0, 0]}
    base.update(columns)
    return pd.DataFrame(base).set_index("variant")


# -- palette ------------------------------------------------------------------------------------


def test_palette_is_stable_per_label_and_distinct_within_a_set():
    assert charts.palette(["B", "A"]) == {"B": charts.COLORS[1], "A": charts.COLORS[0]}
    assert charts.palette(["B"])["B"] == charts.palette(["A", "B", "C"])["B"]
    names = ["control", "treatment", "v2", "v3", "baseline"]
    colors = charts.palette(names)
    assert len(set(colors.values())) == len(names)
    assert charts.palette(list(reversed(names))) == colors  # order of the set does not matter


# -- ratings -----------------------------------------------------------------------------------


def test_ratings_error_bars_are_the_wilson_interval_of_the_latest_ratings(lab):
    run = make_run(lab)
    a = guids(run, "A")
    for guid, rating in zip(a, ["Positive", "Positive", "Negative", "Positive", "Negative"]):
        lab.feedback.log(guid, rating=rating)
    lab.feedback.log(a[0], rating="Negative")  # latest wins: A is 2 of 5 positive
    fig = charts.ratings(run)
    [bar] = fig.data
    assert list(bar.x) == ["A"] and bar.y[0] == pytest.approx(0.4)
    expected = wilson_interval(2, 5)
    assert bar.y[0] + bar.error_y.array[0] == pytest.approx(expected.high)
    assert bar.y[0] - bar.error_y.arrayminus[0] == pytest.approx(expected.low)
    assert "n=5" in bar.text[0]
    assert "no ratings yet" in annotations(fig)  # B, nobody rated it
    assert list(fig.layout.xaxis.categoryarray) == ["A", "B"]
    assert fig.layout.template == pio.templates["plotly_white"]
    assert bar.marker.color[0] == charts.palette(["A", "B"])["A"]


def test_ratings_from_a_summary_frame_and_with_no_ratings_at_all():
    iv = wilson_interval(9, 12)
    frame = summary_frame(rated=[12, 3], positive_rate=[0.75, 1.0], positive_ci_low=[iv.low, 0.43],
                          positive_ci_high=[iv.high, 1.0])
    [bar] = charts.ratings(frame).data
    assert list(bar.x) == ["A", "B"]
    assert list(bar.error_y.array) == pytest.approx([iv.high - 0.75, 0.0])
    assert list(bar.error_y.arrayminus) == pytest.approx([0.75 - iv.low, 0.57])
    empty = charts.ratings(summary_frame())
    assert empty.data == () and annotations(empty).count("no ratings yet") == 2


def test_charts_reject_what_they_cannot_read():
    with pytest.raises(pl.ConfigError, match="ExperimentRun or the DataFrame of run.summary"):
        charts.ratings([1, 2])
    with pytest.raises(pl.ConfigError, match=r"positive_ci_low"):
        charts.ratings(pd.DataFrame({"variant": ["A"], "rated": [1], "positive_rate": [1.0]}))
    with pytest.raises(pl.ConfigError, match="'quality_A'"):
        charts.scores_scatter(pd.DataFrame({"row": [0], "x_A": [1.0]}), "quality")


# -- feedback distributions ---------------------------------------------------------------------


def feedback_rows():
    rows = [
        # g1 was rated Negative, then Positive: it counts once, as Positive
        dict(generation="g1", variant="A", rating="Negative", issue="Vague", source="human", created_at=T0),
        dict(generation="g1", variant="A", rating="Positive", issue=None, source="human",
             created_at=T0 + timedelta(seconds=1)),
        dict(generation="g2", variant="A", rating="Negative", issue="Too long", source="human", created_at=T0),
        dict(generation="g3", variant="B", rating="Positive", issue="Vague", source="human", created_at=T0),
        dict(generation="g4", variant="B", rating="Positive", issue="Vague", source="human", created_at=T0),
        # evaluator scores are not ratings
        dict(generation="g5", variant="B", rating="Negative", issue=None, source="evaluator", created_at=T0),
    ]
    return pd.DataFrame(rows)


def test_rating_distribution_counts_each_generation_once_latest_wins():
    fig = charts.rating_distribution(feedback_rows())
    by_name = {t.name: dict(zip(t.x, t.y)) for t in fig.data}
    assert by_name == {"Positive": {"A": 1, "B": 2}, "Negative": {"A": 1, "B": 0}}
    assert fig.layout.barmode == "stack"
    per_action = charts.rating_distribution(feedback_rows().rename(columns={"variant": "action"}))
    assert per_action.layout.xaxis.title.text == "Action"
    overall = charts.rating_distribution(feedback_rows().drop(columns="variant"))
    assert {t.name: list(t.y) for t in overall.data} == {"Positive": [3], "Negative": [1]}


def test_issue_tags_most_frequent_first_per_variant_and_overall():
    fig = charts.issue_tags(feedback_rows())
    # g1's latest issue is still "Vague": latest *non-empty* value per field
    assert list(fig.layout.xaxis.categoryarray) == ["Vague", "Too long"]
    by_name = {t.name: dict(zip(t.x, t.y)) for t in fig.data}
    assert by_name == {"A": {"Vague": 1, "Too long": 1}, "B": {"Vague": 2, "Too long": 0}}
    assert [t.marker.color for t in fig.data] == [charts.COLORS[0], charts.COLORS[1]]
    [total] = charts.issue_tags(feedback_rows(), per_group=False).data
    assert dict(zip(total.x, total.y)) == {"Vague": 3, "Too long": 1}


def test_feedback_charts_with_no_feedback_say_so_and_check_columns():
    empty = pd.DataFrame(columns=["generation", "variant", "rating", "issue", "source", "created_at"])
    assert annotations(charts.rating_distribution(empty)) == ["no ratings yet"]
    assert annotations(charts.issue_tags(empty)) == ["no issue tags yet"]
    with pytest.raises(pl.ConfigError, match="'issue' column"):
        charts.issue_tags(pd.DataFrame({"rating": ["Positive"]}))
    with pytest.raises(pl.ConfigError, match="no column 'team'"):
        charts.rating_distribution(feedback_rows(), by="team")
    with pytest.raises(pl.ConfigError, match="'Positive' or 'Negative'"):
        charts.rating_distribution(pd.DataFrame({"rating": ["meh"]}))


def test_feedback_frame_of_a_run_feeds_the_distributions(lab):
    run = make_run(lab)
    a, b = guids(run, "A"), guids(run, "B")
    lab.feedback.log(a[0], rating="Positive", issue="Vague")
    lab.feedback.log(a[1], rating=1)  # the HTTP API's "Negative"
    lab.feedback.log(b[0], rating="Positive")
    lab.feedback.log(b[1], issue="Too long")
    frame = charts.feedback_frame(run)
    assert set(frame.variant) == {"A", "B"} and set(frame.action) == {"concise", "warm"}
    fig = charts.rating_distribution(run)
    assert {t.name: dict(zip(t.x, t.y)) for t in fig.data} == {"Positive": {"A": 1, "B": 1},
                                                               "Negative": {"A": 1, "B": 0}}
    tags = charts.issue_tags(run)
    assert {t.name: dict(zip(t.x, t.y)) for t in tags.data} == {"A": {"Vague": 1, "Too long": 0},
                                                                "B": {"Vague": 0, "Too long": 1}}


# -- pairwise ----------------------------------------------------------------------------------


def test_pairwise_stacks_wins_ties_losses_per_variant(lab):
    run = make_run(lab)
    a, b = guids(run, "A"), guids(run, "B")
    for ga, gb, winner in zip(a, b, ["b", "b", "a", "tie", "b"]):
        lab.feedback.prefer(ga, gb, winner=winner)
    fig = charts.pairwise(run)
    counts = {t.name: dict(zip(t.y, t.x)) for t in fig.data}
    assert counts == {"wins": {"A": 1, "B": 3}, "ties": {"A": 1, "B": 1}, "losses": {"A": 3, "B": 1}}
    assert fig.layout.barmode == "stack" and all(t.orientation == "h" for t in fig.data)
    nothing = charts.pairwise(summary_frame())
    assert nothing.data == () and annotations(nothing) == ["no pairwise comparisons yet"]


# -- latency and cost --------------------------------------------------------------------------


def test_latency_per_variant_matches_the_summary(lab):
    run = make_run(lab)
    fig = charts.latency(run)
    boxes = {t.name: t for t in fig.data if t.type == "box"}
    cells = run.cells()
    for label in ("A", "B"):
        values = cells[cells.variant == label].latency_ms.tolist()
        assert sorted(boxes[label].y) == pytest.approx(sorted(values))
        assert boxes[label].marker.color == charts.palette(["A", "B"])[label]
    p95 = next(t for t in fig.data if t.name == "p95")
    p50 = next(t for t in fig.data if t.name == "p50")
    summary = run.summary()
    assert list(p50.y) == pytest.approx(list(summary.latency_p50_ms))
    assert list(p95.y) == pytest.approx(list(summary.latency_p95_ms))
    assert any(text.startswith("p50 ") and "n=8" in text for text in annotations(fig))


def test_latency_leaves_out_errors_and_cache_hits_and_cost_formats_dollars():
    cells = pd.DataFrame([
        dict(variant="A", status="done", cached=False, latency_ms=100.0, cost_usd=0.002),
        dict(variant="A", status="done", cached=False, latency_ms=300.0, cost_usd=0.004),
        dict(variant="A", status="done", cached=True, latency_ms=1.0, cost_usd=0.0),
        dict(variant="A", status="error", cached=False, latency_ms=9000.0, cost_usd=None),
        dict(variant="B", status="done", cached=False, latency_ms=200.0, cost_usd=None),
    ])
    fig = charts.latency(cells)
    boxes = {t.name: sorted(t.y) for t in fig.data if t.type == "box"}
    assert boxes == {"A": [100.0, 300.0], "B": [200.0]}
    p95 = next(t for t in fig.data if t.name == "p95")
    assert p95.y[0] == pytest.approx(summarize_numbers([100.0, 300.0])["p95"])
    money = charts.cost(cells)
    assert sorted(next(t for t in money.data if t.name == "A").y) == [0.0, 0.002, 0.004]
    assert "no data" in annotations(money)  # B's model has no price
    assert any("p50 $0.002" in text for text in annotations(money))
    unpriced = charts.cost(cells.assign(cost_usd=None))
    assert unpriced.data == () and "no costs known" in annotations(unpriced)[-1]
    assert annotations(charts.latency(pd.DataFrame())) == ["no latencies yet"]


# -- evaluators --------------------------------------------------------------------------------


def test_scores_scatter_keeps_unique_points_exact_and_jitters_ties():
    frame = pd.DataFrame({"row": [0, 1, 2, 3, 4], "quality_A": [0.2, 1.0, 1.0, 0.5, None],
                          "quality_B": [0.9, 1.0, 1.0, 0.1, 0.7]})
    fig = charts.scores_scatter(frame, "quality", jitter=0.02)
    diagonal, points = fig.data
    assert list(diagonal.x) == list(diagonal.y)
    assert [list(c) for c in points.customdata] == [[0, 0.2, 0.9], [1, 1.0, 1.0], [2, 1.0, 1.0], [3, 0.5, 0.1]]
    assert (points.x[0], points.y[0]) == (0.2, 0.9) and (points.x[3], points.y[3]) == (0.5, 0.1)
    tied = [(points.x[i], points.y[i]) for i in (1, 2)]
    assert tied[0] != tied[1]  # spread apart ...
    assert all(abs(x - 1.0) <= 0.02 and abs(y - 1.0) <= 0.02 for x, y in tied)  # ... but only slightly
    assert "B higher: 1 · A higher: 1 · equal: 2 (of 4 rows)" in annotations(fig)
    assert charts.scores_scatter(frame, "quality").to_dict() == fig.to_dict()  # deterministic
    none = charts.scores_scatter(frame.assign(quality_A=None), "quality")
    assert none.data == () and "no rows with quality scores" in annotations(none)[0]


def test_evaluator_means_one_bar_per_variant_and_evaluator():
    frame = summary_frame(**{"contains:refund": [0.5, 1.0], "json_valid": [0.25, None]})
    assert charts.evaluator_columns(frame) == ["contains:refund", "json_valid"]
    fig = charts.evaluator_means(frame)
    assert {t.name: list(t.y) for t in fig.data} == {"A": [0.5, 0.25], "B": [1.0, None]}
    assert list(fig.data[1].text) == ["1.00", "—"]
    only = charts.evaluator_means(frame, evaluators=["json_valid"])
    assert [list(t.x) for t in only.data] == [["json_valid"], ["json_valid"]]
    assert annotations(charts.evaluator_means(summary_frame())) == ["no evaluator scores"]


def test_evaluator_charts_from_a_run_with_evaluators(lab):
    run = make_run(lab, evaluators=[contains("refund")])
    frame = run.to_pandas()
    name = "contains:refund"
    fig = charts.evaluator_means(run)
    assert {t.name: t.y[0] for t in fig.data} == pytest.approx(
        {label: frame[f"{name}_{label}"].mean() for label in ("A", "B")})
    scatter = charts.scores_scatter(run, name)
    [_, points] = scatter.data
    assert [c[1:] for c in points.customdata] == frame[[f"{name}_A", f"{name}_B"]].values.tolist()


# -- static export -----------------------------------------------------------------------------


def png_size(path):
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_to_png_writes_an_image_of_the_requested_size(tmp_path):
    fig = charts.ratings(summary_frame(rated=[10, 10], positive_rate=[0.3, 0.8], positive_ci_low=[0.1, 0.5],
                                       positive_ci_high=[0.6, 0.95]))
    try:
        path = charts.to_png(fig, tmp_path / "ratings.png", width=640, height=360)
    except pl.ConfigError as exc:
        pytest.skip(f"static export unavailable on this machine: {exc}")
    assert png_size(path) == (640, 360)


def test_to_png_without_a_browser_says_what_to_install(tmp_path, monkeypatch):
    # BROWSER_PATH is kaleido's documented override: point it at nothing
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chromium"))
    with pytest.raises(pl.ConfigError, match="apt-get install -y chromium") as info:
        charts.to_png(go.Figure(), tmp_path / "x.png")
    assert "kaleido" in str(info.value)
    with pytest.raises(pl.ConfigError, match="width must be a positive"):
        charts.to_png(go.Figure(), tmp_path / "x.png", width=0)
