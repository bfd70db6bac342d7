"""E5's quantities beyond the extreme eigenvalues: the quadratic model along the most negative
eigenvector (E5-C1, C2), how the extreme eigenvalues settle while the loss falls (E5-C6),
spikes in their curves (E5-C11), early vs late best decreases (E5-C12) and the subset check
(E5-C10).

Each reads one run's tables of ``rules/hessian.smk`` (collected over the analysed
checkpoints) and returns its values for an ``every`` claim: one per checkpoint, eigenpair or
run, none where the table has nothing to judge (the claim is then inconclusive, "no value").
The study states no thresholds; each claim's statement in config.yaml states the rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from minima.findings.base import Quantity, RunData

WHICH = ("LA", "SA")
Reader = Callable[[RunData, Mapping], np.ndarray]


def _option(spec: Mapping, key: str, default: float) -> float:
    """A numeric option of the claim's quantity entry; absent or null: ``default``."""
    value = spec.get(key)
    return float(default if value is None else value)


def _which(spec: Mapping) -> tuple[str, ...]:
    """The option ``which``: LA, SA or both (default), as a tuple; ValueError otherwise."""
    which = spec.get("which") or WHICH
    which = (which,) if isinstance(which, str) else tuple(which)
    unknown = [w for w in which if w not in WHICH]
    if unknown:
        raise ValueError(f"quantity option which: {unknown} unknown; allowed {list(WHICH)}")
    return which


def _steps(table: pd.DataFrame, spec: Mapping) -> list[int]:
    """Every checkpoint of the table, or (option ``step``) the one nearest it (ties: the
    earlier); none where that one lies more than ``max_offset`` steps away."""
    steps = np.sort(table["step"].unique()).astype(int)
    wanted = spec.get("step")
    if wanted is None or not steps.size:
        return steps.tolist()
    nearest = int(steps[np.argmin(np.abs(steps - wanted))])
    limit = spec.get("max_offset")
    return [] if limit is not None and abs(nearest - wanted) > limit else [nearest]


def _most_negative_line(table: pd.DataFrame, step: int) -> pd.DataFrame | None:
    """The line-search rows of the checkpoint's lowest eigenvalue (None: none is negative)."""
    rows = table[table["step"] == step]
    if rows.empty:
        return None
    lowest = rows.loc[rows["eigenvalue"].idxmin()]
    if not lowest["eigenvalue"] < 0:
        return None
    return rows[(rows["which"] == lowest["which"]) & (rows["index"] == lowest["index"])]


def _model_change(line: pd.DataFrame) -> np.ndarray:
    """L_quadratic(alpha) - L0 = -alpha (g.v)^2 + alpha^2 (g.v)^2 lambda / 2."""
    alpha, gv, lam = (line[c].to_numpy(float) for c in ("alpha", "gv", "eigenvalue"))
    return -alpha * gv**2 + alpha**2 * gv**2 * lam / 2


def _quadratic_error(line: pd.DataFrame, span: float) -> float:
    """max |L - L_quadratic| over 0 < |alpha| <= span, over the model's largest |change|
    there. A non-finite exact loss in the span is an infinite error.

    Why: E5-C1 says the exact loss "follows" the quadratic model for small alpha. Dividing
    by the model's own change makes the error a fraction that means the same at every
    checkpoint, whatever the size of g.v (the displacement is alpha (g.v) v), and does not
    blow up where a single point's change crosses zero.
    """
    near = line[(line["alpha"] != 0) & (line["alpha"].abs() <= span * (1 + 1e-12))]
    if near.empty:
        return math.nan
    exact = near["loss"].to_numpy(float)
    if not np.isfinite(exact).all():
        return math.inf
    error = float(np.max(np.abs(exact - near["loss_quadratic"].to_numpy(float))))
    scale = float(np.max(np.abs(_model_change(near))))
    if scale == 0:
        return 0.0 if error == 0 else math.inf
    return error / scale


def _gap_at_span(line: pd.DataFrame, span: float) -> float:
    """min over alpha = -span, +span of L - L_quadratic (NaN: a side missing). A non-finite
    exact loss (it overflowed) lies above any finite model: +inf.

    Why: along negative curvature the quadratic model is a downward parabola, unbounded
    below; E5-C1 says the exact loss is bounded below instead, so at large steps it must lie
    above the model, on both sides (the worse side is the value).
    """
    ends = line[np.isclose(line["alpha"].abs(), span, rtol=1e-9, atol=0)]
    if not ((ends["alpha"] < 0).any() and (ends["alpha"] > 0).any()):
        return math.nan
    exact = ends["loss"].to_numpy(float)
    exact = np.where(np.isfinite(exact), exact, math.inf)
    return float(np.min(exact - ends["loss_quadratic"].to_numpy(float)))


