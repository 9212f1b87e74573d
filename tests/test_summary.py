"""Pure summary functions over hand-made records (no store, no model)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from promptlab.experiments import stats
from promptlab.experiments.summary import (
    latest_ratings,
    pairwise_counts,
    scores_by_generation,
    side_by_side,
    summarize,
)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def cell(row, variant, *, status="done", latency=100.0, cost=0.001, output="out", repeat=0):
    return dict(cell_key=f"{row}:{variant}:{repeat}", row_index=row, variant=variant, repeat=repeat,
                status=status, attempts=1, generation_guid=f"g{row}{variant}{repeat}",
                output=output if status == "done" else None, error=None if status == "done" else "boom",
                error_type=None, latency_ms=latency, ttft_ms=None, prompt_tokens=10, completion_tokens=5,
                cost_usd=cost, cached=False, model="sim:echo", action_name=f"act{variant}", action_version=1)


def test_latest_human_rating_wins_and_evaluators_are_ignored():
    feedback = [
        dict(generation_guid="g", rating="Negative", source="human", created_at=T0),
        dict(generation_guid="g", rating="Positive", source="human", created_at=T0 + timedelta(seconds=1)),
        dict(generation_guid="h", rating="Positive", source="evaluator", created_at=T0),
    ]
    assert latest_ratings(feedback) == {"g": "Positive"}


def test_scores_by_generation_keeps_the_latest_per_evaluator():
    scores = [dict(generation_guid="g", evaluator="len", score=0.2, created_at=T0 + timedelta(seconds=1)),
              dict(generation_guid="g", evaluator="len", score=0.9, created_at=T0),
              dict(generation_guid="g", evaluator="has", score=1.0, created_at=T0)]
    assert scores_by_generation(scores) == {"g": {"len": 0.2, "has": 1.0}}


def test_summarize_counts_errors_latency_cost_and_wilson_interval():
    cells = [cell(i, "A", latency=100 + i) for i in range(10)] + [cell(i, "B") for i in range(9)] + [
        cell(9, "B", status="error", cost=None)]
    ratings = {f"g{i}A0": "Positive" if i < 8 else "Negative" for i in range(10)}
    table = summarize(cells, ["A", "B"], ratings, {}, [])
    a, b = table.loc["A"], table.loc["B"]
    assert (a.n, a.errors, b.n, b.errors) == (10, 0, 10, 1)
    assert a.latency_p50_ms == pytest.approx(104.5) and a.tokens == 150
    assert a.cost_usd == pytest.approx(0.01)
    assert (a.rated, a.positive_rate) == (10, 0.8)
    # Wilson 95% for 8/10, computed by hand in tests/test_stats.py: (0.4902, 0.9433)
    assert a.positive_ci_low == pytest.approx(0.4902, abs=1e-4) and a.positive_ci_high == pytest.approx(0.9433, abs=1e-4)
    assert b.rated == 0 and pd.isna(b.positive_rate)


def test_unknown_cost_is_none_not_zero():
    cells = [cell(0, "A", cost=None), cell(1, "A", cost=0.5)]
    cost = summarize(cells, ["A"], {}, {}, []).loc["A", "cost_usd"]
    assert pd.isna(cost)


def test_pairwise_counts_from_preferences():
    cells = [cell(i, v) for i in range(3) for v in "AB"]
    prefs = [dict(generation_a="g0A0", generation_b="g0B0", winner="b"),
             dict(generation_a="g1B0", generation_b="g1A0", winner="b"),  # order swapped: A wins
             dict(generation_a="g2A0", generation_b="g2B0", winner="tie")]
    assert pairwise_counts(cells, prefs, "A", "B") == (1, 1, 1)


def test_side_by_side_puts_variants_in_one_row_per_input():
    cells = [cell(0, "A", output="a0"), cell(0, "B", output="b0"), cell(1, "A", output="a1"),
             cell(1, "B", status="error")]
    rows = [dict(row_index=0, input={"q": "x"}, expected="e"), dict(row_index=1, input={"q": "y"}, expected=None)]
    frame = side_by_side(cells, rows, ["A", "B"], {"g0A0": "Positive"}, {"g0B0": {"len": 1.0}})
    assert list(frame.q) == ["x", "y"] and list(frame.output_A) == ["a0", "a1"]
    assert frame.loc[0, "rating_A"] == "Positive" and frame.loc[0, "len_B"] == 1.0
    assert frame.loc[1, "error_B"] == "boom" and frame.loc[0, "expected"] == "e"
    spread = side_by_side(cells[:2], [dict(row_index=0, input={"q": "x"}, expected={"expected_contains": "k"})],
                          ["A", "B"], {}, {})
    assert spread.loc[0, "expected_contains"] == "k" and "expected" not in spread


def test_the_positive_rate_interval_treats_repeats_of_a_row_as_one_unit():
    cells = [cell(i, "A", repeat=k) for i in range(10) for k in range(5)]
    ratings = {c["generation_guid"]: "Positive" if c["row_index"] < 6 else "Negative" for c in cells}
    row = summarize(cells, ["A"], ratings, {}, []).loc["A"]
    assert row.rated == 50 and row.positive_rate == pytest.approx(0.6)
    pooled = stats.wilson_interval(30, 50)  # as if the 50 outputs were 50 independent rows
    assert row.positive_ci_high - row.positive_ci_low > 1.5 * (pooled.high - pooled.low)
    single = summarize([c for c in cells if c["repeat"] == 0], ["A"], ratings, {}, []).loc["A"]
    assert (single.positive_ci_low, single.positive_ci_high) == pytest.approx(
        (stats.wilson_interval(6, 10).low, stats.wilson_interval(6, 10).high))
