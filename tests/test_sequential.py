"""Tests for promptlab.experiments.sequential: always-valid inference under peeking, and SRM.

The acceptance tests simulate thousands of online experiments at once (numpy, seeded): every
experiment is looked at after each block of 100 assignments up to 5,000, and stops at the first
look whose p-value is below 0.05. The always-valid p-value must keep that false-positive rate at
about alpha; a fixed-sample test on the same data must not.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from promptlab.errors import ConfigError, InvalidInputError
from promptlab.experiments.sequential import (
    DEFAULT_TAU,
    SequentialResult,
    SrmResult,
    _msprt,
    _variance,
    always_valid_proportions,
    sample_ratio_mismatch,
)

ALPHA = 0.05
LOOK_EVERY = 100
TOTAL = 5_000
N_SIM = 2_000


def simulate(rng: np.random.Generator, p_a: float, p_b: float, n_sim: int = N_SIM):
    """Cumulative ``(s_a, n_a, s_b, n_b)`` at every look, each of shape ``(n_sim, looks)``.

    Each assignment goes to A or B by a fair coin, so a block of 100 puts Binomial(100, 1/2) users
    on A; their successes are Binomial(users, rate). Drawing per block is the same distribution as
    drawing per user, at 1/100 of the cost.
    """
    looks = TOTAL // LOOK_EVERY
    n_a = rng.binomial(LOOK_EVERY, 0.5, size=(n_sim, looks))
    n_b = LOOK_EVERY - n_a
    s_a = rng.binomial(n_a, p_a)
    s_b = rng.binomial(n_b, p_b)
    return tuple(np.cumsum(x, axis=1) for x in (s_a, n_a, s_b, n_b))


def always_valid(s_a, n_a, s_b, n_b, alpha: float = ALPHA):
    """The p-value and interval :func:`always_valid_proportions` computes, for whole arrays."""
    diff = s_b / n_b - s_a / n_a
    log_lambda, half = _msprt(diff, _variance(s_a, n_a, s_b, n_b), DEFAULT_TAU, alpha)
    return diff, np.minimum(1.0, np.exp(-log_lambda)), half


def z_test(s_a, n_a, s_b, n_b):
    """Two-sided pooled two-proportion z-test, vectorised. Stands in for Fisher's exact test at
    each look for speed (100,000 tables); at 50+ users per variant the two agree closely."""
    pooled = (s_a + s_b) / (n_a + n_b)
    se = np.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    z = (s_b / n_b - s_a / n_a) / se
    return 2 * stats.norm.sf(np.abs(z))


# --------------------------------------------------------------------------- simulations


def test_peeking_false_positive_rate_always_valid_vs_fixed_n():
    rng = np.random.default_rng(20240611)
    s_a, n_a, s_b, n_b = simulate(rng, 0.3, 0.3)
    _, p_seq, _ = always_valid(s_a, n_a, s_b, n_b)
    p_fixed = z_test(s_a, n_a, s_b, n_b)

    # Stopping at the first look with p < alpha declares a winner iff any look has p < alpha.
    fpr_seq = float((p_seq < ALPHA).any(axis=1).mean())
    fpr_fixed = float((p_fixed < ALPHA).any(axis=1).mean())
    fpr_fixed_once = float((p_fixed[:, -1] < ALPHA).mean())
    print(f"\nfalse-positive rate over {N_SIM} null experiments, 50 looks: always-valid "
          f"{fpr_seq:.3f}, fixed-n z-test {fpr_fixed:.3f} (at the last look only: {fpr_fixed_once:.3f})")
    assert fpr_seq <= 0.06
    assert fpr_fixed > 0.10
    # The z-test is calibrated when looked at once, so the inflation above is the peeking.
    assert 0.03 < fpr_fixed_once < 0.07


def test_vectorised_z_test_matches_statsmodels():
    rng = np.random.default_rng(7)
    s_a, n_a, s_b, n_b = (x[:5, ::10] for x in simulate(rng, 0.3, 0.33, n_sim=5))
    ours = z_test(s_a, n_a, s_b, n_b)
    for idx in np.ndindex(ours.shape):
        _, p = proportions_ztest([s_b[idx], s_a[idx]], [n_b[idx], n_a[idx]])
        assert ours[idx] == pytest.approx(p, rel=1e-9)


def test_power_and_confidence_sequence_coverage_under_a_real_difference():
    rng = np.random.default_rng(20240612)
    true_diff = 0.36 - 0.30
    s_a, n_a, s_b, n_b = simulate(rng, 0.30, 0.36)
    diff, p, half = always_valid(s_a, n_a, s_b, n_b)

    stopped = (p < ALPHA).any(axis=1)
    first = np.argmax(p < ALPHA, axis=1)
    rows = np.arange(diff.shape[0])
    power = float(stopped.mean())
    median_stop = float(np.median((first[stopped] + 1) * LOOK_EVERY))
    covered_always = float((np.abs(diff - true_diff) <= half).all(axis=1).mean())
    print(f"\n30% vs 36%: {power:.3f} of {N_SIM} experiments stop significant by {TOTAL:,} assignments "
          f"(median stop at {median_stop:,.0f}); the confidence sequence covers +6 pts at every look "
          f"in {covered_always:.3f}")
    assert power >= 0.80
    # The always-valid guarantee: P(some look's interval misses the truth) <= alpha.
    assert covered_always >= 0.95
    # Stopping never picks the wrong winner here: the difference at the stopping look is positive.
    assert np.all(diff[rows[stopped], first[stopped]] > 0)


def test_p_value_and_interval_agree_at_every_look():
    rng = np.random.default_rng(3)
    s_a, n_a, s_b, n_b = simulate(rng, 0.3, 0.34, n_sim=500)
    diff, p, half = always_valid(s_a, n_a, s_b, n_b)
    significant = p < ALPHA
    assert 0 < significant.mean() < 1  # both kinds of look occur, so the check below has teeth
    assert np.array_equal(significant, np.abs(diff) > half)


def test_public_function_matches_the_vectorised_core():
    rng = np.random.default_rng(11)
    s_a, n_a, s_b, n_b = simulate(rng, 0.3, 0.35, n_sim=20)
    diff, p, half = always_valid(s_a, n_a, s_b, n_b)
    for i, j in [(0, 0), (3, 9), (7, 24), (12, 49), (19, 33)]:
        r = always_valid_proportions(int(s_a[i, j]), int(n_a[i, j]), int(s_b[i, j]), int(n_b[i, j]))
        assert r.difference == pytest.approx(diff[i, j], abs=1e-12)
        assert r.p_value == pytest.approx(p[i, j], rel=1e-9)
        assert r.interval_low == pytest.approx(max(-1.0, diff[i, j] - half[i, j]), abs=1e-12)
        assert r.interval_high == pytest.approx(min(1.0, diff[i, j] + half[i, j]), abs=1e-12)
        assert r.significant == (p[i, j] < ALPHA)


# --------------------------------------------------------------------------- worked values


def test_hand_computed_msprt_value():
    # 480/2000 vs 580/2000: d = 0.05. Rates with one success and one failure added:
    # q_a = 481/2002 = 0.240260, q_b = 581/2002 = 0.290210
    # v = (0.240260 * 0.759740 + 0.290210 * 0.709790) / 2000 = (0.182535 + 0.205988) / 2000
    #   = 1.942615e-4;  tau^2 = 0.0025;  v + tau^2 = 2.694262e-3
    # log Lambda = 0.5 ln(v / (v + tau^2)) + tau^2 d^2 / (2 v (v + tau^2))
    #            = 0.5 ln(0.0721020) + 6.25e-6 / 1.046783e-6 = -1.314837 + 5.970675 = 4.655838
    # p = exp(-4.655838) = 0.009506
    # half-width = sqrt(v (v + tau^2) / tau^2 * (ln((v + tau^2) / v) - 2 ln 0.05))
    #            = sqrt(2.093565e-4 * (2.629674 + 5.991465)) = sqrt(1.804892e-3) = 0.042484
    r = always_valid_proportions(480, 2000, 580, 2000)
    q_a, q_b = 481 / 2002, 581 / 2002
    v = (q_a * (1 - q_a) + q_b * (1 - q_b)) / 2000
    t2 = 0.05 ** 2
    log_lambda = 0.5 * math.log(v / (v + t2)) + t2 * 0.05 ** 2 / (2 * v * (v + t2))
    half = math.sqrt(v * (v + t2) / t2 * (math.log((v + t2) / v) - 2 * math.log(0.05)))
    assert log_lambda == pytest.approx(4.655838, abs=2e-6)
    assert r.p_value == pytest.approx(math.exp(-log_lambda), rel=1e-12)
    assert r.p_value == pytest.approx(0.009506, abs=1e-6)
    assert (r.interval_low, r.interval_high) == pytest.approx((0.05 - half, 0.05 + half), abs=1e-12)
    assert half == pytest.approx(0.042484, abs=1e-6)
    assert r.significant and (r.n_a, r.n_b, r.alpha) == (2000, 2000, 0.05)


def test_always_valid_is_stricter_than_fisher_at_a_single_look():
    # Fisher's exact test alone gives p=0.005 for 300/1000 vs 360/1000; the always-valid p-value
    # pays for permission to peek.
    fisher_p = stats.fisher_exact([[360, 640], [300, 700]]).pvalue
    r = always_valid_proportions(300, 1000, 360, 1000)
    assert fisher_p < 0.01
    assert r.p_value > 0.05 and not r.significant
    assert r.interval_low < 0 < r.interval_high


def test_larger_tau_favours_larger_differences():
    big, small = (always_valid_proportions(30, 100, 50, 100, tau=t).p_value for t in (0.1, 0.01))
    assert big < small


def test_previous_p_gives_the_running_minimum():
    rng = np.random.default_rng(5)
    s_a, n_a, s_b, n_b = (x[0] for x in simulate(rng, 0.3, 0.36, n_sim=1))
    raw, tracked, previous = [], [], None
    for look in range(s_a.size):
        counts = int(s_a[look]), int(n_a[look]), int(s_b[look]), int(n_b[look])
        raw.append(always_valid_proportions(*counts).p_value)
        previous = always_valid_proportions(*counts, previous_p=previous).p_value
        tracked.append(previous)
    assert tracked == pytest.approx(list(np.minimum.accumulate(raw)), rel=1e-12)
    # The raw p-values do go back up at some look, so the running minimum is doing something.
    assert any(later > earlier for earlier, later in zip(raw, raw[1:]))
    once = always_valid_proportions(30, 100, 31, 100, previous_p=0.01)
    assert once.p_value == 0.01 and once.significant


def test_no_data_and_degenerate_counts():
    r = always_valid_proportions(0, 0, 5, 10)
    assert r.difference is None and (r.interval_low, r.interval_high) == (-1.0, 1.0)
    assert r.p_value == 1.0 and not r.significant
    # All versus nothing on one user each is no evidence, not an infinitely significant one.
    r = always_valid_proportions(0, 1, 1, 1)
    assert r.difference == 1.0 and not r.significant and r.interval_low < 0
    r = always_valid_proportions(0, 50, 0, 50)
    assert r.difference == 0.0 and r.p_value == 1.0


def test_result_as_dict_is_json_ready():
    r = always_valid_proportions(40, 100, 55, 100)
    d = r.as_dict()
    assert isinstance(r, SequentialResult)
    assert set(d) == {"difference", "interval_low", "interval_high", "p_value", "alpha", "n_a", "n_b",
                      "significant"}
    assert json.loads(json.dumps(d)) == d


# --------------------------------------------------------------------------- SRM


def test_srm_flags_a_broken_50_50_split():
    # chi-square = (210^2 + 210^2) / 5000 = 17.64 on 1 df; p = erfc(sqrt(17.64 / 2)) = 2.67e-5
    r = sample_ratio_mismatch({"A": 5210, "B": 4790}, {"A": 0.5, "B": 0.5})
    assert isinstance(r, SrmResult)
    assert r.statistic == pytest.approx(17.64, abs=1e-9)
    assert r.p_value == pytest.approx(math.erfc(math.sqrt(17.64 / 2)), rel=1e-9)
    assert r.flagged and r.total == 10_000
    assert r.message == ("Sample ratio mismatch: A 5,210 vs B 4,790 assignments where 50/50 was configured "
                         "(chi-square p=2.7e-05); the split is broken, so no result below can be trusted.")


def test_srm_accepts_a_split_within_chance():
    # chi-square = 2 * 20^2 / 5000 = 0.16; p = erfc(sqrt(0.08)) = 0.689
    r = sample_ratio_mismatch({"A": 5020, "B": 4980}, {"A": 0.5, "B": 0.5})
    assert r.p_value == pytest.approx(math.erfc(math.sqrt(0.08)), rel=1e-9)
    assert not r.flagged
    assert "A 5,020 vs B 4,980" in r.message and "50/50" in r.message and "p=0.69" in r.message
    assert r.message.startswith("No sample ratio mismatch")


def test_srm_uneven_configuration_and_unnormalised_weights():
    r = sample_ratio_mismatch({"A": 9000, "B": 1000}, {"A": 0.9, "B": 0.1})
    assert not r.flagged and r.p_value == pytest.approx(1.0)
    assert "A 9,000 vs B 1,000" in r.message and "90/10" in r.message
    same = sample_ratio_mismatch({"A": 9000, "B": 1000}, {"A": 9, "B": 1})
    assert same.weights == pytest.approx({"A": 0.9, "B": 0.1}) and same.p_value == r.p_value
    # 9,000 / 1,000 is badly off a 50/50 configuration.
    assert sample_ratio_mismatch({"A": 9000, "B": 1000}, {"A": 1, "B": 1}).flagged


def test_srm_three_variants_missing_label_and_no_data():
    r = sample_ratio_mismatch({"A": 3300, "B": 3350, "C": 3350}, {"A": 1, "B": 1, "C": 1})
    assert not r.flagged and "33.3/33.3/33.3" in r.message
    assert r.expected == pytest.approx({"A": 10000 / 3, "B": 10000 / 3, "C": 10000 / 3})
    # A configured variant nobody was assigned to is the starkest mismatch there is.
    missing = sample_ratio_mismatch({"A": 500}, {"A": 0.5, "B": 0.5})
    assert missing.counts == {"A": 500, "B": 0} and missing.flagged
    empty = sample_ratio_mismatch({}, {"A": 0.5, "B": 0.5})
    assert not empty.flagged and empty.p_value == 1.0 and empty.total == 0
    assert "No assignments yet" in empty.message
    assert json.loads(json.dumps(r.as_dict())) == r.as_dict()


def test_srm_p_text_never_rounds_across_the_threshold():
    # 5,165 vs 4,835: chi-square = 2 * 165^2 / 5000 = 10.89, p = 0.00097, just under 0.001.
    r = sample_ratio_mismatch({"A": 5165, "B": 4835}, {"A": 1, "B": 1})
    assert r.flagged
    assert "p=0.00097" in r.message


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("args", [(-1, 10, 5, 10), (5, 10, -1, 10), (11, 10, 5, 10), (5, 10, 12, 10),
                                  (1.5, 10, 5, 10), (True, 10, 5, 10), ("3", 10, 5, 10)])
def test_bad_counts_raise_invalid_input(args):
    with pytest.raises(InvalidInputError):
        always_valid_proportions(*args)


@pytest.mark.parametrize("alpha", [0, 1, 1.5, -0.1, "x", None])
def test_bad_alpha_raises_config_error(alpha):
    with pytest.raises(ConfigError, match="alpha"):
        always_valid_proportions(5, 10, 6, 10, alpha=alpha)


@pytest.mark.parametrize("tau", [0, -0.05, math.inf, math.nan, "0.05", True])
def test_bad_tau_raises_config_error(tau):
    with pytest.raises(ConfigError, match="tau"):
        always_valid_proportions(5, 10, 6, 10, tau=tau)


@pytest.mark.parametrize("previous_p", [-0.1, 1.5, "x", math.nan])
def test_bad_previous_p_raises_invalid_input(previous_p):
    with pytest.raises(InvalidInputError, match="previous_p"):
        always_valid_proportions(5, 10, 6, 10, previous_p=previous_p)


def test_srm_validation():
    with pytest.raises(InvalidInputError, match="unknown variant 'C'"):
        sample_ratio_mismatch({"A": 10, "C": 10}, {"A": 0.5, "B": 0.5})
    with pytest.raises(InvalidInputError, match="must not be negative"):
        sample_ratio_mismatch({"A": -1, "B": 10}, {"A": 0.5, "B": 0.5})
    with pytest.raises(InvalidInputError, match="whole number"):
        sample_ratio_mismatch({"A": 1.5, "B": 10}, {"A": 0.5, "B": 0.5})
    with pytest.raises(ConfigError, match="at least two"):
        sample_ratio_mismatch({"A": 10}, {"A": 1.0})
    with pytest.raises(ConfigError, match="weight of variant 'B'"):
        sample_ratio_mismatch({"A": 10, "B": 10}, {"A": 1.0, "B": 0})
    with pytest.raises(ConfigError, match="weight of variant 'B'"):
        sample_ratio_mismatch({"A": 10, "B": 10}, {"A": 1.0, "B": "half"})
    with pytest.raises(ConfigError, match="threshold"):
        sample_ratio_mismatch({"A": 10, "B": 10}, {"A": 1, "B": 1}, threshold=0)
