"""Tests for promptlab.experiments.stats against values computed by hand.

Each expected number is derived in a comment (and where practical recomputed in the test
from first principles: the Wilson formula with a literal z, hypergeometric sums with
math.comb), so the tests do not merely echo scipy.
"""

from __future__ import annotations

import json
import math

import pytest

from promptlab.errors import ConfigError, InvalidInputError
from promptlab.experiments.stats import (
    Interval,
    Significance,
    TestResult,
    fisher_test,
    pairwise_test,
    rate_difference_interval,
    significance,
    summarize_numbers,
    wilson_interval,
)

Z95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def wilson_by_hand(s: int, n: int, z: float = Z95) -> tuple[float, float]:
    # Wilson (1927): (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n)
    p = s / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return centre - half, centre + half


# --------------------------------------------------------------------------- Wilson


def test_wilson_8_of_10_matches_formula_and_hand_literal():
    # z² = 3.841459; z²/n = 0.3841459; denom = 1.3841459
    # centre = (0.8 + 0.1920729) / 1.3841459 = 0.716740
    # half = 1.959964 * sqrt(0.016 + 0.0096036) / 1.3841459 = 1.959964 * 0.160011 / 1.3841459
    #      = 0.226578
    # -> (0.490162, 0.943318)
    iv = wilson_interval(8, 10)
    low, high = wilson_by_hand(8, 10)
    assert iv.low == pytest.approx(low, abs=1e-12)
    assert iv.high == pytest.approx(high, abs=1e-12)
    assert round(iv.low, 4) == 0.4902
    assert round(iv.high, 4) == 0.9433


def test_wilson_1_of_10():
    # centre = (0.1 + 0.1920729) / 1.3841459 = 0.211013
    # half = 1.959964 * sqrt(0.009 + 0.0096036) / 1.3841459 = 1.959964 * 0.136395 / 1.3841459
    #      = 0.193137 -> (0.017876, 0.404150)
    iv = wilson_interval(1, 10)
    assert iv.low == pytest.approx(0.017876, abs=2e-6)
    assert iv.high == pytest.approx(0.404150, abs=2e-6)
    assert (iv.low, iv.high) == pytest.approx(wilson_by_hand(1, 10), abs=1e-12)


def test_wilson_other_confidence_uses_its_own_z():
    # 90%: z = 1.644854; for 8/10: z²/n = 0.2705543, denom = 1.2705543
    # centre = (0.8 + 0.1352772) / 1.2705543 = 0.736118
    # half = 1.644854 * sqrt(0.016 + 0.0067639) / 1.2705543 = 1.644854 * 0.150878 / 1.2705543
    #      = 0.195327 -> (0.5408, 0.9314)
    iv = wilson_interval(8, 10, confidence=0.90)
    assert (round(iv.low, 4), round(iv.high, 4)) == (0.5408, 0.9314)
    assert (iv.low, iv.high) == pytest.approx(wilson_by_hand(8, 10, z=1.6448536269514722), abs=1e-12)


def test_wilson_extremes_stay_inside_unit_interval():
    # s = 0: centre == half exactly in exact arithmetic, so low is 0.
    assert wilson_interval(0, 10).low == 0.0
    assert wilson_interval(10, 10).high == 1.0
    assert wilson_interval(0, 10).high == pytest.approx(wilson_by_hand(0, 10)[1])


def test_wilson_n_zero_is_the_whole_unit_interval():
    assert wilson_interval(0, 0) == Interval(0.0, 1.0)


@pytest.mark.parametrize("s, n", [(-1, 10), (11, 10), (1, -2), (1.5, 10), (True, 10), ("3", 10)])
def test_wilson_rejects_bad_counts(s, n):
    with pytest.raises(InvalidInputError):
        wilson_interval(s, n)


def test_wilson_accepts_whole_floats_and_numpy_ints():
    import numpy as np

    assert wilson_interval(8.0, np.int64(10)) == wilson_interval(8, 10)


