"""The analysis behind verdicts (promptlab/experiments/analysis.py and summary.analyze): the row is
the unit, paired tests, Holm families, wording from fields; calibrated by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

import promptlab as pl
from promptlab.experiments import stats
from promptlab.experiments.analysis import Observations, compare, compare_preferences
from promptlab.experiments.summary import analyze


def cell(row, variant, repeat=0, *, status="done", latency=100.0, cost=0.0):
    return dict(row_index=row, variant=variant, repeat=repeat, status=status,
                generation_guid=f"g{row}{variant}{repeat}", latency_ms=latency, cost_usd=cost, cached=False,
                output="x", error=None, error_type=None, prompt_tokens=1, completion_tokens=1,
                action_name=f"a{variant}", action_version=1)


def rows(n, **columns):
    return [dict(row_index=i, input={"q": f"q{i}", **{k: v(i) for k, v in columns.items()}}, expected=None)
            for i in range(n)]


# -- the regression: repeats are not independent evidence --------------------------------------------------


def test_four_rows_with_five_identical_repeats_are_four_units_and_not_significant():
    cells = [cell(r, v, k) for r in range(4) for v in "AB" for k in range(5)]
    ratings = {c["generation_guid"]: "Positive" if c["variant"] == "B" else "Negative" for c in cells}
    pooled = stats.fisher_test(0, 20, 20, 20).p_value  # what counting outputs would claim
    assert pooled < 1e-6
    for min_n in (10, 1):
        c = analyze(cells, rows(4), ["A", "B"], ratings, {}, [], min_n=min_n).get("rating", "B")
        assert (c.n_units, c.n_outputs, c.unit) == (4, 40, "rows")
        assert not c.significant and c.winner is None
        assert "based on 4 rows (40 outputs)" in c.verdict
    assert c.test == "exact McNemar" and c.p_value == pytest.approx(0.125)  # 4 of 4 discordant rows: 2/16


def test_a_cluster_column_makes_several_rows_one_unit():
    cells = [cell(r, v) for r in range(30) for v in "AB"]
    ratings = {c["generation_guid"]: "Positive" if c["variant"] == "B" else "Negative" for c in cells}
    data = rows(30, conversation=lambda i: f"c{i // 10}")
    by_row = analyze(cells, data, ["A", "B"], ratings, {}, []).get("rating", "B")
    by_conversation = analyze(cells, data, ["A", "B"], ratings, {}, [], cluster="conversation", min_n=1)
    c = by_conversation.get("rating", "B")
    assert by_row.significant and (c.n_units, c.unit) == (3, "conversation") and not c.significant
    assert "based on 3 conversation groups (60 outputs)" in c.verdict
    with pytest.raises(pl.ConfigError, match=r"no column 'ticket'.*\['q'\]"):
        analyze(cells, rows(30), ["A", "B"], ratings, {}, [], cluster="ticket")


# -- paired tests by kind ---------------------------------------------------------------------------------


def test_binary_outcomes_use_exact_mcnemar_on_discordant_rows():
    # 40 rows: 11 where only B passes, 2 where only A does, 27 concordant.
    a = [1] * 2 + [0] * 11 + [1] * 15 + [0] * 12
    b = [0] * 2 + [1] * 11 + [1] * 15 + [0] * 12
    cells = [cell(i, v) for i in range(40) for v in "AB"]
    scores = {f"g{i}A0": {"exact": float(a[i])} for i in range(40)}
    scores.update({f"g{i}B0": {"exact": float(b[i])} for i in range(40)})
    c = analyze(cells, rows(40), ["A", "B"], {}, scores, []).get("exact", "B")
    assert c.kind == "binary" and c.test == "exact McNemar" and c.primary
    assert (c.wins_challenger, c.wins_baseline) == (11, 2)
    # by hand: 2 x (C(13,0) + C(13,1) + C(13,2)) / 2^13 = 2 x 92 / 8192
    assert c.p_value == pytest.approx(184 / 8192)
    assert c.difference == pytest.approx(9 / 40) and c.interval.low < 9 / 40 < c.interval.high
    assert c.verdict == ("B is better on exact pass rate: B 65% vs A 42%, difference +22 pts "
                         f"(95% CI +{round(100 * c.interval.low)} to +{round(100 * c.interval.high)}); "
                         "exact McNemar p=0.022; based on 40 rows (80 outputs).")


def test_continuous_scores_use_wilcoxon_and_a_seeded_paired_bootstrap():
    rng = np.random.default_rng(3)
    a = rng.uniform(0.2, 0.8, 50)
    b = np.clip(a + rng.normal(0.08, 0.1, 50), 0, 1)
    cells = [cell(i, v) for i in range(50) for v in "AB"]
    scores = {f"g{i}A0": {"judge": float(a[i])} for i in range(50)}
    scores.update({f"g{i}B0": {"judge": float(b[i])} for i in range(50)})
    c = analyze(cells, rows(50), ["A", "B"], {}, scores, []).get("judge", "B")
    assert c.kind == "continuous" and c.test == "Wilcoxon signed-rank"
    assert c.p_value == pytest.approx(sp.wilcoxon(b - a).pvalue)
    again = analyze(cells, rows(50), ["A", "B"], {}, scores, []).get("judge", "B")
    assert again.interval == c.interval  # seeded
    assert c.interval.low < float(np.mean(b - a)) < c.interval.high
    assert c.verdict.startswith("B is better on judge score: mean B ") and "; Wilcoxon signed-rank p" in c.verdict


def test_latency_lower_is_better():
    cells = [cell(i, "A", latency=200.0 + i) for i in range(20)] + [cell(i, "B", latency=100.0 + i) for i in range(20)]
    analysis = analyze(cells, rows(20), ["A", "B"], {}, {}, [], primary="latency_ms")
    c = analysis.get("latency_ms", "B")
    assert c.difference == pytest.approx(-100) and c.winner == "B" and c.outcome == "better"
    assert c.verdict.startswith("B is better on latency: mean B 110 ms vs A 210 ms, difference -100 ms (95% CI ")


def test_preferences_use_a_sign_test_on_decisive_rows_with_ties_reported():
    prefs = [(i, "B", "A") for i in range(15)] + [(i, "A", "B") for i in range(15, 18)] + \
            [(18, "tie", "tie"), (19, "A", "B"), (19, "B", "A")]  # row 19: one each way, a tied row
    c = compare_preferences(prefs, "A", "B")
    assert (c.wins_challenger, c.wins_baseline, c.ties, c.n_units, c.n_outputs) == (15, 3, 2, 20, 21)
    assert c.p_value == pytest.approx(sp.binomtest(15, 18).pvalue)
    iv = sp.binomtest(15, 18).proportion_ci(method="wilson")
    assert (c.interval.low, c.interval.high) == pytest.approx((iv.low, iv.high))
    assert c.winner == "B" and c.verdict.startswith("B is preferred: B chosen on 15 of 18 decisive rows (83%, 95% CI ")
    assert "), 2 tied; sign test p=0.0075; based on 20 rows (21 preferences)." in c.verdict


def test_unpaired_data_keep_fisher_and_newcombe_and_get_welch():
    obs = Observations("rating", "binary", np.arange(40, dtype=object),
                       np.array(["A"] * 20 + ["B"] * 20, dtype=object), np.array([1.0] * 4 + [0.0] * 16 + [1.0] * 16 + [0.0] * 4))
    c = compare(obs, "A", "B", paired=False)
    assert c.design == "unpaired" and c.test == "Fisher exact"
    assert c.p_value == pytest.approx(stats.fisher_test(4, 20, 16, 20).p_value)
    assert c.interval == stats.rate_difference_interval(4, 20, 16, 20)
    cont = Observations("judge", "continuous", np.arange(40, dtype=object),
                        np.array(["A"] * 20 + ["B"] * 20, dtype=object), np.r_[np.linspace(0, 1, 20), np.linspace(0.3, 1.3, 20)])
    w = compare(cont, "A", "B", paired=False)
    assert w.test == "Welch t" and w.p_value == pytest.approx(sp.ttest_ind(cont.values[20:], cont.values[:20],
                                                                           equal_var=False).pvalue)


# -- families ---------------------------------------------------------------------------------------------


def test_the_primary_metric_is_raw_and_every_other_comparison_is_holm_adjusted():
    rng = np.random.default_rng(0)
    cells = [cell(i, v, latency=float(rng.normal(100, 10))) for i in range(60) for v in "ABC"]
    scores = {c["generation_guid"]: {"exact": float(rng.random() < (0.3 if c["variant"] == "A" else 0.6)),
                                     "judge": float(rng.random())} for c in cells}
    ratings = {c["generation_guid"]: "Positive" if rng.random() < 0.5 else "Negative" for c in cells}
    analysis = analyze(cells, rows(60), ["A", "B", "C"], ratings, scores, [])
    assert analysis.primary_metric == "rating" and [c.challenger for c in analysis.primary] == ["B", "C"]
    primary = analysis.primary
    assert [c.p_adjusted for c in primary] == pytest.approx(stats.holm([c.p_value for c in primary]))
    secondary = analysis.secondary
    assert {c.metric for c in secondary} == {"exact", "judge", "latency_ms"} and len(secondary) == 6
    assert [c.p_adjusted for c in secondary] == pytest.approx(stats.holm([c.p_value for c in secondary]))
    assert all(c.family_size == 6 for c in secondary)
    assert "; Holm-adjusted p" in secondary[0].verdict and "over 6 comparisons (" in secondary[0].verdict
    chosen = analyze(cells, rows(60), ["A", "B", "C"], ratings, scores, [], primary="exact", baseline="B")
    assert chosen.primary_metric == "exact" and {c.challenger for c in chosen.comparisons} == {"A", "C"}
    with pytest.raises(pl.ConfigError, match="unknown metric 'nope'"):
        analyze(cells, rows(60), ["A", "B", "C"], ratings, scores, [], primary="nope")


def test_holm_matches_the_textbook():
    # Holm (1979) step-down on four p-values: sorted 0.01, 0.02, 0.03, 0.04 -> x4, x3, x2, x1, monotone.
    assert stats.holm([0.04, 0.01, 0.03, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])


def test_one_p_value_format_never_rounds_across_alpha():
    assert stats.format_p(0.04996) == "p=0.04996" and stats.format_p(0.0501) == "p=0.05"
    assert stats.format_p(0.2) == "p=0.2" and stats.format_p(0.0004) == "p<0.001"
    from promptlab.report import fmt_p

    assert fmt_p(0.04996) == stats.format_p(0.04996)


# -- calibration by simulation (seeded, vectorised) --------------------------------------------------------


SIMS = 1000


def _null_binary_pairs(rng, n_rows, sims):
    """Rows of varying difficulty, both variants equally good: correlated pass/fail pairs."""
    difficulty = rng.uniform(0.1, 0.9, size=(sims, n_rows))
    return rng.random((sims, n_rows)) < difficulty, rng.random((sims, n_rows)) < difficulty


@pytest.mark.parametrize("n_rows", [300, 30])
def test_paired_tests_hold_their_false_positive_rate(n_rows):
    rng = np.random.default_rng(2026 + n_rows)
    a, b = _null_binary_pairs(rng, n_rows, SIMS)
    mcnemar = np.mean([stats.mcnemar_test(int(np.sum(x & ~y)), int(np.sum(y & ~x))).p_value < 0.05
                       for x, y in zip(a, b)])
    prefs = rng.choice([-1, 0, 1], p=[0.4, 0.2, 0.4], size=(SIMS, n_rows))
    sign = np.mean([stats.sign_test(int(np.sum(p < 0)), int(np.sum(p > 0))).p_value < 0.05 for p in prefs])
    diffs = rng.normal(0, 1, size=(SIMS, n_rows)) + rng.standard_t(5, size=(SIMS, n_rows))
    wilcoxon = np.mean(sp.wilcoxon(diffs, axis=1).pvalue < 0.05)
    low, high = stats.bootstrap_mean_intervals(diffs, seed=n_rows)
    boot = np.mean((low > 0) | (high < 0))
    print(f"\n{n_rows} rows: false-positive rates McNemar {mcnemar:.3f}, sign {sign:.3f}, "
          f"Wilcoxon {wilcoxon:.3f}, bootstrap {boot:.3f}")
    for rate in (mcnemar, sign, wilcoxon, boot):
        assert rate <= 0.07
        if n_rows >= 300:
            assert rate >= 0.03


def test_unit_intervals_cover_with_row_effects_and_repeats_where_pooled_ones_fall_short():
    """Intra-row correlation 0.5 for the per-output difference, 5 repeats per row, 300 rows."""
    rng = np.random.default_rng(7)
    n_rows, repeats, delta = 300, 5, 0.1
    row_effect = rng.normal(0, math.sqrt(0.5), size=(SIMS, n_rows, 1))  # the row's own B - A shift
    noise = rng.normal(0, math.sqrt(0.5), size=(SIMS, n_rows, repeats))
    d = delta + row_effect + noise  # per-output paired differences: ICC 0.5 within a row
    unit = d.mean(axis=2)
    low, high = stats.bootstrap_mean_intervals(unit, seed=1)
    covered = np.mean((low <= delta) & (delta <= high))
    pooled = d.reshape(SIMS, -1)  # treating 1,500 outputs as independent pairs
    se = pooled.std(axis=1, ddof=1) / math.sqrt(pooled.shape[1])
    naive = np.mean(np.abs(pooled.mean(axis=1) - delta) <= 1.96 * se)
    print(f"\ncoverage of 95% intervals: rows as units {covered:.3f}, outputs as units {naive:.3f}")
    assert covered >= 0.93 and naive < 0.85


def test_the_paired_bootstrap_is_seeded_and_matches_a_hand_computed_case():
    d = [0.0, 1.0] * 20
    iv = stats.paired_bootstrap_interval(d, seed=1)
    assert iv == stats.paired_bootstrap_interval(d, seed=1)
    # Mean of 40 fair coin flips: 0.5 +- 1.96 * 0.5 / sqrt(40) = 0.345..0.655 (normal approximation).
    assert iv.low == pytest.approx(0.345, abs=0.03) and iv.high == pytest.approx(0.655, abs=0.03)
    with pytest.raises(pl.ConfigError, match="n_boot"):
        stats.paired_bootstrap_interval(d, n_boot=10)
    # One sample alone or in a batch: the same resampling scheme gives the same kind of interval.
    many = np.random.default_rng(0).normal(size=(1, 500))
    batch_low, batch_high = stats.bootstrap_mean_intervals(many, seed=4)
    single = stats.paired_bootstrap_interval(many[0], seed=4)
    assert (single.low, single.high) == pytest.approx((batch_low[0], batch_high[0]))


# -- through a run: power, ranking, recorded options ------------------------------------------------------


@pytest.fixture
def three_way(lab):
    for name in ("a", "b", "c"):
        lab.actions.create(name, prompt=name + " {{q}}", model="sim:echo")
    exp = lab.experiments.create("three", variants={"A": "a", "B": "b", "C": "c"})
    return lab.experiments.run(exp, [{"q": f"q{i}"} for i in range(30)], progress=False,
                               analysis={"primary": "preference", "baseline": "A"})


def test_a_three_way_run_ranks_its_variants_from_preferences(lab, three_way):
    run = three_way
    cells = run.cells()
    guid = {(r.row_index, r.variant): r.generation_guid for r in cells.itertuples()}
    for row in range(30):  # C beats B beats A on most rows
        lab.feedback.prefer(guid[(row, "C")], guid[(row, "B")], winner="a" if row % 5 else "b")
        lab.feedback.prefer(guid[(row, "B")], guid[(row, "A")], winner="a" if row % 4 else "tie")
    ranking = run.ranking(n_boot=300)
    assert list(ranking.table.index) == ["C", "B", "A"] and ranking.n_clusters == 30
    figure = pl.charts.leaderboard(run)
    assert list(figure.data[0].y) == ["A", "B", "C"] or list(figure.data[0].y)[::-1] == ["A", "B", "C"]
    analysis = run.analysis()  # the recorded options: preferences are primary, A the baseline
    assert analysis.primary_metric == "preference" and {c.challenger for c in analysis.primary} == {"B", "C"}
    b, c = analysis.get("preference", "B"), analysis.get("preference", "C")
    assert b.enough and b.winner == "B" and not c.enough  # C was never compared with A directly
    assert b.p_adjusted is None  # a family of one comparison with data: nothing to adjust


def test_power_after_a_pilot_names_the_rows_that_would_settle_it(lab, three_way):
    run = three_way
    rnd = np.random.default_rng(5)
    for r in run.cells().itertuples():
        share = {"A": 0.5, "B": 0.6, "C": 0.5}[r.variant]
        lab.feedback.log(r.generation_guid, rating="Positive" if rnd.random() < share else "Negative")
    power = run.power("rating")
    assert list(power.challenger) == ["B", "C"] and set(power.units) == {30}
    b = power.set_index("challenger").loc["B"]
    assert b.outcome == "inconclusive" and b.difference > 0  # 60% vs 50% on 30 rows: not settled
    discordant = run.analysis(metrics=["rating"]).get("rating", "B")
    plan = pl.stats.sample_size("paired_binary", discordant=(discordant.wins_baseline + discordant.wins_challenger) / 30,
                                difference=b.difference)
    assert b.needed == plan.n > 30 and b.more == b.needed - 30
    verdict = run.significance("rating", b="B").verdict
    assert f"about {int(b.needed)} rows would show it (80% power): {int(b.more)} more." in verdict
    with pytest.raises(pl.ConfigError, match="power"):
        run.power(power=1.5)
    with pytest.raises(pl.ConfigError, match="baseline 'Z'"):
        lab.experiments.run(lab.experiments.get("three"), [{"q": "x"}], progress=False, analysis={"baseline": "Z"})