def _along_most_negative(
    reduce: Callable[[pd.DataFrame, float], float], default_span: float
) -> Reader:
    """A reader of ``reduce(line, span)`` along each checkpoint's most negative eigenvector
    (option ``step``: one checkpoint; NaN where no eigenvalue is negative)."""

    def read(data: RunData, spec: Mapping) -> np.ndarray:
        table = data.table("eigenpairs", "line_search.parquet")
        span = _option(spec, "span", default_span)
        out = []
        for step in _steps(table, spec):
            line = _most_negative_line(table, step)
            out.append(math.nan if line is None else reduce(line, span))
        return np.array(out, float)

    return read


def _extreme(table: pd.DataFrame, which: str) -> pd.Series:
    """Per step (sorted): LA(1), the largest eigenvalue, or SA(1), the smallest."""
    rows = table[table["which"] == which].groupby("step", sort=True)["eigenvalue"]
    return rows.max() if which == "LA" else rows.min()


def _relative_change(data: RunData, spec: Mapping) -> np.ndarray:
    """|lambda_next - lambda| / |lambda| of LA(1) and SA(1) between consecutive checkpoints,
    both at or after step ``after``. Stable curves give small values; a non-finite one
    (a zero or missing eigenvalue) counts as infinite, i.e. not settled.

    Why: E5-C6 says the extreme eigenvalues stabilize after about 2,000 minibatches; a
    relative change is scale-free, so one bound serves LA(1) (~4) and SA(1) (far smaller).
    """
    table = data.table("eigenpairs", "eigenvalues.parquet")
    table = table[table["step"] >= _option(spec, "after", 0)]
    out = []
    for which in _which(spec):
        values = _extreme(table, which).to_numpy(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            change = np.abs(np.diff(values)) / np.abs(values[:-1])
        out.append(np.where(np.isfinite(change), change, math.inf))
    return np.concatenate(out) if out else np.array([])


def _loss_decrease(data: RunData, spec: Mapping) -> np.ndarray:
    """(L - L_next) / L of the loss on the fixed subset between consecutive checkpoints at or
    after step ``after`` (> 0: still falling); a non-finite one (the loss diverged) is
    -inf, i.e. not falling.

    Why: E5-C6's point is that the eigenvalues settle *while the loss is still falling*; the
    loss at the same checkpoints, on the same fixed subset, is the one the Hessian is of.
    """
    table = data.table("eigenpairs", "eigenvalues.parquet")
    table = table[table["step"] >= _option(spec, "after", 0)]
    loss = table.groupby("step", sort=True)["loss"].first().to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        decrease = (loss[:-1] - loss[1:]) / loss[:-1]
    return np.where(np.isfinite(decrease), decrease, -math.inf)


def _spike_count(data: RunData, spec: Mapping) -> np.ndarray:
    """Checkpoints where |LA(1)| (or |SA(1)|) is more than ``factor`` times its value at both
    neighbouring checkpoints, summed over the curves; triples with a non-finite value are
    skipped, and a run with no judged triple (fewer than 3 checkpoints) has no value.

    Why: E5-C11 reports spikes in the CIFAR-10 curves without defining one; a point above
    both neighbours by a stated factor is a spike on the figure's log axis whatever the
    curve's level, and a trend (rising or falling) never counts.
    """
    table = data.table("eigenpairs", "eigenvalues.parquet")
    factor = _option(spec, "factor", 2.0)
    count, judged = 0, False
    for which in _which(spec):
        size = np.abs(_extreme(table, which).to_numpy(float))
        middle, left, right = size[1:-1], size[:-2], size[2:]
        finite = np.isfinite(middle) & np.isfinite(left) & np.isfinite(right)
        judged = judged or bool(finite.any())
        count += int((finite & (middle > factor * left) & (middle > factor * right)).sum())
    return np.array([float(count)]) if judged else np.array([])


def _matched_log_ratio(early: pd.DataFrame, late: pd.DataFrame) -> float:
    """|median over late pairs of log10(late best decrease / best decrease of the early pair
    with the nearest eigenvalue)|."""
    lam_early = early["eigenvalue"].to_numpy(float)
    nearest = np.abs(late["eigenvalue"].to_numpy(float)[:, None] - lam_early[None, :]).argmin(1)
    ratio = late["best_decrease"].to_numpy(float) / early["best_decrease"].to_numpy(float)[nearest]
    return float(abs(np.median(np.log10(ratio))))


def _early_late_decrease(data: RunData, spec: Mapping) -> np.ndarray:
    """Per eigenvalue sign: the early-vs-late gap in best loss decrease at matched eigenvalues
    (``_matched_log_ratio``; 0: the same relation), early = checkpoints at or before
    ``early`` (default: the first), late = at or after ``late`` (default: the last). Pairs
    without a decrease (alpha* = 0, or not finite) are left out; a sign missing from either
    group has no value.

    Why: E5-C12 compares the best decrease *vs lambda* (Fig. 7, coloured by step), so early
    and late points are compared at nearly the same eigenvalue, not pooled; a log ratio
    treats a halving and a doubling alike, and the median ignores a few odd pairs.
    """
    table = data.table("eigenpairs", "line_search_summary.parquet")
    steps = np.sort(table["step"].unique())
    if not steps.size:
        return np.array([])
    first = steps[0] if spec.get("early") is None else spec["early"]
    last = steps[-1] if spec.get("late") is None else spec["late"]
    if first >= last:
        return np.array([])
    usable = table[(table["best_decrease"] > 0) & np.isfinite(table["best_decrease"])]
    out = []
    for sign in (-1.0, 1.0):
        rows = usable[np.sign(usable["eigenvalue"]) == sign]
        early, late = rows[rows["step"] <= first], rows[rows["step"] >= last]
        if len(early) and len(late):
            out.append(_matched_log_ratio(early, late))
    return np.array(out, float)


def _subset_column(column: str, missing: float) -> Reader:
    """A reader of one column of the subset check (option ``which``), per eigenpair; a
    non-finite value (a zero full-set eigenvalue, an angle not computed) is ``missing``.

    Why: E5-C10 says the fixed subset's extreme eigenpairs are "close enough" to the whole
    training split's; the check's relative eigenvalue gaps and principal angles (robust to
    near-equal eigenvalues swapping places) are the two sides of that.
    """

    def read(data: RunData, spec: Mapping) -> np.ndarray:
        table = data.table("eigenpairs", "subset_check.parquet")
        values = table.loc[table["which"].isin(_which(spec)), column].to_numpy(float)
        return np.where(np.isfinite(values), values, missing)

    return read


_CURVE = ("line_search.parquet",)
_EIGENVALUES = ("eigenvalues.parquet",)
_SUBSET = ("subset_check.parquet",)
_AT_STEP = ("step", "max_offset", "span")


def _check_options(spec: Mapping) -> None:
    """ValueError unless ``which`` is LA/SA and every other option is a number or null: the
    values are checked when the workflow starts, not when the findings job reads them."""
    if "which" in spec:
        _which(spec)
    for key, value in spec.items():
        if key in ("name", "at", "which") or value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"quantity option {key}: {value!r} is not a number")