@pytest.mark.parametrize("conf", [0, 1, 1.5, -0.1, "high"])
def test_wilson_rejects_bad_confidence(conf):
    with pytest.raises(ConfigError, match="confidence"):
        wilson_interval(8, 10, confidence=conf)


def test_successes_over_n_message_names_both():
    with pytest.raises(InvalidInputError, match=r"successes \(11\) cannot exceed n \(10\)"):
        wilson_interval(11, 10)


# --------------------------------------------------------------------------- Newcombe


def test_newcombe_paper_example_a():
    # Newcombe (1998) Table II, example (a): 56/70 vs 48/80, method 10 gives
    # difference 0.2000 with 95% CI 0.0524 to 0.3339. Our difference is B - A, so B = 56/70.
    iv = rate_difference_interval(48, 80, 56, 70)
    assert iv.low == pytest.approx(0.0524, abs=1e-3)
    assert iv.high == pytest.approx(0.3339, abs=1e-3)
    # Rebuild from the hand Wilson intervals: L = d - sqrt((p_b-l_b)² + (u_a-p_a)²),
    # U = d + sqrt((u_b-p_b)² + (p_a-l_a)²).
    l_a, u_a = wilson_by_hand(48, 80)
    l_b, u_b = wilson_by_hand(56, 70)
    d = 56 / 70 - 48 / 80
    assert d == pytest.approx(0.2)
    assert iv.low == pytest.approx(d - math.sqrt((0.8 - l_b) ** 2 + (u_a - 0.6) ** 2), abs=1e-12)
    assert iv.high == pytest.approx(d + math.sqrt((u_b - 0.8) ** 2 + (0.6 - l_a) ** 2), abs=1e-12)


def test_newcombe_is_antisymmetric_when_swapping_variants():
    ab = rate_difference_interval(48, 80, 56, 70)
    ba = rate_difference_interval(56, 70, 48, 80)
    assert (ba.low, ba.high) == pytest.approx((-ab.high, -ab.low), abs=1e-12)


def test_newcombe_1_of_10_vs_8_of_10():
    # Wilson 8/10 = (0.490162, 0.943318), 1/10 = (0.017876, 0.404150), d = 0.7
    # L = 0.7 - sqrt((0.8-0.490162)² + (0.404150-0.1)²) = 0.7 - sqrt(0.095999 + 0.092507)
    #   = 0.7 - 0.434173 = 0.265827
    # U = 0.7 + sqrt((0.943318-0.8)² + (0.1-0.017876)²) = 0.7 + sqrt(0.020540 + 0.006744)
    #   = 0.7 + 0.165180 = 0.865180
    iv = rate_difference_interval(1, 10, 8, 10)
    assert iv.low == pytest.approx(0.265827, abs=1e-5)
    assert iv.high == pytest.approx(0.865180, abs=1e-5)


def test_newcombe_with_an_empty_variant_is_uninformative():
    assert rate_difference_interval(0, 0, 5, 10) == Interval(-1.0, 1.0)
    assert rate_difference_interval(5, 10, 0, 0) == Interval(-1.0, 1.0)


def test_newcombe_validates_counts():
    with pytest.raises(InvalidInputError, match="variant B"):
        rate_difference_interval(1, 10, 12, 10)


# --------------------------------------------------------------------------- Fisher


