"""Does curvature predict generalization? Kendall's tau across trained models.

The method of Jiang et al. (2020, "Fantastic generalization measures and where to find
them"): rank-correlate a measure with generalization across many trained networks. Here the
networks are an experiment's completed runs (optimizers x seeds x models), one point each.
Kendall's tau (``scipy.stats.kendalltau``, tau-b: ties allowed) with a percentile bootstrap
95% interval over runs (runs resampled with replacement, 10,000 resamples, fixed seed).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

from minima.findings.verdicts import LEVEL, N_BOOT

MIN_RUNS = 3


def kendall(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Kendall's tau-b of x and y and its two-sided p-value (scipy.stats.kendalltau)."""
    result = stats.kendalltau(np.asarray(x, float), np.asarray(y, float))
    return float(result.statistic), float(result.pvalue)


def kendall_bootstrap(
    x: Sequence[float], y: Sequence[float], *, n_boot: int = N_BOOT, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of Kendall's tau over points (pairs kept together).

    Resamples in which every x or every y is tied have no tau and are left out.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))
    taus = []
    for i in idx:
        xi, yi = x[i], y[i]
        if np.ptp(xi) == 0 or np.ptp(yi) == 0:
            continue
        taus.append(stats.kendalltau(xi, yi).statistic)
    if not taus:
        return math.nan, math.nan
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(taus, [tail, 100 - tail])
    return float(low), float(high)


def rank_correlation(
    x: Sequence[float], y: Sequence[float], *, n_boot: int = N_BOOT, seed: int = 0
) -> dict[str, float]:
    """tau, its p-value, bootstrap interval and n over the finite (x, y) pairs.

    Fewer than ``MIN_RUNS`` points (or a constant x or y) give NaN: no ranking to speak of.
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    out = {"tau": math.nan, "p_value": math.nan, "low": math.nan, "high": math.nan, "n": x.size}
    if x.size < MIN_RUNS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return out
    out["tau"], out["p_value"] = kendall(x, y)
    out["low"], out["high"] = kendall_bootstrap(x, y, n_boot=n_boot, seed=seed)
    return out
