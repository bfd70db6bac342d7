"""The findings' statistics: verdict rule on constructed values, intervals vs direct numpy/scipy,
Kendall tau vs scipy, the within-spread rule on hand-computed cases."""

import math

import numpy as np
import pytest
from scipy import stats

from minima.findings import correlation, reproduced, verdicts


def test_clear_difference_is_supported_and_reverse_contradicted():
    a = [0.95, 0.96, 0.97, 0.955]
    b = [0.90, 0.91, 0.905, 0.90]
    assert verdicts.compare_difference(a, b, "greater", paired=False).verdict == "supported"
    assert verdicts.compare_difference(a, b, "less", paired=False).verdict == "contradicted"
    assert verdicts.compare_difference(b, a, "greater", paired=True).verdict == "contradicted"


def test_overlapping_values_are_inconclusive():
    a = [0.90, 0.95, 0.92]
    b = [0.91, 0.94, 0.93]
    judged = verdicts.compare_difference(a, b, "greater", paired=False)
    assert judged.verdict == "inconclusive"
    assert judged.low < 0 < judged.high


def test_one_seed_is_inconclusive_with_the_reason():
    judged = verdicts.compare_difference([0.99], [0.90], "greater", paired=True)
    assert judged.verdict == "inconclusive"
    assert judged.n == 1
    assert "n = 1" in judged.reason
    assert judged.effect == pytest.approx(0.09)


def test_paired_interval_matches_direct_computation():
    rng = np.random.default_rng(3)
    a = rng.normal(1.0, 0.3, 7)
    b = a - rng.normal(0.2, 0.1, 7)
    judged = verdicts.compare_difference(a, b, "greater", paired=True)
    d = a - b
    half = stats.t.ppf(0.975, 6) * d.std(ddof=1) / np.sqrt(7)
    assert judged.effect == pytest.approx(d.mean(), rel=1e-12)
    assert judged.low == pytest.approx(d.mean() - half, rel=1e-12)
    assert judged.high == pytest.approx(d.mean() + half, rel=1e-12)
    assert judged.p_value == pytest.approx(stats.ttest_rel(a, b).pvalue, rel=1e-12)
    assert judged.method == "paired t over seeds"


def test_welch_interval_matches_scipy():
    a = np.array([1.0, 1.4, 0.9, 1.3, 1.2])
    b = np.array([0.5, 0.9, 0.4])
    judged = verdicts.compare_difference(a, b, "greater", paired=False)
    ci = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert judged.low == pytest.approx(ci.low, rel=1e-10)
    assert judged.high == pytest.approx(ci.high, rel=1e-10)
    assert judged.p_value == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)


def test_bootstrap_matches_a_direct_numpy_loop():
    a = np.array([10.0, 12.0, 11.0, 13.0])
    b = np.array([5.0, 6.0, 5.5, 7.0])
    low, high = verdicts.bootstrap_interval(
        lambda x, y: x.mean() / y.mean(), a, b, paired=True, n_boot=2000, seed=5
    )
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 4, size=(2000, 4))
    ratios = a[idx].mean(axis=1) / b[idx].mean(axis=1)
    assert (low, high) == pytest.approx(tuple(np.percentile(ratios, [2.5, 97.5])), rel=1e-12)
    unpaired = verdicts.bootstrap_interval(
        lambda x, y: x.mean() - y.mean(), a, b, paired=False, n_boot=500, seed=1
    )
    rng = np.random.default_rng(1)
    ia, ib = rng.integers(0, 4, (500, 4)), rng.integers(0, 4, (500, 4))
    diffs = a[ia].mean(axis=1) - b[ib].mean(axis=1)
    assert unpaired == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), rel=1e-12)


def test_ratio_claim_uses_the_threshold():
    slow = [1.30, 1.28, 1.33, 1.31]
    fast = [1.0, 1.01, 0.99, 1.0]
    judged = verdicts.compare_ratio(slow, fast, "greater", threshold=1.0, paired=True)
    assert judged.verdict == "supported"
    assert judged.effect == pytest.approx(np.mean(slow) / np.mean(fast))
    assert verdicts.compare_ratio(slow, fast, "greater", threshold=1.5, paired=True).verdict == (
        "contradicted"
    )


def test_every_value_rule_allows_one_value():
    assert verdicts.compare_every([-0.2, -0.01, -3.0], "less", 0.0).verdict == "supported"
    judged = verdicts.compare_every([-0.2, 0.01], "less", 0.0)
    assert judged.verdict == "contradicted"
    assert judged.reason.startswith("1 of 2")
    single = verdicts.compare_every([-0.5], "less", 0.0)
    assert single.verdict == "supported" and single.n == 1 and "n = 1" in single.reason