def test_fisher_two_sided_by_hypergeometric_sum():
    # Table [[8, 2], [1, 9]]: rows B = 8/10, A = 1/10; columns total 9 positive, 11 negative.
    # P(X = k) = C(10, k) C(10, 9 - k) / C(20, 9) for the positives in row B.
    # C(20, 9) = 167960. P(8) = 45·10 = 450; P(9) = 10·1 = 10; P(0) = 1·10 = 10;
    # P(1) = 10·45 = 450; P(2) = 45·120 = 5400 > 450 so it is not as extreme.
    # Two-sided p = (450 + 10 + 10 + 450) / 167960 = 920 / 167960 = 0.0054775
    total = math.comb(20, 9)
    probs = [math.comb(10, k) * math.comb(10, 9 - k) for k in range(10)]
    p_by_hand = sum(p for p in probs if p <= probs[8]) / total
    assert p_by_hand == pytest.approx(920 / 167960)
    res = fisher_test(1, 10, 8, 10)
    assert res.p_value == pytest.approx(p_by_hand, rel=1e-9)
    assert round(res.p_value, 6) == 0.005477
    # Odds ratio of B relative to A: (8/2) / (1/9) = 36.
    assert res.statistic == pytest.approx(36.0)


def test_fisher_is_symmetric_in_p_and_inverts_odds_ratio():
    ab, ba = fisher_test(1, 10, 8, 10), fisher_test(8, 10, 1, 10)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ba.statistic == pytest.approx(1 / 36)


def test_fisher_identical_rates_p_is_one():
    assert fisher_test(5, 10, 5, 10).p_value == pytest.approx(1.0)


def test_fisher_empty_variant_gives_p_one():
    assert fisher_test(0, 0, 3, 10).p_value == 1.0


def test_test_result_as_dict():
    assert TestResult(0.5, 2.0).as_dict() == {"p_value": 0.5, "statistic": 2.0}


# --------------------------------------------------------------------------- pairwise


def test_pairwise_9_vs_1_is_22_over_1024():
    # P(X >= 9 | n=10, p=.5) = (C(10,9) + C(10,10)) / 2^10 = 11/1024; two-sided doubles it.
    res = pairwise_test(1, 9, 0)
    assert res.p_value == 22 / 1024 == 0.021484375
    assert res.statistic == pytest.approx(0.9)


def test_pairwise_ignores_ties():
    assert pairwise_test(1, 9, 50).p_value == 22 / 1024


def test_pairwise_14_vs_4():
    # Sum_{k>=14} C(18,k) = 3060 + 816 + 153 + 18 + 1 = 4048; p = 2·4048 / 2^18 = 0.0308838
    assert pairwise_test(4, 14, 0).p_value == pytest.approx(2 * 4048 / 2**18, rel=1e-12)


def test_pairwise_no_decisive_pairs():
    res = pairwise_test(0, 0, 7)
    assert res.p_value == 1.0
    assert math.isnan(res.statistic)


def test_pairwise_rejects_negative():
    with pytest.raises(InvalidInputError, match="ties"):
        pairwise_test(1, 2, -1)


# --------------------------------------------------------------------------- significance


def test_verdict_b_better_on_ratings():
    # A 1/10, B 8/10: Fisher p = 0.0054775 (above) -> "0.0055"; difference +70 pts with
    # Newcombe CI 0.2658 to 0.8652 -> "+27 to +87".
    sig = significance(1, 10, 8, 10)
    assert sig.verdict == (
        "B is better: positive rate B 80% vs A 10%, difference +70 pts (95% CI +27 to +87), "
        "Fisher p=0.0055; based on ratings of 10 A and 10 B outputs."
    )
    assert sig.winner == "B" and sig.significant and sig.evidence == "ratings"
    assert sig.rate_a == 0.1 and sig.rate_b == 0.8
    assert sig.difference == pytest.approx(0.7)
    assert sig.fisher_p == pytest.approx(920 / 167960)
    assert sig.odds_ratio == pytest.approx(36.0)


def test_verdict_a_better_puts_winner_first_with_positive_gap():
    sig = significance(8, 10, 1, 10, label_a="gpt-4o", label_b="sim")
    assert sig.verdict.startswith(
        "gpt-4o is better: positive rate gpt-4o 80% vs sim 10%, difference +70 pts "
        "(95% CI +27 to +87)")
    assert sig.winner == "gpt-4o"
    assert sig.difference == pytest.approx(-0.7)  # fields stay B - A


