"""Effects, 95% intervals, p-values and the verdict of a claim, from values over seeds.

The decision rule, written once (the paper's methods paragraph quotes ``DECISION_RULE``):

* A comparison "A > B" (or "A < B") of one quantity between two runs: the effect is the mean
  of A minus the mean of B. Runs that share their initial weights seed by seed (same model,
  same seeds, neither initialised from another run or from pretrained weights) are compared
  *paired*: the effect is the mean of the per-seed differences, its 95% interval the paired
  t interval (n - 1 degrees of freedom), its p-value ``scipy.stats.ttest_rel``. Otherwise the
  runs are independent: Welch's t interval (Welch-Satterthwaite degrees of freedom) and
  ``scipy.stats.ttest_ind(equal_var=False)``. p-values are two-sided.
* A ratio A / B (times): the ratio of the means, its 95% interval a percentile bootstrap over
  seeds (paired: seeds resampled together; else each run resampled on its own), 10,000
  resamples from a fixed seed; no p-value.
* Verdict: **supported** when the interval excludes the null value (0 for a difference, the
  threshold for a ratio) on the claimed side; **contradicted** when it excludes it on the other
  side; **inconclusive** otherwise, and always when a run has fewer than ``MIN_N`` = 2 values
  (no spread: the reason says so).
* An ordering claim (A > B > C) is judged pair by pair along the order; it is supported when
  every adjacent pair is, contradicted when any pair is, inconclusive otherwise. A claim about
  several pairs or models combines its parts the same way.
* A claim that a quantity lies on one side of a threshold at every checkpoint / seed / run
  ("every"): supported when every value does, contradicted when any value does not; n is the
  number of values, and n = 1 (one run, one checkpoint) is allowed: it says so.
* A claim that one gain equals another ("SAM helps Adam as much as SGD"): the effect is the
  difference of the two gains, (A1 - B1) - (A2 - B2), paired over seeds where the four runs
  share initial weights (paired t), else Welch's t over the four means. It is an equivalence
  claim with a stated ``margin``: supported when the 95% interval lies inside
  [-margin, margin], contradicted when it lies wholly outside it, inconclusive otherwise. A
  gain claim with a direction (A1 - B1 greater than A2 - B2) is judged as a difference.
* A rank correlation claim: Kendall's tau with a bootstrap interval over runs
  (``minima.findings.correlation``): supported / contradicted as for a difference (0 the
  null value); a claim of *no* link can only be contradicted (interval excluding 0), never
  supported by an interval that happens to contain 0: it is then inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_RUN = (
    "supported",
    "contradicted",
    "inconclusive",
    "not run",
)
VERDICTS = (SUPPORTED, CONTRADICTED, INCONCLUSIVE, NOT_RUN)
MIN_N = 2
LEVEL = 0.95
N_BOOT = 10_000
DECISION_RULE = (
    "A claim comparing two runs is supported when the 95% interval of the effect (difference "
    "of means, paired t over seeds where the runs share initial weights, Welch t otherwise; "
    "ratios: percentile bootstrap over seeds) excludes 0 (for a ratio: its threshold) on the "
    "claimed side, contradicted when it excludes it on the other side, and inconclusive "
    "otherwise or when a run has fewer than 2 seeds. An ordering is judged pair by pair along "
    "the order (supported when every pair is, contradicted when any pair is); a claim that a "
    "value lies beyond a threshold at every checkpoint or seed is supported when every value "
    "does and contradicted when any does not; a claim that two gains are equal is supported "
    "when the 95% interval of their difference lies inside the stated margin and contradicted "
    "when it lies wholly outside it; a rank correlation uses Kendall's tau with a "
    "bootstrap 95% interval over runs, and a claim of no link can be contradicted, never "
    "supported."
)


@dataclass(frozen=True)
class Judgement:
    """One judged comparison: what was estimated, how, and the verdict with its reason."""

    verdict: str
    effect: float = math.nan
    low: float = math.nan
    high: float = math.nan
    p_value: float = math.nan
    n: int = 0
    method: str = ""
    reason: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


def _sign(direction: str) -> int:
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', not {direction!r}")
    return 1 if direction == "greater" else -1


def decide(low: float, high: float, null: float, direction: str) -> str:
    """The verdict of an interval [low, high] for the claim "effect is ``direction`` than null"."""
    sign = _sign(direction)
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if low > null:
        return SUPPORTED if sign > 0 else CONTRADICTED
    if high < null:
        return CONTRADICTED if sign > 0 else SUPPORTED
    return INCONCLUSIVE


def paired_t(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
    """Mean of a - b, its paired-t 95% interval and the two-sided ttest_rel p-value."""
    d = np.asarray(a, float) - np.asarray(b, float)
    n = d.size
    mean = float(d.mean())
    se = float(d.std(ddof=1)) / math.sqrt(n)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * se
    p = float(stats.ttest_rel(a, b).pvalue) if se > 0 else (0.0 if mean != 0 else 1.0)
    return mean, mean - half, mean + half, p


def welch_t(a: Sequence[float], b: Sequence[float]) -> tuple[float, float, float, float]:
    """Difference of means a - b, its Welch 95% interval and the two-sided Welch p-value."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    mean = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        p = 0.0 if mean != 0 else 1.0
        return mean, mean, mean, p
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * se
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return mean, mean - half, mean + half, p