def _quantity(label: str, files: Sequence[str], read: Reader, **kwargs) -> Quantity:
    return Quantity(label, "eigenpairs", tuple(files), read, check=_check_options, **kwargs)


EIGENPAIR_QUANTITIES: dict[str, Quantity] = {
    "quadratic_model_error": _quantity(
        "largest error of the quadratic model for |alpha| <= span, over its largest change "
        "(most negative eigenvector)",
        _CURVE,
        _along_most_negative(_quadratic_error, 0.1),
        per="checkpoint",
        scale=100,
        decimals=1,
        unit="%",
        options=_AT_STEP,
    ),
    "exact_minus_quadratic_at_span": _quantity(
        "exact minus quadratic-model loss at alpha = -span and +span (most negative eigenvector)",
        _CURVE,
        _along_most_negative(_gap_at_span, 1.0),
        per="checkpoint",
        decimals=4,
        options=_AT_STEP,
    ),
    "eigenvalue_relative_change": _quantity(
        "relative change of LA(1) and SA(1) between consecutive checkpoints",
        _EIGENVALUES,
        _relative_change,
        per="checkpoint",
        scale=100,
        decimals=1,
        unit="%",
        options=("after", "which"),
    ),
    "subset_loss_decrease": _quantity(
        "relative decrease of the subset loss between consecutive checkpoints",
        _EIGENVALUES,
        _loss_decrease,
        per="checkpoint",
        scale=100,
        decimals=2,
        unit="%",
        options=("after",),
    ),
    "eigenvalue_spikes": _quantity(
        "checkpoints where |LA(1)| or |SA(1)| exceeds both neighbours by a factor",
        _EIGENVALUES,
        _spike_count,
        decimals=0,
        options=("which", "factor"),
    ),
    "early_late_decrease_log_ratio": _quantity(
        "|median log10 ratio| of late to early best decreases at matched eigenvalues",
        ("line_search_summary.parquet",),
        _early_late_decrease,
        options=("early", "late"),
    ),
    "subset_eigenvalue_gap": _quantity(
        "relative gap between the subset's and the whole split's eigenvalues",
        _SUBSET,
        _subset_column("rel_diff", math.inf),
        per="eigenpair",
        scale=100,
        decimals=1,
        unit="%",
        options=("which",),
    ),
    "subset_principal_angle": _quantity(
        "principal angle between the subset's and the whole split's eigenspaces",
        _SUBSET,
        _subset_column("principal_angle_deg", 90.0),
        per="eigenpair",
        decimals=1,
        unit="deg",
        options=("which",),
    ),
}