def test_verdict_no_significant_difference():
    # 5/10 vs 6/10: 11 positives in total. P(k in B) ∝ C(10,k)·C(10,11-k); observed k = 6
    # gives 210·252 = 52920, the mode (k = 5 ties it), so every table is at most as likely
    # and the two-sided p is the whole distribution: 1.
    # Newcombe from hand Wilson intervals: d = 0.1, CI -0.290 to +0.451 -> "-29 to +45".
    l_a, u_a = wilson_by_hand(5, 10)
    l_b, u_b = wilson_by_hand(6, 10)
    assert 0.1 - math.sqrt((0.6 - l_b) ** 2 + (u_a - 0.5) ** 2) == pytest.approx(-0.2898, abs=1e-4)
    assert 0.1 + math.sqrt((u_b - 0.6) ** 2 + (0.5 - l_a) ** 2) == pytest.approx(0.4509, abs=1e-4)
    sig = significance(5, 10, 6, 10)
    assert sig.verdict == (
        "No significant difference (Fisher p=1): positive rate B 60% vs A 50%, difference "
        "+10 pts (95% CI -29 to +45); based on ratings of 10 A and 10 B outputs."
    )
    assert sig.winner is None and not sig.significant


def test_verdict_not_enough_data():
    sig = significance(5, 7, 2, 7)
    assert sig.verdict == (
        "Not enough data: 7 rated outputs per variant; rate at least 10 per variant "
        "(30+ recommended) before drawing conclusions."
    )
    assert sig.evidence == "none" and sig.winner is None


def test_not_enough_data_even_with_a_huge_gap():
    # 7/7 vs 0/7 has Fisher p = 2/C(14,7) = 2/3432 = 0.00058 but n < min_n: no claim.
    sig = significance(0, 7, 7, 7)
    assert sig.fisher_p == pytest.approx(2 / 3432)
    assert sig.verdict.startswith("Not enough data")
    assert not sig.significant


def test_not_enough_data_mentions_unequal_counts_and_sparse_pairs():
    sig = significance(3, 4, 2, 9, wins_a=1, wins_b=2)
    assert sig.verdict == (
        "Not enough data: 4 rated outputs for A and 9 for B and 3 decisive pairwise "
        "comparisons; rate at least 10 per variant (30+ recommended) or compare at least "
        "10 decisive pairs before drawing conclusions."
    )


def test_min_n_is_configurable():
    assert significance(1, 10, 8, 10, min_n=11).verdict.startswith("Not enough data")
    assert "30+ recommended" not in significance(1, 10, 8, 10, min_n=40).verdict
    with pytest.raises(ConfigError, match="min_n"):
        significance(1, 10, 8, 10, min_n=0)


def test_never_claims_significance_when_p_not_below_alpha():
    # Fisher p = 0.0054775 >= alpha 0.005
    sig = significance(1, 10, 8, 10, alpha=0.005)
    assert not sig.significant
    assert sig.verdict.startswith("No significant difference (Fisher p=0.0055)")
    assert "99.5% CI" in sig.verdict


def test_p_value_text_never_rounds_across_alpha():
    # p = 0.0054775 < alpha 0.0055, but 2 significant digits would print 0.0055.
    sig = significance(1, 10, 8, 10, alpha=0.0055)
    assert sig.significant
    assert "Fisher p=0.005477;" in sig.verdict


def test_pairwise_only_verdict_when_ratings_are_few():
    sig = significance(3, 5, 4, 5, wins_a=1, wins_b=9, ties=2)
    assert sig.verdict == (
        "B is better: B preferred in 9 of 10 decisive pairs (2 ties), binomial p=0.021; "
        "based on pairwise comparisons (ratings too few: 5 A, 5 B)."
    )
    assert sig.evidence == "pairwise" and sig.pairwise_p == 22 / 1024


