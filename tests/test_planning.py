"""Tests for promptlab.experiments.planning: do planned sample sizes deliver the power they promise?

For every design, thousands of experiments are simulated at the planned n (numpy, seeded) and
analysed with exactly the test promptlab runs on such data (scipy's, vectorised where scipy's own
function is not: those vectorised versions are checked against scipy on a sample first). The
share of significant experiments must be within 5 points of the requested power. Worked examples
recompute textbook values by hand, and exact powers are checked against brute-force enumeration
with scipy's tests.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats

from promptlab.errors import ConfigError, InvalidInputError
from promptlab.experiments.planning import DESIGNS, Plan, more_rows_needed, sample_size

N_SIM = 2_000
Z975, Z80 = 1.959963984540054, 0.8416212335729143  # standard normal quantiles


def exact_binomial_p(wins_a: np.ndarray, wins_b: np.ndarray) -> np.ndarray:
    """``binomtest(wins_b, wins_a + wins_b, 0.5).pvalue`` (two-sided), vectorised: for p = 1/2 the
    p-value is 2 P(X <= min(k, m - k)), capped at 1; no decisive units means p = 1."""
    m = wins_a + wins_b
    p = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(wins_a, wins_b), m, 0.5))
    return np.where(m == 0, 1.0, p)


def fisher_p(s_a: np.ndarray, s_b: np.ndarray, n: int) -> np.ndarray:
    """``fisher_exact([[s_b, n - s_b], [s_a, n - s_a]]).pvalue``, vectorised: the null (hypergeometric)
    mass of the tables with the same margins that are no more likely than the observed one, with
    scipy's relative tolerance of 1e-14 for equally likely tables."""
    # Tables sharing a total share a null distribution: score each distinct total once.
    totals, which = np.unique(s_a + s_b, return_inverse=True)
    pmf = stats.hypergeom.pmf(np.arange(n + 1)[None, :], 2 * n, n, totals[:, None])[which]
    observed = pmf[np.arange(s_b.size), s_b]
    return np.minimum(1.0, np.where(pmf <= observed[:, None] * (1 + 1e-14), pmf, 0.0).sum(axis=1))


def check_power(plan: Plan, simulated: float, label: str) -> None:
    print(f"\n{label}: n={plan.n} {plan.unit}, simulated power {simulated:.3f} "
          f"(target {plan.power:g}, planned {plan.achieved_power:.3f})")
    assert abs(simulated - plan.power) <= 0.05
    # The plan's own power figure is right too (4 simulation standard errors).
    assert abs(simulated - plan.achieved_power) <= 0.04


# --------------------------------------------------------------------------- the vectorised tests are scipy's


def test_vectorised_binomial_test_matches_scipy():
    rng = np.random.default_rng(1)
    wins = rng.multinomial(40, [0.15, 0.25, 0.6], size=300)[:, :2]
    ours = exact_binomial_p(wins[:, 0], wins[:, 1])
    for (a, b), p in zip(wins, ours):
        expected = 1.0 if a + b == 0 else stats.binomtest(int(b), int(a + b), 0.5).pvalue
        assert p == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert exact_binomial_p(np.array([0]), np.array([0]))[0] == 1.0


def test_vectorised_fisher_matches_scipy():
    rng = np.random.default_rng(2)
    n = 60
    s_a, s_b = rng.binomial(n, 0.3, size=300), rng.binomial(n, 0.45, size=300)
    ours = fisher_p(s_a, s_b, n)
    for a, b, p in zip(s_a, s_b, ours):
        assert p == pytest.approx(stats.fisher_exact([[b, n - b], [a, n - a]]).pvalue, rel=1e-9)
    assert 0 < (ours < 0.05).mean() < 1


# --------------------------------------------------------------------------- simulations per design


def simulate_mcnemar(rng, n, only_a, only_b):
    """Rows as a multinomial over (A only passes, B only passes, both or neither)."""
    cells = rng.multinomial(n, [only_a, only_b, 1 - only_a - only_b], size=N_SIM)
    return float((exact_binomial_p(cells[:, 0], cells[:, 1]) < 0.05).mean())


