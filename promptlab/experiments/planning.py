"""How many rows (or users) an experiment needs: pure functions, no I/O.

:func:`sample_size` answers "how many dataset rows (paired designs) or users per variant
(unpaired) do I need to detect this difference?" for the test promptlab actually runs on that
kind of data, two-sided at ``alpha`` with the requested power:

- ``paired_binary`` (both variants on the same rows, pass/fail): exact McNemar, i.e.
  ``binomtest`` on the discordant rows. Parameters ``p_a, p_b`` [``correlation``], or
  ``discordant, difference``.
- ``paired_continuous`` (judge scores, lengths, latency per row): Wilcoxon signed-rank on the
  per-row differences. ``difference, sd``, or ``pilot``.
- ``unpaired_binary`` (online, one variant per user): Fisher exact test. ``p_a, p_b``.
- ``unpaired_continuous``: Welch t-test. ``difference, sd``.
- ``preference`` (pairwise judgements): exact sign test on the decisive rows. ``win_share``
  [``tie_share``].

Where the test's power can be computed exactly (McNemar, sign test, Fisher) the answer is the
smallest n near the textbook formula's from which the exact power stays at or above the target,
and ``achieved_power`` is that exact power. :func:`more_rows_needed` turns a plan into "how many more
rows" after a pilot.

>>> plan = sample_size("paired_binary", p_a=0.3, p_b=0.4)
>>> plan.n, plan.unit
(377, 'rows')
>>> print(plan.description)
377 rows to detect a 10-point pass-rate difference (A 30% vs B 40%, 46% of rows discordant, paired, exact McNemar) at alpha=0.05 with 80% power
>>> sample_size("unpaired_continuous", difference=0.5, sd=1).n   # Cohen's d = 0.5
64
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

import numpy as np
from scipy import special as _special
from scipy import stats as _sp

from promptlab.errors import ConfigError, InvalidInputError
from promptlab.experiments.stats import check_count

__all__ = ["DESIGNS", "Plan", "sample_size", "more_rows_needed"]

DESIGNS = ("paired_binary", "paired_continuous", "unpaired_binary", "unpaired_continuous", "preference")

_PARAMETERS: dict[str, tuple[str, ...]] = {
    "paired_binary": ("p_a", "p_b", "correlation", "discordant", "difference"),
    "paired_continuous": ("difference", "sd", "pilot"),
    "unpaired_binary": ("p_a", "p_b"),
    "unpaired_continuous": ("difference", "sd"),
    "preference": ("win_share", "tie_share"),
}

#: Asymptotic relative efficiency of the Wilcoxon signed-rank test to the t-test when the
#: differences are normal (Hodges & Lehmann 1956): it needs pi/3, about 1.047 times the rows.
#: Heavier-tailed differences (Laplace: ARE 1.5, logistic: 1.097) need fewer rows than planned;
#: the ARE is never below 0.864, so no continuous distribution needs more than about 10% more.
#: Scores on a coarse scale (1-5 judge ratings) tie a lot and Wilcoxon drops zero differences;
#: plan on a pilot's SD there and treat the answer as approximate.
WILCOXON_ARE = 3 / math.pi

# Beyond these sizes the exact searches cost more than they are worth: the formulas they start
# from are accurate there (the discreteness they correct fades as n grows).
_EXACT_FISHER_SEARCH_MAX_N = 2_000
_EXACT_FISHER_MAX_N = 5_000
_MAX_N = 10**9


@dataclass(frozen=True)
class Plan:
    """A sample size: ``n`` rows (paired designs, preference) or units per variant (unpaired).

    ``achieved_power`` is the power at ``n``: exact for the McNemar, sign and Fisher tests (it is
    at least ``power``; small designs overshoot because the tests are discrete), the t-test's for
    Welch, and the t-test's at the Wilcoxon-equivalent number of rows (``n * 3/pi``) for the
    signed-rank test; ``None`` where it was not computed (very large unpaired binary designs).
    ``parameters`` holds the resolved inputs (e.g. the discordant share a correlation implies)
    and the textbook approximation the plan started from, unrounded: ``connor_n`` (McNemar and
    sign test), ``cohen_h_n`` and ``continuity_corrected_n`` (Fisher), ``t_test_n`` (t-tests).
    """

    design: str
    n: int
    unit: str
    alpha: float
    power: float
    achieved_power: float | None
    parameters: dict[str, Any]
    description: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- validation


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a number, got {value!r}")
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return x


def _probability(value: Any, what: str) -> float:
    x = _number(value, what)
    if not 0.0 < x < 1.0:
        raise ConfigError(f"{what} must be strictly between 0 and 1, got {value!r}")
    return x


def _nonzero(value: Any, what: str) -> float:
    x = _number(value, what)
    if x == 0:
        raise ConfigError(f"{what} must not be 0: there is no difference to detect")
    return x


def _positive(value: Any, what: str) -> float:
    x = _number(value, what)
    if x <= 0:
        raise ConfigError(f"{what} must be positive, got {value!r}")
    return x


_count = check_count  # the house check (promptlab.experiments.stats)


def _require(params: Mapping[str, Any], design: str, *names: str) -> None:
    missing = [n for n in names if params.get(n) is None]
    if missing:
        raise ConfigError(f"design {design!r} needs {' and '.join(missing)}")


# --------------------------------------------------------------------------- exact powers


def _sign_test_critical(m: np.ndarray, alpha: float) -> np.ndarray:
    """For each number of decisive units ``m``: the largest ``k`` with ``2 P(Bin(m, 1/2) <= k) <
    alpha`` (-1 if none). ``binomtest(k, m, 0.5)`` (two-sided) rejects exactly when
    ``min(k, m - k)`` is at most that: for p = 1/2 its p-value is ``min(1, 2 P(X <= min(k, m-k)))``."""
    c = _sp.binom.ppf(alpha / 2, m, 0.5) - 1
    # ppf works in floating point; settle the boundary with the cdf itself.
    c = np.where(2 * _sp.binom.cdf(c + 1, m, 0.5) < alpha, c + 1, c)
    c = np.where((c >= 0) & (2 * _sp.binom.cdf(c, m, 0.5) >= alpha), c - 1, c)
    return c


def _sign_test_power(n: int, decisive: float, b_share: float, alpha: float) -> float:
    """Exact power of the two-sided exact binomial test on the decisive units among ``n``: each
    unit is decisive (a discordant row, a non-tied preference) with probability ``decisive``, and
    a decisive unit favours B with probability ``b_share``. The number of decisive units is itself
    Binomial(n, decisive), so the power is the Binomial-weighted average of the conditional
    powers (the "exact conditional" power of SAS PROC POWER's McNemar analysis)."""
    lo = int(_sp.binom.ppf(1e-13, n, decisive))
    hi = int(_sp.binom.isf(1e-13, n, decisive)) if decisive < 1 else n
    m = np.arange(max(0, lo - 1), min(n, hi + 1) + 1)
    c = _sign_test_critical(m, alpha)
    reject = _sp.binom.cdf(c, m, b_share) + _sp.binom.sf(m - c - 1, m, b_share)
    return float(np.clip(np.dot(_sp.binom.pmf(m, n, decisive), reject), 0.0, 1.0))


def _log_choose(n: Any, k: Any) -> np.ndarray:
    return _special.gammaln(np.asarray(n) + 1.0) - _special.gammaln(np.asarray(k) + 1.0) - _special.gammaln(
        np.asarray(n) - np.asarray(k) + 1.0)


def _fisher_power(n: int, p_a: float, p_b: float, alpha: float) -> float:
    """Exact power of scipy's two-sided ``fisher_exact`` with ``n`` units per variant.

    Conditional on the total successes ``t``, B's successes are hypergeometric under the null and
    the p-value of a table is the null mass of the tables no more likely than it (scipy's rule,
    with its 1e-14 relative tolerance for ties). The acceptance region of each ``t`` lies within
    a few null SDs of ``t/2``, so only ``z(alpha/2) + 3`` SDs either side are scored; the null
    mass beyond is less likely than anything inside, so it is added to every p-value inside. Totals
    ``t`` more than 8 SDs from their mean under the alternative are left out (mass < 1e-14).
    """
    mean_t = n * (p_a + p_b)
    sd_t = math.sqrt(n * (p_a * (1 - p_a) + p_b * (1 - p_b)))
    t = np.arange(max(0, math.floor(mean_t - 8 * sd_t)), min(2 * n, math.ceil(mean_t + 8 * sd_t)) + 1)
    # The hypergeometric SD of B's successes given t is at most sqrt(n)/2, and a table more than
    # z(alpha/2) + 3 SDs from t/2 has a p-value far below alpha.
    half = int((_sp.norm.isf(alpha / 2) + 3) * math.sqrt(n) / 2) + 2
    x = (t // 2)[:, None] + np.arange(-half, half + 2)[None, :]
    valid = (x >= np.maximum(0, t - n)[:, None]) & (x <= np.minimum(n, t)[:, None])
    xv = np.where(valid, x, 0)
    yv = np.where(valid, t[:, None] - x, 0)
    log_null = _log_choose(n, xv) + _log_choose(n, yv) - _log_choose(2 * n, t)[:, None]
    null = np.where(valid, np.exp(log_null), 0.0)
    outside = np.clip(1.0 - null.sum(axis=1), 0.0, 1.0)

    order = np.argsort(null, axis=1, kind="stable")
    ranked = np.take_along_axis(null, order, axis=1)
    cum = np.cumsum(ranked, axis=1)
    p_ranked = cum.copy()
    # Equally likely tables (B's x and t - x mirror each other) share the larger p-value.
    for k in range(1, 4):
        tie = ranked[:, k:] <= ranked[:, :-k] * (1 + 1e-14)
        p_ranked[:, :-k] = np.where(tie, cum[:, k:], p_ranked[:, :-k])
    p_ranked += outside[:, None]
    accept = np.empty_like(valid)
    np.put_along_axis(accept, order, p_ranked >= alpha, axis=1)
    accept &= valid

    log_alt = _sp.binom.logpmf(xv, n, p_b) + _sp.binom.logpmf(yv, n, p_a)
    return float(np.clip(1.0 - np.exp(log_alt[accept]).sum(), 0.0, 1.0))


def _smallest_n(power_at: Callable[[int], float], start: int, target: float, floor: int = 1,
                lookahead: Callable[[int], int] = lambda n: 0) -> int:
    """The smallest n near ``start`` from which ``power_at`` stays at or above ``target``.

    Exact power is not monotone in n: it saw-tooths as the discrete critical values jump (for a
    sign test without ties, 199 rows can reach 80% power and 200 fall short). So after galloping
    away from the formula's answer and bisecting back to a size that reaches the target, the next
    ``lookahead(n)`` sizes must reach it too, or the search moves past the one that did not: a
    plan should not be undone by a few more rows.
    """
    cache: dict[int, bool] = {}

    def ok(n: int) -> bool:
        if n not in cache:
            cache[n] = power_at(n) >= target
        return cache[n]

    n0 = max(floor, start)
    if ok(n0):
        passing, step = n0, 1
        failing = n0 - step
        while failing >= floor and ok(failing):
            passing, step = failing, step * 2
            failing = n0 - step
        failing = max(failing, floor - 1)
    else:
        failing, step = n0, 1
        passing = n0 + step
        while not ok(passing):
            failing, step = passing, step * 2
            passing = n0 + step
            if passing > _MAX_N:
                raise ConfigError("the difference is too small to detect with any practical number of rows")
    while passing - failing > 1:
        mid = (passing + failing) // 2
        if ok(mid):
            passing = mid
        else:
            failing = mid
    n = passing
    k = 1
    while k <= lookahead(n):
        if ok(n + k):
            k += 1
            continue
        n += k + 1
        while not ok(n):
            n += 1
        k = 1
    return n


def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(_sp.norm.isf(alpha / 2)), float(_sp.norm.ppf(power))


def _solve(solver: Any, **kwargs: Any) -> float:
    # statsmodels warns (and may return nan) when the root lies below its bracket, which happens
    # for huge effects needing only a couple of units; the caller's floor covers that case.
    # Importing its warning classes first matters: that import installs "always" filters, which
    # would otherwise land inside the block and override the "ignore".
    import statsmodels.tools.sm_exceptions  # noqa: F401

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            n = float(np.asarray(solver.solve_power(**kwargs)).item())
        except Exception:  # pragma: no cover - statsmodels root-finding failure modes vary by version
            return math.nan
    return n


# --------------------------------------------------------------------------- text


def _pct(x: float) -> str:
    return f"{round(100 * x, 1):g}%"


def _pts(x: float) -> str:
    return f"{round(100 * abs(x), 1):g}-point"


def _num(x: float) -> str:
    return f"{x:.3g}"


def _tail(alpha: float, power: float) -> str:
    return f"at alpha={alpha:g} with {round(100 * power, 1):g}% power"


def _units(n: int, unit: str) -> str:
    if unit == "rows":
        return f"{n:,} row{'s' if n != 1 else ''}"
    return f"{n:,} per variant"


# --------------------------------------------------------------------------- designs


def _discordant_plan(psi: float, delta: float, alpha: float, power: float) -> tuple[int, float, float]:
    """Rows for the exact two-sided binomial test on discordant (decisive) rows: Connor's formula,
    then the exact search. Returns ``(n, exact power at n, Connor's n)``."""
    z_a, z_b = _z(alpha, power)
    # Connor (1987), Biometrics 43:207-211: n = (z_a sqrt(psi) + z_b sqrt(psi - delta^2))^2 / delta^2
    n0 = (z_a * math.sqrt(psi) + z_b * math.sqrt(psi - delta * delta)) ** 2 / (delta * delta)
    if n0 > _MAX_N:
        raise ConfigError(f"the difference is too small to detect: it would take about {n0:,.0f} rows")
    b_share = (psi + delta) / (2 * psi)
    # The exact test cannot reject on fewer than log2(2/alpha) decisive rows at all.
    floor = max(1, math.ceil(math.log2(2 / alpha)))
    n = _smallest_n(lambda k: _sign_test_power(k, psi, b_share, alpha), math.ceil(n0), power, floor,
                    lookahead=lambda k: min(50, max(10, k // 50)))
    return n, _sign_test_power(n, psi, b_share, alpha), n0


def _paired_binary(p: Mapping[str, Any], alpha: float, power: float) -> Plan:
    given_rates = p.get("p_a") is not None or p.get("p_b") is not None
    if given_rates:
        _require(p, "paired_binary", "p_a", "p_b")
        if p.get("difference") is not None:
            raise ConfigError("give p_a and p_b, or discordant and difference, not both: "
                              "with p_a and p_b the difference is p_b - p_a")
        if p.get("correlation") is not None and p.get("discordant") is not None:
            raise ConfigError("give correlation or discordant, not both: each fixes the other")
        p_a, p_b = _probability(p["p_a"], "p_a"), _probability(p["p_b"], "p_b")
        if p_a == p_b:
            raise ConfigError("p_a and p_b are equal: there is no difference to detect")
        delta = p_b - p_a
        resolved: dict[str, Any] = {"p_a": p_a, "p_b": p_b}
        if p.get("discordant") is not None:
            psi = _number(p["discordant"], "discordant")
            only_a, only_b = (psi - delta) / 2, (psi + delta) / 2
            if not (0 <= only_a <= min(p_a, 1 - p_b) and 0 <= only_b <= min(p_b, 1 - p_a) and psi > 0):
                raise ConfigError(f"discordant={psi:g} is impossible with p_a={p_a:g} and p_b={p_b:g}: "
                                  f"it must lie between {abs(delta):g} and "
                                  f"{min(p_a + p_b, 2 - p_a - p_b):g}")
        else:
            rho = _number(p.get("correlation", 0.0) if p.get("correlation") is not None else 0.0,
                          "correlation")
            spread = math.sqrt(p_a * (1 - p_a) * p_b * (1 - p_b))
            both = p_a * p_b + rho * spread
            low, high = max(0.0, p_a + p_b - 1), min(p_a, p_b)
            if not low - 1e-12 <= both <= high + 1e-12:
                raise ConfigError(f"correlation={rho:g} is impossible with p_a={p_a:g} and p_b={p_b:g}: "
                                  f"it must lie between {(low - p_a * p_b) / spread:.3g} and "
                                  f"{(high - p_a * p_b) / spread:.3g}")
            psi = (p_a - both) + (p_b - both)
            if psi <= 0:
                raise ConfigError("with that correlation the variants never disagree: nothing to test")
            resolved["correlation"] = rho
        resolved.update(discordant=psi, difference=delta)
        what = f"A {_pct(p_a)} vs B {_pct(p_b)}, {_pct(psi)} of rows discordant"
    else:
        if p.get("correlation") is not None:
            raise ConfigError("correlation needs p_a and p_b; with discordant and difference leave it out")
        _require(p, "paired_binary", "discordant", "difference")
        psi = _number(p["discordant"], "discordant")
        if not 0 < psi <= 1:
            raise ConfigError(f"discordant (the share of rows where the variants disagree) must be in "
                              f"(0, 1], got {p['discordant']!r}")
        delta = _nonzero(p["difference"], "difference")
        if abs(delta) > psi:
            raise ConfigError(f"|difference| ({abs(delta):g}) cannot exceed discordant ({psi:g}): the "
                              f"difference is B-only rows minus A-only rows, both shares of all rows")
        resolved = {"discordant": psi, "difference": delta}
        what = f"{_pct(psi)} of rows discordant"
    n, achieved, connor_n = _discordant_plan(psi, delta, alpha, power)
    resolved["connor_n"] = connor_n
    description = (f"{_units(n, 'rows')} to detect a {_pts(delta)} pass-rate difference "
                   f"({what}, paired, exact McNemar) {_tail(alpha, power)}")
    return Plan("paired_binary", n, "rows", alpha, power, achieved, resolved, description)


def _preference(p: Mapping[str, Any], alpha: float, power: float) -> Plan:
    _require(p, "preference", "win_share")
    w = _probability(p["win_share"], "win_share")
    if w == 0.5:
        raise ConfigError("win_share=0.5 is no preference: there is no difference to detect")
    ties = 0.0 if p.get("tie_share") is None else _number(p["tie_share"], "tie_share")
    if not 0 <= ties < 1:
        raise ConfigError(f"tie_share must be in [0, 1), got {p.get('tie_share')!r}")
    decisive = 1 - ties
    # A preference run is the McNemar layout: decisive rows are the discordant ones.
    n, achieved, connor_n = _discordant_plan(decisive, (2 * w - 1) * decisive, alpha, power)
    expected = round(n * decisive)
    tie_text = f", {_pct(ties)} ties" if ties else ""
    decisive_text = f" (about {expected:,} decisive)" if ties else ""
    description = (f"{_units(n, 'rows')}{decisive_text} to detect B winning {_pct(w)} of decisive "
                   f"comparisons (exact sign test{tie_text}) {_tail(alpha, power)}")
    return Plan("preference", n, "rows", alpha, power, achieved,
                {"win_share": w, "tie_share": ties, "expected_decisive": expected, "connor_n": connor_n},
                description)


def _pilot(values: Any) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float).ravel()
    except (TypeError, ValueError):
        raise InvalidInputError("pilot must be a sequence of numbers (per-row differences B - A)") from None
    if np.isinf(arr).any():
        raise InvalidInputError("pilot contains an infinite difference")
    arr = arr[~np.isnan(arr)]
    if arr.size < 2:
        raise InvalidInputError(f"pilot needs at least 2 per-row differences, got {arr.size}")
    return arr


def _paired_continuous(p: Mapping[str, Any], alpha: float, power: float) -> Plan:
    from statsmodels.stats.power import TTestPower

    pilot_n = None
    if p.get("pilot") is not None:
        if p.get("sd") is not None:
            raise ConfigError("give sd or pilot, not both: the pilot's SD is used")
        pilot = _pilot(p["pilot"])
        pilot_n = int(pilot.size)
        sd = float(pilot.std(ddof=1))
        if sd == 0:
            raise InvalidInputError("the pilot's differences are all equal, so their SD is 0: pass sd=")
        if p.get("difference") is not None:
            delta = _nonzero(p["difference"], "difference")
        else:
            delta = float(pilot.mean())
            if delta == 0:
                raise ConfigError("the pilot's mean difference is 0: pass difference= (the smallest "
                                  "difference worth detecting)")
    else:
        _require(p, "paired_continuous", "difference", "sd")
        delta = _nonzero(p["difference"], "difference")
        sd = _positive(p["sd"], "sd")
    effect = abs(delta) / sd
    n_t = _solve(TTestPower(), effect_size=effect, alpha=alpha, power=power, alternative="two-sided")
    # The exact signed-rank test cannot reject on fewer than log2(2/alpha) rows.
    floor = max(2, math.ceil(math.log2(2 / alpha) + 1e-12))
    n = floor if math.isnan(n_t) else max(floor, math.ceil(n_t / WILCOXON_ARE - 1e-9))
    if n > _MAX_N:
        raise ConfigError(f"the difference is too small to detect: it would take about {n:,} rows")
    achieved = float(TTestPower().power(effect_size=effect, nobs=n * WILCOXON_ARE, alpha=alpha,
                                        alternative="two-sided"))
    source = f" from a {pilot_n}-row pilot" if pilot_n else ""
    resolved: dict[str, Any] = {"difference": delta, "sd": sd, "effect_size": effect,
                                "t_test_n": None if math.isnan(n_t) else n_t}
    if pilot_n:
        resolved["pilot_n"] = pilot_n
    description = (f"{_units(n, 'rows')} to detect a mean per-row difference of {_num(delta)} "
                   f"(SD of differences {_num(sd)}{source}, paired, Wilcoxon signed-rank) "
                   f"{_tail(alpha, power)}")
    return Plan("paired_continuous", n, "rows", alpha, power, min(1.0, achieved), resolved, description)


def _unpaired_binary(p: Mapping[str, Any], alpha: float, power: float) -> Plan:
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    _require(p, "unpaired_binary", "p_a", "p_b")
    p_a, p_b = _probability(p["p_a"], "p_a"), _probability(p["p_b"], "p_b")
    if p_a == p_b:
        raise ConfigError("p_a and p_b are equal: there is no difference to detect")
    h = abs(float(proportion_effectsize(p_b, p_a)))
    n_h = _solve(NormalIndPower(), effect_size=h, alpha=alpha, power=power, ratio=1.0,
                 alternative="two-sided")
    h_n = None if math.isnan(n_h) else n_h
    if math.isnan(n_h):
        n_h = 1.0
    # Fisher's exact test is conservative: at the arcsine (Cohen's h) n its power falls 2 to 7
    # points short of the target. Casagrande, Pike & Smith's continuity correction (Biometrics
    # 1978; Fleiss, Tytun & Ury 1980) approximates Fisher's n; the exact search then settles it.
    delta = abs(p_b - p_a)
    n_cc = n_h / 4 * (1 + math.sqrt(1 + 4 / (n_h * delta))) ** 2
    if n_cc > _MAX_N:
        raise ConfigError(f"the difference is too small to detect: it would take about {n_cc:,.0f} "
                          f"per variant")
    start = math.ceil(n_cc - 1e-9)
    n = start
    if start <= _EXACT_FISHER_SEARCH_MAX_N:
        n = _smallest_n(lambda k: _fisher_power(k, p_a, p_b, alpha), start, power, floor=2,
                        lookahead=lambda k: 2)
    achieved = _fisher_power(n, p_a, p_b, alpha) if n <= _EXACT_FISHER_MAX_N else None
    description = (f"{_units(n, 'per variant')} to detect a {_pts(p_b - p_a)} difference in rates "
                   f"({_pct(p_a)} vs {_pct(p_b)}, unpaired, Fisher exact) {_tail(alpha, power)}")
    return Plan("unpaired_binary", n, "per variant", alpha, power, achieved,
                {"p_a": p_a, "p_b": p_b, "difference": p_b - p_a, "effect_size": h, "cohen_h_n": h_n,
                 "continuity_corrected_n": n_cc}, description)


def _unpaired_continuous(p: Mapping[str, Any], alpha: float, power: float) -> Plan:
    from statsmodels.stats.power import TTestIndPower

    _require(p, "unpaired_continuous", "difference", "sd")
    delta = _nonzero(p["difference"], "difference")
    sd = _positive(p["sd"], "sd")
    effect = abs(delta) / sd
    n_t = _solve(TTestIndPower(), effect_size=effect, alpha=alpha, power=power, ratio=1.0,
                 alternative="two-sided")
    n = 2 if math.isnan(n_t) else max(2, math.ceil(n_t - 1e-9))
    if n > _MAX_N:
        raise ConfigError(f"the difference is too small to detect: it would take about {n:,} per variant")
    achieved = float(TTestIndPower().power(effect_size=effect, nobs1=n, alpha=alpha, ratio=1.0,
                                           alternative="two-sided"))
    description = (f"{_units(n, 'per variant')} to detect a difference in means of {_num(delta)} "
                   f"(SD {_num(sd)}, unpaired, Welch t-test) {_tail(alpha, power)}")
    return Plan("unpaired_continuous", n, "per variant", alpha, power, achieved,
                {"difference": delta, "sd": sd, "effect_size": effect,
                 "t_test_n": None if math.isnan(n_t) else n_t}, description)


_PLANNERS: dict[str, Callable[[Mapping[str, Any], float, float], Plan]] = {
    "paired_binary": _paired_binary,
    "paired_continuous": _paired_continuous,
    "unpaired_binary": _unpaired_binary,
    "unpaired_continuous": _unpaired_continuous,
    "preference": _preference,
}


# --------------------------------------------------------------------------- public


def sample_size(design: str, *, alpha: float = 0.05, power: float = 0.8, **parameters: Any) -> Plan:
    """Rows (paired designs, preference) or units per variant (unpaired) needed to detect a
    difference with the two-sided test promptlab runs for ``design`` (see the module docstring).

    ``paired_binary``: ``p_a, p_b`` (pass rates) with optional ``correlation`` between a row's
    two outcomes (default 0, i.e. independent; same-row variants are almost always positively
    correlated, which means fewer discordant rows and fewer rows needed, so 0 is the cautious
    choice) or the share of rows they disagree on as ``discordant``; or ``discordant`` and
    ``difference`` directly. Connor's (1987) formula, then the exact McNemar power.

    ``paired_continuous``: ``difference`` and ``sd`` of the per-row differences, or ``pilot``
    (per-row differences from a pilot run) for the SD and, if ``difference`` is not given, the
    difference (a pilot's difference is noisy: pass the smallest one worth detecting if you
    know it). The paired t-test's n (statsmodels ``TTestPower``) divided by the Wilcoxon test's
    efficiency 3/pi (:data:`WILCOXON_ARE`), which assumes roughly normal differences.

    ``unpaired_binary``: ``p_a, p_b``. statsmodels' ``NormalIndPower`` on Cohen's h, corrected
    for Fisher's conservatism (Casagrande, Pike & Smith 1978), then the exact Fisher power.
    ``unpaired_continuous``: ``difference, sd``; statsmodels' ``TTestIndPower``. ``preference``:
    ``win_share`` (B's share of decisive rows) and ``tie_share`` (default 0); as McNemar with the
    decisive rows as the discordant ones.

    >>> sample_size("preference", win_share=0.6, tie_share=0.3).n
    292
    """
    if not isinstance(design, str) or design not in _PLANNERS:
        raise ConfigError(f"unknown design {design!r}; expected one of {', '.join(DESIGNS)}")
    alpha = _probability(alpha, "alpha")
    power = _probability(power, "power")
    if power <= alpha:
        raise ConfigError(f"power ({power:g}) must exceed alpha ({alpha:g}): a test that rejects at "
                          f"random already has power alpha")
    unknown = sorted(set(parameters) - set(_PARAMETERS[design]))
    if unknown:
        raise ConfigError(f"unexpected parameter{'s' if len(unknown) > 1 else ''} "
                          f"{', '.join(unknown)} for design {design!r}; it takes "
                          f"{', '.join(_PARAMETERS[design])}")
    return _PLANNERS[design](parameters, alpha, power)


def more_rows_needed(design: str, current_rows: int, *, alpha: float = 0.05, power: float = 0.8,
                     **parameters: Any) -> int:
    """How many more rows (per variant, for unpaired designs) than ``current_rows`` the plan needs;
    0 when there are enough. After a pilot, pass its per-row differences as ``pilot=`` (or its
    rates) to learn how many more rows would settle the question.

    >>> more_rows_needed("paired_continuous", 30, difference=0.5, sd=1)
    5
    """
    have = _count(current_rows, "current_rows")
    return max(0, sample_size(design, alpha=alpha, power=power, **parameters).n - have)
