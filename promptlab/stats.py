"""``pl.stats``: the statistics behind promptlab's verdicts, for planning and for your own data.

>>> import promptlab as pl
>>> pl.stats.sample_size("paired_binary", p_a=0.3, p_b=0.4).n     # rows, exact McNemar, 80% power
377
>>> pl.stats.format_p(0.04996)
'p=0.04996'

Planning (``sample_size``, ``more_rows_needed``), the paired and unpaired tests promptlab runs
(``mcnemar_test``, ``wilcoxon_test``, ``sign_test``, ``fisher_test``, ``welch_test``,
``mann_whitney_test``, ``paired_bootstrap_interval``, ``wilson_interval``,
``rate_difference_interval``), families (``holm``), online experiments read at any time
(``always_valid_proportions``, ``sample_ratio_mismatch``) and rankings of several variants from
pairwise preferences (``bradley_terry``).
"""

from __future__ import annotations

from .experiments.planning import DESIGNS, Plan, more_rows_needed, sample_size
from .experiments.ranking import Ranking, bradley_terry, leaderboard_figure
from .experiments.sequential import SequentialResult, SrmResult, always_valid_proportions, sample_ratio_mismatch
from .experiments.stats import (
    Interval,
    TestResult,
    bootstrap_mean_interval,
    bootstrap_mean_intervals,
    fisher_test,
    format_p,
    holm,
    mann_whitney_test,
    mcnemar_test,
    paired_bootstrap_interval,
    rate_difference_interval,
    sign_test,
    welch_test,
    wilcoxon_test,
    wilson_interval,
)

__all__ = ["sample_size", "more_rows_needed", "Plan", "DESIGNS", "bradley_terry", "Ranking", "leaderboard_figure",
           "always_valid_proportions", "sample_ratio_mismatch", "SequentialResult", "SrmResult", "Interval",
           "TestResult", "bootstrap_mean_interval", "bootstrap_mean_intervals", "fisher_test", "format_p", "holm",
           "mann_whitney_test", "mcnemar_test", "paired_bootstrap_interval", "rate_difference_interval",
           "sign_test", "welch_test", "wilcoxon_test", "wilson_interval"]