@pytest.mark.parametrize("kwargs, label", [
    (dict(p_a=0.3, p_b=0.4), "paired_binary 30% vs 40%"),
    (dict(discordant=0.3, difference=0.1, alpha=0.01, power=0.9), "paired_binary alpha=0.01 power=0.9"),
])
def test_paired_binary_power_by_simulation(kwargs, label):
    rng = np.random.default_rng(101)
    plan = sample_size("paired_binary", **kwargs)
    psi, delta = plan.parameters["discordant"], plan.parameters["difference"]
    cells = rng.multinomial(plan.n, [(psi - delta) / 2, (psi + delta) / 2, 1 - psi], size=N_SIM)
    simulated = float((exact_binomial_p(cells[:, 0], cells[:, 1]) < plan.alpha).mean())
    check_power(plan, simulated, label)


@pytest.mark.parametrize("kwargs, label", [
    (dict(difference=0.5, sd=1.0), "paired_continuous d=0.5"),
    (dict(difference=-0.3, sd=1.0, alpha=0.01, power=0.9), "paired_continuous d=0.3 alpha=0.01 power=0.9"),
])
def test_paired_continuous_power_by_simulation(kwargs, label):
    rng = np.random.default_rng(102)
    plan = sample_size("paired_continuous", **kwargs)
    d = rng.normal(kwargs["difference"], kwargs["sd"], size=(N_SIM, plan.n))
    simulated = float((stats.wilcoxon(d, axis=1).pvalue < plan.alpha).mean())
    check_power(plan, simulated, label)


def test_paired_continuous_from_a_pilot_by_simulation():
    rng = np.random.default_rng(103)
    pilot = rng.normal(0.4, 1.2, size=40)
    plan = sample_size("paired_continuous", pilot=pilot)
    assert plan.parameters["pilot_n"] == 40
    assert plan.parameters["sd"] == pytest.approx(np.std(pilot, ddof=1))
    assert plan.parameters["difference"] == pytest.approx(np.mean(pilot))
    d = rng.normal(pilot.mean(), pilot.std(ddof=1), size=(N_SIM, plan.n))
    simulated = float((stats.wilcoxon(d, axis=1).pvalue < plan.alpha).mean())
    check_power(plan, simulated, "paired_continuous from a 40-row pilot")


@pytest.mark.parametrize("p_a, p_b", [(0.3, 0.4), (0.05, 0.15)])
def test_unpaired_binary_power_by_simulation(p_a, p_b):
    rng = np.random.default_rng(104)
    plan = sample_size("unpaired_binary", p_a=p_a, p_b=p_b)
    s_a, s_b = rng.binomial(plan.n, p_a, size=N_SIM), rng.binomial(plan.n, p_b, size=N_SIM)
    simulated = float((fisher_p(s_a, s_b, plan.n) < 0.05).mean())
    check_power(plan, simulated, f"unpaired_binary {p_a:g} vs {p_b:g}")


def test_unpaired_continuous_power_by_simulation():
    rng = np.random.default_rng(105)
    plan = sample_size("unpaired_continuous", difference=0.5, sd=1.0)
    a = rng.normal(0.0, 1.0, size=(N_SIM, plan.n))
    b = rng.normal(0.5, 1.0, size=(N_SIM, plan.n))
    simulated = float((stats.ttest_ind(b, a, equal_var=False, axis=1).pvalue < 0.05).mean())
    check_power(plan, simulated, "unpaired_continuous d=0.5")