def test_both_evidences_are_holm_adjusted():
    # Ratings 12/25 vs 18/25: Fisher p = 0.1481 (not significant).
    # Pairwise 14 vs 4: p = 0.0309 < 0.05 on its own, but Holm for two tests compares the
    # smaller p with alpha/2: 2·0.0309 = 0.0618 >= 0.05, so no claim may be made.
    sig = significance(12, 25, 18, 25, wins_a=4, wins_b=14, ties=2)
    assert sig.evidence == "both"
    assert sig.pairwise_p == pytest.approx(0.0308838, abs=1e-7)
    assert not sig.significant and sig.winner is None
    assert sig.verdict.startswith("No significant difference on ratings or pairwise comparisons")
    assert "binomial p=0.031 (Holm-adjusted p=0.062)" in sig.verdict


def test_both_evidences_pairwise_survives_holm():
    # Pairwise 9 vs 1: p = 0.0215, Holm-adjusted 0.043 < 0.05; ratings p = 0.148.
    sig = significance(12, 25, 18, 25, wins_a=1, wins_b=9)
    assert sig.winner == "B"
    assert sig.verdict.startswith(
        "B is better on pairwise comparisons: B preferred in 9 of 10 decisive pairs, "
        "binomial p=0.021 (Holm-adjusted p=0.043); ratings not significant:")


def test_conflicting_evidence_claims_no_winner():
    sig = significance(5, 25, 20, 25, wins_a=18, wins_b=2)
    assert sig.winner is None and not sig.significant
    assert sig.verdict.startswith("Conflicting evidence, no conclusion. Ratings favour B:")
    assert "pairwise comparisons favour A: A preferred in 18 of 20" in sig.verdict


def test_both_agree():
    sig = significance(10, 40, 30, 40, wins_a=2, wins_b=18, ties=1)
    assert sig.winner == "B"
    assert sig.verdict.startswith("B is better on both ratings and pairwise comparisons:")


def test_empty_experiment():
    sig = significance(0, 0, 0, 0)
    assert sig.rate_a is None and sig.rate_b is None and sig.difference is None
    assert sig.interval_a == Interval(0.0, 1.0)
    assert sig.difference_interval == Interval(-1.0, 1.0)
    assert sig.fisher_p == 1.0 and sig.pairwise_p == 1.0
    assert sig.verdict.startswith("Not enough data: 0 rated outputs per variant;")


def test_significance_as_dict_is_plain_and_json_ready():
    d = significance(1, 10, 8, 10).as_dict()
    assert d["interval_b"] == {"low": pytest.approx(0.490162, abs=1e-6),
                               "high": pytest.approx(0.943318, abs=1e-6)}
    assert d["verdict"].startswith("B is better")
    json.dumps(d)  # nested dataclasses became dicts
    assert set(d) == {f for f in Significance.__dataclass_fields__}


def test_significance_rejects_bad_alpha():
    with pytest.raises(ConfigError, match="alpha"):
        significance(1, 10, 8, 10, alpha=1.2)


# --------------------------------------------------------------------------- summaries


def test_summarize_numbers_ignores_none_and_nan():
    # sorted [1, 2, 3, 4]: mean 2.5; p50 = 2 + 0.5·(3-2) = 2.5;
    # p95 index 0.95·3 = 2.85 -> 3 + 0.85·(4-3) = 3.85
    out = summarize_numbers([3, None, 1, float("nan"), 4, 2])
    assert out == {"n": 4, "mean": 2.5, "p50": 2.5, "p95": pytest.approx(3.85),
                   "min": 1.0, "max": 4.0}


def test_summarize_numbers_empty():
    assert summarize_numbers([None, None]) == {
        "n": 0, "mean": None, "p50": None, "p95": None, "min": None, "max": None}
    assert summarize_numbers([])["n"] == 0


def test_summarize_numbers_rejects_text():
    with pytest.raises(InvalidInputError, match="item 1"):
        summarize_numbers([1.0, "fast"])
