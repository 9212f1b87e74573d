"""lab.experiments.results: online experiments read at any time (promptlab/experiments/online.py)."""

from __future__ import annotations

import pytest

import promptlab as pl


@pytest.fixture
def ab(lab):
    lab.actions.create("writer", prompt="{{task}}", model="sim:echo")
    lab.actions.create("writer-v2", prompt="Warmly: {{task}}", model="sim:echo")
    return lab.experiments.create("tone", action_a="writer", action_b="writer-v2", split=0.5)


def serve(lab, ab, users, positive_share, variant=None):
    """One call per user; the user rates it positive with the variant's share (deterministic)."""
    for i in users:
        r = lab.experiments.prompt(ab, {"task": f"reply {i}"}, ext_user_id=f"user-{i}", variant=variant)
        share = positive_share[r.variant]
        lab.feedback.log(r.guid, rating="Positive" if (i * 7919) % 100 < share * 100 else "Negative")


def test_results_compare_rated_generations_with_an_always_valid_p(lab, ab):
    assert "Not enough data" in str(lab.experiments.results(ab))
    serve(lab, ab, range(300), {"A": 0.35, "B": 0.75})
    results = lab.experiments.results(ab)
    assert sum(results.assignments.values()) == 300 and not results.srm.flagged
    [c] = results.comparisons
    assert c.rated_baseline + c.rated_challenger == 300 and c.winner == "B"
    assert c.result.interval_low > 0 and c.result.p_value < 0.05
    assert str(results).startswith("B is better: positive rate B 7") and "always-valid p" in str(results)
    assert "based on" in str(results) and "rated A generations" in str(results)
    frame = results.to_pandas()
    assert list(frame.challenger) == ["B"] and frame.always_valid_p.iloc[0] == c.result.p_value
    # offline runs of the same experiment are not online traffic
    lab.experiments.run(ab, [{"task": "x"}] * 5, progress=False)
    assert lab.experiments.results(ab).assignments == results.assignments


def test_a_broken_split_is_said_first(lab, ab):
    serve(lab, ab, range(150), {"A": 0.5, "B": 0.5}, variant="A")  # manual traffic: all to A
    serve(lab, ab, range(150, 200), {"A": 0.5, "B": 0.5}, variant="B")
    results = lab.experiments.results(ab)
    assert results.srm.flagged and results.assignments == {"A": 150, "B": 50}
    assert str(results).startswith("Sample ratio mismatch: A 150 vs B 50 assignments where 50/50 was configured")
    with pytest.raises(pl.ConfigError, match="baseline 'Z'"):
        lab.experiments.results(ab, baseline="Z")