@pytest.mark.parametrize("kwargs, label", [
    (dict(win_share=0.6, tie_share=0.3), "preference 60% with 30% ties"),
    (dict(win_share=0.35, alpha=0.01, power=0.9), "preference 35% no ties alpha=0.01 power=0.9"),
])
def test_preference_power_by_simulation(kwargs, label):
    rng = np.random.default_rng(106)
    plan = sample_size("preference", **kwargs)
    w, ties = kwargs["win_share"], kwargs.get("tie_share", 0.0)
    cells = rng.multinomial(plan.n, [(1 - w) * (1 - ties), w * (1 - ties), ties], size=N_SIM)
    simulated = float((exact_binomial_p(cells[:, 0], cells[:, 1]) < plan.alpha).mean())
    check_power(plan, simulated, label)


# --------------------------------------------------------------------------- exact power = enumeration


def test_mcnemar_exact_power_matches_enumeration_with_binomtest():
    plan = sample_size("paired_binary", discordant=0.5, difference=-0.4)
    n, psi, b_share = plan.n, 0.5, (0.5 - 0.4) / (2 * 0.5)
    power = sum(stats.binom.pmf(m, n, psi) * stats.binom.pmf(k, m, b_share)
                for m in range(1, n + 1) for k in range(m + 1)
                if stats.binomtest(k, m, 0.5).pvalue < 0.05)
    assert plan.achieved_power == pytest.approx(power, rel=1e-9)


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_fisher_exact_power_matches_enumeration_with_fisher_exact(alpha):
    plan = sample_size("unpaired_binary", p_a=0.1, p_b=0.7, alpha=alpha)
    n = plan.n
    weight = np.outer(stats.binom.pmf(np.arange(n + 1), n, 0.1), stats.binom.pmf(np.arange(n + 1), n, 0.7))
    power = sum(weight[a, b] for a in range(n + 1) for b in range(n + 1)
                if stats.fisher_exact([[b, n - b], [a, n - a]]).pvalue < alpha)
    assert plan.achieved_power == pytest.approx(power, rel=1e-9)
    assert plan.achieved_power >= plan.power


def test_sign_test_plan_survives_the_saw_tooth():
    # Without ties the sign test's exact power zig-zags with n: 199 rows reach 80% for B winning
    # 60%, 200 do not. The plan is a size from which a few more rows cannot undo it.
    def power(n):
        k = np.arange(n + 1)
        return float(stats.binom.pmf(k, n, 0.6)[exact_binomial_p(n - k, k) < 0.05].sum())

    assert power(199) >= 0.8 > power(200)
    plan = sample_size("preference", win_share=0.6)
    assert all(power(n) >= 0.8 for n in range(plan.n, plan.n + 11))
    assert plan.achieved_power == pytest.approx(power(plan.n), rel=1e-9)
    assert plan.n - 1 < plan.parameters["connor_n"] + 20  # and not far past the formula


def test_fisher_needs_more_than_the_arcsine_formula():
    # At Cohen's-h n (statsmodels NormalIndPower) Fisher's exact test falls well short of 80%
    # for 5% vs 15%: that is why the plan continuity-corrects and searches.
    plan = sample_size("unpaired_binary", p_a=0.05, p_b=0.15)
    n_h = math.ceil(plan.parameters["cohen_h_n"])
    rng = np.random.default_rng(107)
    s_a, s_b = rng.binomial(n_h, 0.05, size=N_SIM), rng.binomial(n_h, 0.15, size=N_SIM)
    at_h = float((fisher_p(s_a, s_b, n_h) < 0.05).mean())
    print(f"\nFisher at Cohen's-h n={n_h}: {at_h:.3f}; planned n={plan.n}: {plan.achieved_power:.3f}")
    assert at_h < 0.77 and plan.n > n_h


# --------------------------------------------------------------------------- worked examples