def bootstrap_interval(
    statistic: Callable[[np.ndarray, np.ndarray], float],
    a: Sequence[float],
    b: Sequence[float],
    *,
    paired: bool,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap 95% interval of ``statistic(a, b)`` over seeds.

    Paired: the same resampled seed indices for a and b (the pairs stay together); else a and
    b are resampled independently. Draws come from ``numpy.random.default_rng(seed)``: first
    the indices of a (n_boot x len(a)), then, unpaired only, those of b.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    ia = rng.integers(0, a.size, size=(n_boot, a.size))
    ib = ia if paired else rng.integers(0, b.size, size=(n_boot, b.size))
    values = np.array([statistic(a[i], b[j]) for i, j in zip(ia, ib, strict=True)])
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def _too_few(a: Sequence[float], b: Sequence[float], paired: bool) -> str:
    if paired and len(a) != len(b):
        raise ValueError(f"paired comparison needs equal counts, got {len(a)} and {len(b)}")
    if min(len(a), len(b)) < MIN_N:
        return (
            f"n = {min(len(a), len(b))} per run: no spread over seeds, so no interval "
            f"(the rule needs n >= {MIN_N})"
        )
    return ""


def compare_difference(
    a: Sequence[float], b: Sequence[float], direction: str, *, paired: bool
) -> Judgement:
    """Judge "mean(a) is ``direction`` than mean(b)" (values over seeds of two runs)."""
    reason = _too_few(a, b, paired)
    n = min(len(a), len(b))
    if reason:
        effect = float(np.mean(a) - np.mean(b)) if n else math.nan
        return Judgement(INCONCLUSIVE, effect, n=n, method="", reason=reason)
    mean, low, high, p = (paired_t if paired else welch_t)(a, b)
    method = "paired t over seeds" if paired else "Welch t"
    return Judgement(decide(low, high, 0.0, direction), mean, low, high, p, n, method)


def compare_ratio(
    a: Sequence[float],
    b: Sequence[float],
    direction: str,
    *,
    threshold: float = 1.0,
    paired: bool,
    seed: int = 0,
) -> Judgement:
    """Judge "mean(a) / mean(b) is ``direction`` than ``threshold``" (bootstrap over seeds)."""
    reason = _too_few(a, b, paired)
    n = min(len(a), len(b))
    ratio = float(np.mean(a) / np.mean(b)) if n else math.nan
    if reason:
        return Judgement(INCONCLUSIVE, ratio, n=n, method="", reason=reason)
    low, high = bootstrap_interval(lambda x, y: x.mean() / y.mean(), a, b, paired=paired, seed=seed)
    method = "bootstrap over seeds" + (" (paired)" if paired else "")
    return Judgement(decide(low, high, threshold, direction), ratio, low, high, n=n, method=method)


def compare_every(
    values: Sequence[float], direction: str, threshold: float, *, shown: str | None = None
) -> Judgement:
    """Judge "every value is ``direction`` than ``threshold``"; the range is the interval.

    ``shown``: the threshold as the tables show it (scaled units), used in the reason.
    """
    v = np.asarray(values, float)
    v = v[~np.isnan(v)]  # +-inf stays: a diverged sweep point's loss is beyond any threshold
    if v.size == 0:
        return Judgement(INCONCLUSIVE, reason="no value (e.g. a change over a single epoch)")
    sign = _sign(direction)
    beyond = sign * (v - threshold) > 0
    verdict = SUPPORTED if beyond.all() else CONTRADICTED
    reason = f"{int(beyond.sum())} of {v.size} values {direction} than {shown or f'{threshold:g}'}"
    if v.size == 1:
        reason += " (n = 1: a single value)"
    worst = float(v.min() if sign > 0 else v.max())
    return Judgement(
        verdict,
        worst,
        float(v.min()),
        float(v.max()),
        n=int(v.size),
        method="every value",
        reason=reason,
    )


def _welch_sum(groups: Sequence[np.ndarray], signs: Sequence[int]) -> tuple[float, float, float]:
    """Sum of signed means, its Welch 95% half-width and two-sided p (Welch-Satterthwaite df)."""
    means = [float(g.mean()) for g in groups]
    variances = [float(g.var(ddof=1)) / g.size for g in groups]
    effect = float(sum(s * m for s, m in zip(signs, means, strict=True)))
    se2 = sum(variances)
    if se2 == 0:
        return effect, 0.0, 0.0 if effect != 0 else 1.0
    df = se2**2 / sum(v**2 / (g.size - 1) for v, g in zip(variances, groups, strict=True))
    se = math.sqrt(se2)
    half = float(stats.t.ppf(0.5 + LEVEL / 2, df)) * se
    return effect, half, float(2 * stats.t.sf(abs(effect) / se, df))


def decide_equal(low: float, high: float, margin: float) -> str:
    """Equivalence: inside [-margin, margin] supported, wholly outside it contradicted."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return INCONCLUSIVE
    if -margin <= low and high <= margin:
        return SUPPORTED
    if low > margin or high < -margin:
        return CONTRADICTED
    return INCONCLUSIVE


def compare_gain(
    a1: Sequence[float],
    b1: Sequence[float],
    a2: Sequence[float],
    b2: Sequence[float],
    direction: str,
    *,
    margin: float = 0.0,
    paired: bool,
) -> Judgement:
    """Judge the gain a1 - b1 against the gain a2 - b2 (``direction``: equal within
    ``margin``, greater or less). Paired: the four lists are values of the same seeds."""
    groups = [np.asarray(x, float) for x in (a1, b1, a2, b2)]
    n = min(g.size for g in groups)
    if n < MIN_N:
        effect = (
            float(groups[0].mean() - groups[1].mean() - groups[2].mean() + groups[3].mean())
            if n
            else math.nan
        )
        return Judgement(
            INCONCLUSIVE,
            effect,
            n=n,
            reason=f"n = {n} per run: no spread over seeds, so no interval "
            f"(the rule needs n >= {MIN_N})",
        )
    if paired:
        if len({g.size for g in groups}) != 1:
            raise ValueError(f"paired gains need equal counts, got {[g.size for g in groups]}")
        gain = (groups[0] - groups[1]) - (groups[2] - groups[3])
        mean, low, high, p = paired_t(gain, np.zeros_like(gain))
        method = "paired t over seeds (difference of gains)"
    else:
        mean, half, p = _welch_sum(groups, (1, -1, -1, 1))
        low, high = mean - half, mean + half
        method = "Welch t over four runs (difference of gains)"
    if direction == "equal":
        verdict = decide_equal(low, high, margin)
    else:
        verdict = decide(low, high, 0.0, direction)
    return Judgement(verdict, mean, low, high, p, n, method)


def combine(parts: Sequence[str]) -> str:
    """One verdict from the verdicts of a claim's parts (pairs along an order, models)."""
    if not parts:
        return INCONCLUSIVE
    if any(p == NOT_RUN for p in parts):
        return NOT_RUN
    if any(p == CONTRADICTED for p in parts):
        return CONTRADICTED
    if all(p == SUPPORTED for p in parts):
        return SUPPORTED
    return INCONCLUSIVE
