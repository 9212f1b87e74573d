"""Tests for promptlab.experiments.ranking (Bradley-Terry with bootstrap intervals).

Point estimates are checked against closed forms worked out in comments and against a direct
maximisation of the likelihood with scipy; intervals by simulation from known strengths.
"""

from __future__ import annotations

import doctest
import json
import math

import choix
import numpy as np
import pandas as pd
import pytest
from scipy import optimize

from promptlab.errors import ConfigError, InvalidInputError, NotFoundError
from promptlab.experiments import ranking as ranking_module
from promptlab.experiments.ranking import Ranking, bradley_terry, leaderboard_figure

TINY = 1e-6  # alpha small enough to leave the maximum-likelihood estimate unchanged to ~1e-5


def repeat(winner, loser, times, **extra):
    return [{"winner": winner, "loser": loser, **extra} for _ in range(times)]


def gap(r: Ranking, a, b) -> float:
    return float(r.table.at[a, "strength"] - r.table.at[b, "strength"])


def simulate(rng: np.random.Generator, strengths: np.ndarray, n: int, labels=None, rows: int | None = None):
    """``n`` comparisons of uniformly drawn pairs, outcomes from the Bradley-Terry model."""
    k = len(strengths)
    labels = labels or [f"v{i}" for i in range(k)]
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    a_wins = rng.random(n) < 1 / (1 + np.exp(-(strengths[a] - strengths[b])))
    winners, losers = np.where(a_wins, a, b), np.where(a_wins, b, a)
    row = rng.integers(0, rows, n) if rows else np.arange(n)
    return [{"winner": labels[w], "loser": labels[lo], "row": int(r)} for w, lo, r in zip(winners, losers, row)]


# --------------------------------------------------------------------------- point estimates


def test_two_variants_strength_gap_is_the_log_odds_of_their_wins():
    # With two variants the likelihood is p^30 (1-p)^10, maximised at p = 30/40, and
    # p = 1/(1+exp(-(s_B - s_A))) gives s_B - s_A = log(30/10) = log 3.
    data = repeat("B", "A", 30) + repeat("A", "B", 10)
    exact = bradley_terry(data, alpha=TINY, n_boot=100)
    assert gap(exact, "B", "A") == pytest.approx(math.log(3), abs=1e-4)
    assert exact.probability("B", "A") == pytest.approx(0.75, abs=1e-5)
    # choix's alpha adds a rate alpha per pair against weights normalised to mean 1, so the
    # default alpha=0.01 gives log((15 + 0.01) / (5 + 0.01)) = log 3 - 0.0013.
    default = bradley_terry(data, n_boot=100)
    assert gap(default, "B", "A") == pytest.approx(math.log(15.01 / 5.01), abs=1e-6)
    assert list(default.table.index) == ["B", "A"]
    assert default.table["strength"].sum() == pytest.approx(0.0, abs=1e-12)  # centred


def test_three_variants_recover_the_strengths_that_generated_expected_counts():
    # Weights (4, 2, 1), 30 comparisons per pair, each pair's wins exactly as expected:
    #   A-B: A wins 30 * 4/6 = 20, B 10;  A-C: A 30 * 4/5 = 24, C 6;  B-C: B 30 * 2/3 = 20, C 10.
    # The likelihood equations wins_i = sum_j n_ij w_i / (w_i + w_j) then hold at w = (4, 2, 1):
    #   A: 20 + 24 = 44 = 30*4/6 + 30*4/5;  B: 10 + 20 = 30 = 30*2/6 + 30*2/3;  C: 6 + 10 = 16.
    # So the MLE is log w centred: (log 4, log 2, 0) - log 2 = (log 2, 0, -log 2).
    data = (repeat("A", "B", 20) + repeat("B", "A", 10) + repeat("A", "C", 24) + repeat("C", "A", 6)
            + repeat("B", "C", 20) + repeat("C", "B", 10))
    r = bradley_terry(data, alpha=TINY, n_boot=100)
    assert list(r.table.index) == ["A", "B", "C"]
    assert list(r.table["rank"]) == [1, 2, 3]
    np.testing.assert_allclose(r.table["strength"], [math.log(2), 0.0, -math.log(2)], atol=1e-4)
    np.testing.assert_allclose(r.table["p_beats_average"], [2 / 3, 1 / 2, 1 / 3], atol=1e-4)
    assert r.probability("A", "C") == pytest.approx(4 / 5, abs=1e-4)
    assert list(r.table["wins"]) == [44, 30, 16]
    assert list(r.table["losses"]) == [16, 30, 44]
    assert list(r.table["comparisons"]) == [60, 60, 60]