def test_connor_formula_worked_example_and_exact_mcnemar():
    # Connor (1987), "Sample size for testing differences in proportions for the paired-sample
    # design", Biometrics 43:207-211: n = (z_a sqrt(psi) + z_b sqrt(psi - delta^2))^2 / delta^2.
    # p_a = 0.3, p_b = 0.4 independent: both pass 0.12, A only 0.18, B only 0.28, psi = 0.46.
    # (1.959964 * 0.678233 + 0.841621 * 0.670820)^2 / 0.01 = (1.329313 + 0.564576)^2 / 0.01
    #   = 358.68. The exact conditional McNemar test needs 377 rows for 80%.
    plan = sample_size("paired_binary", p_a=0.3, p_b=0.4)
    connor = (Z975 * math.sqrt(0.46) + Z80 * math.sqrt(0.45)) ** 2 / 0.01
    assert connor == pytest.approx(358.68, abs=0.01)
    assert plan.parameters["connor_n"] == pytest.approx(connor, rel=1e-9)
    assert plan.parameters["discordant"] == pytest.approx(0.46)
    assert plan.n == 377 and plan.unit == "rows"
    assert plan.description == ("377 rows to detect a 10-point pass-rate difference (A 30% vs B 40%, 46% of "
                                "rows discordant, paired, exact McNemar) at alpha=0.05 with 80% power")
    # Greenwell's pwr.mcnemar (an R implementation of Connor's formula) documents p10 = 0.05,
    # p01 = 0.45 as needing 22 pairs: (1.959964 * 0.707107 + 0.841621 * 0.583095)^2 / 0.16 = 22.01.
    small = sample_size("paired_binary", discordant=0.5, difference=0.4)
    assert small.parameters["connor_n"] == pytest.approx(22.01, abs=0.01)
    assert small.n == 25  # the exact test, discrete at this size, needs a few more


def test_correlation_shrinks_the_discordant_share():
    # rho = 0.5: both pass = 0.12 + 0.5 * sqrt(0.21 * 0.24) = 0.12 + 0.112250 = 0.232250;
    # psi = (0.3 - 0.23225) + (0.4 - 0.23225) = 0.235500: about half the rows of rho = 0.
    plan = sample_size("paired_binary", p_a=0.3, p_b=0.4, correlation=0.5)
    assert plan.parameters["discordant"] == pytest.approx(0.2355006, abs=1e-6)
    assert plan.n < sample_size("paired_binary", p_a=0.3, p_b=0.4).n * 0.6
    same = sample_size("paired_binary", p_a=0.3, p_b=0.4, discordant=plan.parameters["discordant"])
    assert same.n == plan.n


def test_unpaired_binary_worked_example():
    # Cohen's h = 2 asin(sqrt(0.4)) - 2 asin(sqrt(0.3)) = 2 (0.684719 - 0.579640) = 0.210159;
    # n = 2 (1.959964 + 0.841621)^2 / h^2 = 15.697758 / 0.044167 = 355.42 per variant (statsmodels'
    # NormalIndPower, which also counts the far tail's sliver of power: 355.419).
    # Casagrande-Pike-Smith: n/4 (1 + sqrt(1 + 4 / (n * 0.1)))^2 = 375.15.
    plan = sample_size("unpaired_binary", p_a=0.3, p_b=0.4)
    h = 2 * math.asin(math.sqrt(0.4)) - 2 * math.asin(math.sqrt(0.3))
    n_h = 2 * (Z975 + Z80) ** 2 / h ** 2
    assert h == pytest.approx(0.210159, abs=1e-6)
    assert plan.parameters["effect_size"] == pytest.approx(h, rel=1e-12)
    assert plan.parameters["cohen_h_n"] == pytest.approx(n_h, rel=1e-5)
    assert plan.parameters["continuity_corrected_n"] == pytest.approx(375.15, abs=0.01)
    assert (plan.n, plan.unit) == (375, "per variant")
    assert "375 per variant" in plan.description and "Fisher exact" in plan.description