def test_combine_orders_pairwise():
    sup, con, inc = verdicts.SUPPORTED, verdicts.CONTRADICTED, verdicts.INCONCLUSIVE
    assert verdicts.combine([sup, sup, sup]) == sup
    assert verdicts.combine([sup, inc, sup]) == inc
    assert verdicts.combine([sup, con, inc]) == con
    assert verdicts.combine([sup, verdicts.NOT_RUN]) == verdicts.NOT_RUN


def test_kendall_matches_scipy_and_bootstrap_loop():
    rng = np.random.default_rng(0)
    x = rng.normal(size=12)
    y = x + rng.normal(scale=0.5, size=12)
    out = correlation.rank_correlation(x, y, n_boot=300, seed=2)
    ref = stats.kendalltau(x, y)
    assert out["tau"] == pytest.approx(ref.statistic, rel=1e-12)
    assert out["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    rng = np.random.default_rng(2)
    taus = []
    for i in rng.integers(0, 12, size=(300, 12)):
        if np.ptp(x[i]) and np.ptp(y[i]):
            taus.append(stats.kendalltau(x[i], y[i]).statistic)
    assert (out["low"], out["high"]) == pytest.approx(tuple(np.percentile(taus, [2.5, 97.5])))
    assert out["n"] == 12


def test_kendall_needs_three_points():
    out = correlation.rank_correlation([1.0, 2.0], [2.0, 1.0])
    assert math.isnan(out["tau"]) and out["n"] == 2


def test_within_spread_hand_computed():
    # E2 SGD-m test: study 93.5 +- 1.35 (n 10); ours 92.0 +- 1.0 (n 2); no test draw term:
    # error = sqrt(1.35^2/10 + 1^2/2) = 0.8263, 2 * error = 1.6526 >= |d| = 1.5: within.
    row = reproduced.compare_reported(92.0, 1.0, 2, 93.5, 1.35, 10)
    assert row["error"] == pytest.approx(math.sqrt(1.35**2 / 10 + 0.5), rel=1e-12)
    assert row["status"] == reproduced.WITHIN
    # with d = 2.0 it is outside
    assert reproduced.compare_reported(91.5, 1.0, 2, 93.5, 1.35, 10)["status"] == reproduced.OUTSIDE


def test_binomial_term_of_drawn_test_sets():
    # p = (0.95 + 0.93) / 2 = 0.94 on 200 images per side: variance 2 * 0.94 * 0.06 / 200.
    row = reproduced.compare_reported(0.95, 0.0, 10, 0.93, 0.0, 10, n_test=200)
    assert row["error"] == pytest.approx(math.sqrt(2 * 0.94 * 0.06 / 200), rel=1e-12)
    assert row["status"] == reproduced.WITHIN  # |d| = 0.02 <= 2 * 0.0237
    assert "binomial" in row["note"]


def test_no_spread_and_stand_in_are_not_judged():
    assert reproduced.compare_reported(0.99, None, 1, 0.9903, None, None)["status"] == (
        reproduced.NO_SPREAD
    )
    row = reproduced.compare_reported(0.5, 0.1, 3, 0.99, None, None, stand_in=True)
    assert row["status"] == reproduced.STAND_IN
    assert "no spread" in row["note"]


def test_ratio_of_reported_delta_method():
    ratio, std = reproduced.ratio_of_reported(14.26, 3.27, 11.30, 1.63)
    assert ratio == pytest.approx(14.26 / 11.30)
    assert std == pytest.approx(ratio * math.sqrt((3.27 / 14.26) ** 2 + (1.63 / 11.30) ** 2))
    assert reproduced.ratio_of_reported(2.0, None, 1.0, None) == (2.0, None)


def test_change_over_one_epoch_has_no_value_and_is_inconclusive():
    import pandas as pd

    from minima.findings.quantities import RunData, metric_values

    one = RunData(metrics=pd.DataFrame({"epoch": [1], "grad_norm": [0.5]}))
    two = RunData(metrics=pd.DataFrame({"epoch": [1, 2], "grad_norm": [0.5, 0.2]}))
    assert metric_values(one, "grad_norm", "change").size == 0
    assert metric_values(two, "grad_norm", "change") == pytest.approx([-0.3])
    judged = verdicts.compare_every([], "less", 0.0)
    assert judged.verdict == "inconclusive" and "single epoch" in judged.reason