def test_point_estimate_is_the_maximum_likelihood_estimate():
    # An unbalanced design with every pair contested: maximise the Bradley-Terry likelihood
    # directly (scipy, no choix) and compare.
    wins = np.array([[0, 7, 12, 3], [5, 0, 9, 2], [4, 6, 0, 8], [1, 3, 2, 0]])
    data = [{"winner": f"v{i}", "loser": f"v{j}"} for i in range(4) for j in range(4) for _ in range(wins[i, j])]

    def negative_log_likelihood(free):
        s = np.append(free, -free.sum())
        diff = s[:, None] - s[None, :]
        return float(np.sum(wins * np.logaddexp(0, -diff)))

    mle = optimize.minimize(negative_log_likelihood, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    expected = dict(zip([f"v{i}" for i in range(4)], np.append(mle, -mle.sum())))
    r = bradley_terry(data, alpha=TINY, n_boot=100)
    for label, value in expected.items():
        assert r.table.at[label, "strength"] == pytest.approx(value, abs=1e-4)


def test_batched_bootstrap_fit_matches_choix():
    # The bootstrap fits many win matrices at once with its own copy of choix's I-LSR; it must
    # land on choix's answer, including when a variant never lost or never won.
    rng = np.random.default_rng(7)
    mats = rng.poisson(4, size=(30, 5, 5)).astype(float)
    mats[:, np.arange(5), np.arange(5)] = 0
    mats[0, :, 2] = 0  # variant 2 never lost
    mats[1, 3, :] = 0  # variant 3 never won
    mats[2] *= 0.5  # half-wins, as ties make them
    for alpha in (0.01, 1e-4):
        got, stuck = ranking_module._ilsr_batch(mats, alpha, np.zeros(5))
        assert stuck == 0
        want = np.array([choix.ilsr_pairwise_dense(m, alpha=alpha, max_iter=1000) for m in mats])
        np.testing.assert_allclose(got, want, atol=1e-6)


# --------------------------------------------------------------------------- intervals


TRUE = np.array([1.0, 0.4, 0.0, -0.3, -1.1])
TRUE_CENTRED = TRUE - TRUE.mean()


def test_simulated_ranking_recovers_order_and_covers_true_strengths():
    data = simulate(np.random.default_rng(3), TRUE, 1000)
    r = bradley_terry(data, n_boot=1000, seed=1)
    assert r.labels == ["v0", "v1", "v2", "v3", "v4"]
    truth = pd.Series(TRUE_CENTRED, index=[f"v{i}" for i in range(5)])[r.table.index]
    covered = (r.table["strength_low"] <= truth) & (truth <= r.table["strength_high"])
    assert covered.sum() >= 4
    assert (r.table["strength_low"] < r.table["strength"]).all()
    assert (r.table["strength"] < r.table["strength_high"]).all()
    # Intervals on the probability scale are the strength intervals mapped through the logistic.
    np.testing.assert_allclose(r.table["p_beats_average_high"], 1 / (1 + np.exp(-r.table["strength_high"])))


def test_bootstrap_intervals_cover_true_strengths_at_least_90_percent_of_the_time():
    rng = np.random.default_rng(2024)
    strengths = np.array([0.8, 0.2, -0.1, -0.9])
    centred = strengths - strengths.mean()
    labels = ["a", "b", "c", "d"]
    hits = np.zeros(4)
    runs = 200
    for i in range(runs):
        r = bradley_terry(simulate(rng, strengths, 300, labels), n_boot=200, seed=i)
        t = r.table.loc[labels]
        hits += (t["strength_low"].to_numpy() <= centred) & (centred <= t["strength_high"].to_numpy())
    coverage = hits / runs
    assert (coverage >= 0.90).all(), coverage
    # And the intervals are not trivially wide: nominal 95% should not be ~100%.
    assert coverage.mean() <= 0.99, coverage


def test_clustered_bootstrap_widens_intervals_when_a_row_is_repeated():
    # Each row's comparisons repeated 5 times with the same outcome: five copies of one piece
    # of evidence. Resampling single comparisons treats them as independent and is about
    # sqrt(5) too narrow; resampling rows is not fooled.
    base = simulate(np.random.default_rng(11), np.array([0.6, 0.0, -0.6]), 150, ["A", "B", "C"])
    repeated = [c for c in base for _ in range(5)]
    naive = bradley_terry(repeated, n_boot=1000)
    by_row = bradley_terry(repeated, cluster="row", n_boot=1000)
    assert by_row.n_clusters == 150 and naive.n_clusters == 750
    pd.testing.assert_series_equal(naive.table["strength"], by_row.table["strength"])
    naive_width = naive.table["strength_high"] - naive.table["strength_low"]
    row_width = (by_row.table["strength_high"] - by_row.table["strength_low"])[naive_width.index]
    assert (row_width > 1.6 * naive_width).all(), (row_width / naive_width).to_dict()
    # The row bootstrap of the repeated data matches the comparison bootstrap of the originals.
    original = bradley_terry(base, n_boot=1000)
    original_width = (original.table["strength_high"] - original.table["strength_low"])[naive_width.index]
    np.testing.assert_allclose(row_width, original_width, rtol=0.25)


def test_cluster_of_one_comparison_each_is_the_plain_bootstrap():
    data = simulate(np.random.default_rng(5), TRUE[:3], 200)  # row = comparison number
    pd.testing.assert_frame_equal(bradley_terry(data, cluster="row", n_boot=300).table,
                                  bradley_terry(data, n_boot=300).table)


def test_same_seed_same_result_and_another_seed_moves_only_the_intervals():
    data = simulate(np.random.default_rng(9), TRUE, 300, rows=60)
    first = bradley_terry(data, cluster="row", n_boot=300, seed=42)
    again = bradley_terry(data, cluster="row", n_boot=300, seed=42)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert first.as_dict() == again.as_dict()
    other = bradley_terry(data, cluster="row", n_boot=300, seed=43)
    pd.testing.assert_series_equal(first.table["strength"], other.table["strength"])
    assert not np.allclose(first.table["strength_low"], other.table["strength_low"])


# --------------------------------------------------------------------------- ties


def test_a_tie_is_half_a_win_each_way():
    # 10 wins for A, 6 for B and 4 ties are 12 vs 8 "wins": gap log(12/8).
    data = repeat("A", "B", 10) + repeat("B", "A", 6) + repeat("A", "B", 4, tie=True)
    r = bradley_terry(data, alpha=TINY, n_boot=100)
    assert gap(r, "A", "B") == pytest.approx(math.log(1.5), abs=1e-4)
    assert r.table.loc["A", ["wins", "losses", "ties", "comparisons"]].tolist() == [10, 6, 4, 20]
    assert r.table.loc["B", ["wins", "losses", "ties", "comparisons"]].tolist() == [6, 10, 4, 20]
    # Which side of a tie is called the winner does not matter.
    flipped = repeat("A", "B", 10) + repeat("B", "A", 6) + repeat("B", "A", 4, tie=True)
    assert gap(bradley_terry(flipped, alpha=TINY, n_boot=100), "A", "B") == pytest.approx(gap(r, "A", "B"))


def test_only_ties_give_equal_strengths_and_no_separation_note():
    r = bradley_terry(repeat("A", "B", 8, tie=True) + repeat("C", "B", 8, tie=True), n_boot=100)
    np.testing.assert_allclose(r.table["strength"], 0.0, atol=1e-9)
    assert list(r.table["rank"]) == [1, 1, 1]
    assert not any("never" in note for note in r.notes)


def test_dataframe_input_with_a_tie_column_equals_the_list_of_dicts():
    records = repeat("A", "B", 5, tie=False) + repeat("B", "A", 3, tie=False) + repeat("A", "B", 2, tie=True)
    for i, record in enumerate(records):
        record["row"] = i // 2
    frame = pd.DataFrame(records)
    pd.testing.assert_frame_equal(bradley_terry(frame, cluster="row", n_boot=100).table,
                                  bradley_terry(records, cluster="row", n_boot=100).table)
    # A missing tie (NaN in a frame built from mixed records) is a decisive comparison.
    mixed = pd.DataFrame(repeat("A", "B", 3) + repeat("B", "A", 1, tie=True))
    assert bradley_terry(mixed, n_boot=100).table.at["A", "wins"] == 3


# --------------------------------------------------------------------------- edge cases


def test_a_listed_variant_without_comparisons_is_nan_and_noted():
    data = repeat("A", "B", 6) + repeat("B", "A", 4)
    r = bradley_terry(data, labels=["C", "A", "B"], n_boot=100)
    assert r.labels == ["A", "B", "C"]
    assert r.table.loc["C", ["strength", "strength_low", "strength_high", "p_beats_average"]].isna().all()
    assert r.table.at["C", "rank"] is pd.NA
    assert r.table.at["C", "comparisons"] == 0
    assert any("'C'" in note and "NaN" in note for note in r.notes)
    assert math.isnan(r.probability("C", "A"))
    # The others are fitted as if C were not there.
    pd.testing.assert_frame_equal(r.table.loc[["A", "B"]], bradley_terry(data, n_boot=100).table,
                                  check_dtype=False)
    d = r.as_dict()
    assert d["variants"][2] == {"variant": "C", "rank": None, "strength": None, "strength_low": None,
                                "strength_high": None, "p_beats_average": None, "p_beats_average_low": None,
                                "p_beats_average_high": None, "wins": 0, "losses": 0, "ties": 0,
                                "comparisons": 0}
    json.dumps(d, allow_nan=False)


def test_a_variant_that_never_lost_stays_finite_and_is_noted():
    r = bradley_terry(repeat("A", "B", 12) + repeat("B", "C", 5) + repeat("C", "B", 5), n_boot=200)
    assert r.labels[0] == "A"
    assert np.isfinite(r.table[["strength", "strength_low", "strength_high"]].to_numpy()).all()
    assert any("'A' never lost" in note and "alpha=0.01" in note for note in r.notes)


def test_groups_never_compared_with_each_other_are_noted():
    r = bradley_terry(repeat("A", "B", 3) + repeat("B", "A", 2) + repeat("C", "D", 3) + repeat("D", "C", 1),
                      n_boot=100)
    assert any("2 groups never compared" in note for note in r.notes)
    assert any("only 9 comparisons" in note for note in r.notes)


def test_probability_is_logistic_of_the_gap_and_names_unknown_variants():
    r = bradley_terry(simulate(np.random.default_rng(4), TRUE[:3], 200), n_boot=100)
    p = r.probability("v0", "v2")
    assert p == pytest.approx(1 / (1 + math.exp(-gap(r, "v0", "v2"))))
    assert p + r.probability("v2", "v0") == pytest.approx(1.0)
    with pytest.raises(NotFoundError, match="'zz'"):
        r.probability("zz", "v0")


def test_as_dict_is_plain_and_json_ready():
    r = bradley_terry(simulate(np.random.default_rng(8), TRUE[:3], 120, rows=40), cluster="row", n_boot=100)
    d = r.as_dict()
    assert [v["variant"] for v in d["variants"]] == r.labels
    assert (d["n_comparisons"], d["n_clusters"], d["cluster"], d["n_boot"], d["seed"]) == (120, 40, "row", 100, 0)
    assert d["confidence"] == 0.95 and d["alpha"] == 0.01
    assert json.loads(json.dumps(d, allow_nan=False)) == d


BAD_INPUTS = [
    ([], {}, "no comparisons"),
    (repeat("A", "A", 1), {}, "compares 'A' with itself"),
    (repeat("A", "B", 1) + repeat("A", "X", 1), {"labels": ["A", "B"]}, r"not in labels: \['X'\]"),
    (repeat("A", "B", 1), {"labels": ["A"]}, "two or more variants"),
    (repeat("A", "B", 1), {"labels": ["A", "B", "A"]}, "more than once"),
    (repeat("A", "B", 1), {"n_boot": 99}, "n_boot"),
    (repeat("A", "B", 1), {"n_boot": 200.0}, "n_boot"),
    (repeat("A", "B", 1), {"confidence": 1.0}, "confidence"),
    (repeat("A", "B", 1), {"confidence": 0}, "confidence"),
    (repeat("A", "B", 1), {"alpha": 0}, "alpha"),
    (repeat("A", "B", 1), {"seed": "x"}, "seed"),
    ([{"winner": "A"}], {}, "comparison 1 has no 'loser'"),
    (repeat("A", "B", 1, tie="yes"), {}, "'tie' must be true or false"),
    (repeat("A", "B", 1, row=1) + repeat("A", "B", 1), {"cluster": "row"}, "comparison 2 has no 'row'"),
    ("AB", {}, "list of"),
    ([("A", "B")], {}, "must be a dict"),
]


@pytest.mark.parametrize("comparisons, options, message", BAD_INPUTS)
def test_bad_input_is_refused_with_a_message_naming_it(comparisons, options, message):
    with pytest.raises(InvalidInputError, match=message):
        bradley_terry(comparisons, **options)


# --------------------------------------------------------------------------- figure


def test_leaderboard_figure_has_one_point_per_variant_best_on_top():
    data = simulate(np.random.default_rng(6), TRUE[:4], 400)
    r = bradley_terry(data, labels=["v3", "v1", "v0", "v2", "unused"], n_boot=200)
    fig = leaderboard_figure(r)
    assert len(fig.data) == 1
    trace = fig.data[0]
    assert list(trace.y) == ["v0", "v1", "v2", "v3", "unused"]
    np.testing.assert_allclose(trace.x[:4], r.table["p_beats_average"][:4])
    assert trace.x[4] is None  # never compared: a row with no dot
    np.testing.assert_allclose(np.array(trace.x[:4]) - np.array(trace.error_x.arrayminus[:4]),
                               r.table["p_beats_average_low"][:4])
    assert fig.layout.yaxis.autorange == "reversed"  # first category (the best) on top
    assert list(fig.layout.yaxis.categoryarray) == list(trace.y)
    assert "wins" in trace.hovertemplate and "ties" in trace.hovertemplate
    assert trace.customdata[0][1] == r.table["wins"].iloc[0]
    assert leaderboard_figure(r, title="Tone").layout.title.text == "Tone"
    with pytest.raises(ConfigError):
        leaderboard_figure(r.table)


def test_docstring_examples():
    result = doctest.testmod(ranking_module)
    assert result.attempted >= 3 and result.failed == 0