def test_t_test_worked_examples():
    # Cohen (1988), Statistical Power Analysis, Table 2.4.1: d = 0.5, two-sided alpha = 0.05,
    # power 0.80 needs 64 per group.
    plan = sample_size("unpaired_continuous", difference=0.5, sd=1.0)
    assert plan.n == 64 and plan.achieved_power == pytest.approx(0.8015, abs=1e-4)
    assert sample_size("unpaired_continuous", difference=-5, sd=10).n == 64
    # Paired t-test: 33.37 rows for d = 0.5; Wilcoxon at ARE 3/pi: 33.37 * pi / 3 = 34.94 -> 35.
    paired = sample_size("paired_continuous", difference=0.5, sd=1.0)
    assert paired.parameters["t_test_n"] == pytest.approx(33.367, abs=1e-3)
    assert paired.n == 35
    assert paired.description == ("35 rows to detect a mean per-row difference of 0.5 (SD of differences 1, "
                                  "paired, Wilcoxon signed-rank) at alpha=0.05 with 80% power")


def test_preference_counts_rows_including_ties():
    plan = sample_size("preference", win_share=0.6, tie_share=0.3)
    no_ties = sample_size("preference", win_share=0.6)
    # Ties carry no information, so about 1 / (1 - 0.3) times the rows are needed.
    assert plan.n == pytest.approx(no_ties.n / 0.7, rel=0.05)
    assert plan.parameters["expected_decisive"] == round(plan.n * 0.7)
    assert plan.description.startswith(f"{plan.n} rows (about {round(plan.n * 0.7)} decisive)")
    # Symmetric: B winning 40% is as detectable as B winning 60%.
    assert sample_size("preference", win_share=0.4, tie_share=0.3).n == plan.n


def test_more_power_or_smaller_alpha_needs_more_rows():
    for design, params in [("paired_binary", dict(p_a=0.5, p_b=0.6)),
                           ("paired_continuous", dict(difference=0.4, sd=1)),
                           ("unpaired_binary", dict(p_a=0.5, p_b=0.6)),
                           ("unpaired_continuous", dict(difference=0.4, sd=1)),
                           ("preference", dict(win_share=0.6))]:
        base = sample_size(design, **params).n
        assert sample_size(design, power=0.9, **params).n > base
        assert sample_size(design, alpha=0.01, **params).n > base


def test_more_rows_needed():
    assert more_rows_needed("paired_continuous", 30, difference=0.5, sd=1) == 5
    assert more_rows_needed("paired_continuous", 100, difference=0.5, sd=1) == 0
    assert more_rows_needed("unpaired_binary", 300, p_a=0.3, p_b=0.4) == 75
    pilot = [0.5, 1.0, -0.2, 0.3, 0.9, 0.0, 1.2, 0.4]
    assert more_rows_needed("paired_continuous", 8, pilot=pilot) == \
        sample_size("paired_continuous", pilot=pilot).n - 8
    with pytest.raises(InvalidInputError, match="current_rows"):
        more_rows_needed("paired_continuous", -1, difference=0.5, sd=1)


def test_plan_as_dict_is_json_ready():
    for design, params in [("paired_binary", dict(p_a=0.3, p_b=0.4)),
                           ("paired_continuous", dict(pilot=[1, 2, 0, 1.5])),
                           ("unpaired_binary", dict(p_a=0.3, p_b=0.4)),
                           ("unpaired_continuous", dict(difference=1, sd=2)),
                           ("preference", dict(win_share=0.7, tie_share=0.1))]:
        plan = sample_size(design, **params)
        d = plan.as_dict()
        assert set(d) == {"design", "n", "unit", "alpha", "power", "achieved_power", "parameters",
                          "description"}
        assert d["design"] == design and isinstance(d["n"], int)
        assert json.loads(json.dumps(d, allow_nan=False)) == d
    assert set(DESIGNS) == {"paired_binary", "paired_continuous", "unpaired_binary",
                            "unpaired_continuous", "preference"}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("design, kwargs, match", [
    ("paired", dict(p_a=0.3, p_b=0.4), "unknown design 'paired'"),
    ("paired_binary", dict(p_a=0.3, p_b=0.4, sd=1), "unexpected parameter sd"),
    ("paired_binary", dict(p_a=0.3), "needs p_b"),
    ("paired_binary", dict(), "needs discordant and difference"),
    ("paired_binary", dict(discordant=0.4), "needs difference"),
    ("paired_binary", dict(p_a=0.3, p_b=0.4, difference=0.1), "not both"),
    ("paired_binary", dict(p_a=0.3, p_b=0.4, correlation=0.2, discordant=0.3), "not both"),
    ("paired_binary", dict(discordant=0.3, difference=0.1, correlation=0.2), "correlation needs p_a"),
    ("paired_binary", dict(p_a=0.3, p_b=1.2), "p_b must be strictly between 0 and 1"),
    ("paired_binary", dict(p_a=0, p_b=0.4), "p_a must be strictly between 0 and 1"),
    ("paired_binary", dict(p_a=0.4, p_b=0.4), "no difference"),
    ("paired_binary", dict(p_a=0.3, p_b=0.4, correlation=0.99), "correlation=0.99 is impossible"),
    ("paired_binary", dict(p_a=0.3, p_b=0.4, discordant=0.05), "discordant=0.05 is impossible"),
    ("paired_binary", dict(discordant=0.1, difference=0.2), "cannot exceed discordant"),
    ("paired_binary", dict(discordant=1.5, difference=0.1), "discordant"),
    ("paired_binary", dict(discordant=0.3, difference=0), "must not be 0"),
    ("paired_binary", dict(discordant=0.3, difference="big"), "difference must be a number"),
    ("paired_continuous", dict(difference=0.5), "needs sd"),
    ("paired_continuous", dict(difference=0.5, sd=0), "sd must be positive"),
    ("paired_continuous", dict(difference=0.0, sd=1), "must not be 0"),
    ("paired_continuous", dict(difference=math.nan, sd=1), "finite"),
    ("paired_continuous", dict(sd=1, pilot=[1, 2, 3]), "sd or pilot, not both"),
    ("paired_continuous", dict(pilot=[1, -1, 0.5, -0.5]), "mean difference is 0"),
    ("unpaired_binary", dict(p_a=0.3), "needs p_b"),
    ("unpaired_binary", dict(p_a=0.3, p_b=0.3), "no difference"),
    ("unpaired_binary", dict(p_a=0.3, p_b=0.4, correlation=0.5), "unexpected parameter correlation"),
    ("unpaired_continuous", dict(difference=1), "needs sd"),
    ("preference", dict(), "needs win_share"),
    ("preference", dict(win_share=0.5), "no preference"),
    ("preference", dict(win_share=1.0), "win_share must be strictly between 0 and 1"),
    ("preference", dict(win_share=0.6, tie_share=1.0), "tie_share"),
    ("preference", dict(win_share=0.6, tie_share=-0.1), "tie_share"),
    ("unpaired_continuous", dict(difference=1, sd=1, alpha=0), "alpha"),
    ("unpaired_continuous", dict(difference=1, sd=1, power=1), "power"),
    ("unpaired_continuous", dict(difference=1, sd=1, alpha=0.2, power=0.1), "must exceed alpha"),
    ("paired_binary", dict(discordant=0.02, difference=1e-7), "too small"),
])
def test_config_errors(design, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        sample_size(design, **kwargs)


@pytest.mark.parametrize("pilot, match", [
    ([1.0], "at least 2"),
    ([1.0, math.nan], "at least 2"),
    ([1.0, math.inf, 2.0], "infinite"),
    (["a", "b"], "sequence of numbers"),
    ([0.5, 0.5, 0.5], "SD is 0"),
])
def test_pilot_errors(pilot, match):
    with pytest.raises(InvalidInputError, match=match):
        sample_size("paired_continuous", pilot=pilot)


def test_none_parameters_count_as_not_given():
    assert sample_size("paired_binary", p_a=0.3, p_b=0.4, correlation=None, discordant=None).n == 377
    # NaN rows in a pilot (unscored) are left out, like promptlab's Wilcoxon test does.
    assert sample_size("paired_continuous", pilot=[1, 2, math.nan, 0.5]).parameters["pilot_n"] == 3
