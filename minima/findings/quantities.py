"""What a claim can be about: a registry of quantities, each read from one run's tables.

A quantity is a column of ``metrics.parquet`` (at the final epoch by default) or a number
derived from an analysis table that another stage wrote (``results/analysis/<kind>/...``).
Each returns the values of one run: one value for a per-run quantity, one per checkpoint or
eigenpair for the others, so "every checkpoint" claims read the same way as per-seed ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from minima.findings.base import Quantity, RunData
from minima.findings.eigenpair_quantities import EIGENPAIR_QUANTITIES
from minima.findings.table_quantities import TABLE_QUANTITIES
from minima.report.metrics import EPOCH_METRICS

# Evaluation-pass train columns (model in eval mode after the epoch); where absent, the
# running train accuracy of the epoch stands in, and the output says so.
TRAIN_EVAL_ACC = "train_eval_acc"
EXTRA_METRIC_COLUMNS = ("train_eval_acc", "train_eval_loss")
METRIC_AT = ("final", "all", "change")


def _final(frame: pd.DataFrame) -> pd.Series:
    return frame.sort_values("epoch").iloc[-1]


def metric_values(data: RunData, column: str, at: str = "final") -> np.ndarray:
    """A metrics column at the final epoch, at every epoch, or its final-minus-first change."""
    frame = data.metrics.sort_values("epoch")
    values = frame[column].to_numpy(float)
    if at == "final":
        return values[-1:]
    if at == "all":
        return values
    if at == "change":  # undefined over a single epoch: no value
        return values[-1:] - values[:1] if values.size > 1 else np.array([])
    raise ValueError(f"at must be one of {METRIC_AT}, not {at!r}")


def train_acc_column(metrics: pd.DataFrame) -> str:
    """The evaluation-pass train accuracy where recorded, else the running train accuracy."""
    if TRAIN_EVAL_ACC in metrics.columns and metrics[TRAIN_EVAL_ACC].notna().any():
        return TRAIN_EVAL_ACC
    return "train_acc"


def _gen_gap(data: RunData, _: Mapping) -> np.ndarray:
    row = _final(data.metrics)
    return np.array([row[train_acc_column(data.metrics)] - row["test_acc"]], float)


def _test_error(data: RunData, _: Mapping) -> np.ndarray:
    return np.array([1.0 - _final(data.metrics)["test_acc"]], float)


def _seconds_per_step(data: RunData, _: Mapping) -> np.ndarray:
    row = _final(data.metrics)
    return np.array([row["train_seconds"] / row["step"] if row["step"] > 0 else math.nan])


def _conv_over_linear(data: RunData, _: Mapping) -> np.ndarray:
    frame = data.metrics
    return (frame["first_conv_grad_spectral"] / frame["last_linear_grad_spectral"]).to_numpy(float)


def _epochs_to(data: RunData, spec: Mapping) -> np.ndarray:
    """The first epoch whose ``column`` (an accuracy) reaches ``target``; a run that never
    reaches it counts as its last epoch + 1 (censored, so it ranks last, not missing)."""
    frame = data.metrics.sort_values("epoch")
    reached = frame[frame[spec.get("column", "val_acc")] >= spec["target"]]
    last = float(frame["epoch"].iloc[-1])
    return np.array([float(reached["epoch"].iloc[0]) if len(reached) else last + 1])


def _plateau_epoch(data: RunData, spec: Mapping) -> np.ndarray:
    """The first epoch from which ``column`` (a loss) stays within ``1 - share`` of its whole
    decrease from the first epoch to the last (share 0.95: 95% of the fall is done)."""
    frame = data.metrics.sort_values("epoch")
    loss = frame[spec.get("column", "train_loss")].to_numpy(float)
    epochs = frame["epoch"].to_numpy(float)
    if loss.size < 2 or not np.isfinite(loss).all():
        return np.array([])
    bound = loss[-1] + (1 - spec.get("share", 0.95)) * (loss[0] - loss[-1])
    above = np.nonzero(loss > bound)[0]
    if not above.size:
        return epochs[:1]
    if above[-1] == loss.size - 1:  # still above at the end (the loss rose): never settled
        return np.array([epochs[-1] + 1])
    return np.array([epochs[above[-1] + 1]])


def _loss_increases(data: RunData, spec: Mapping) -> np.ndarray:
    """How many epochs ``column`` rose over the previous epoch by more than ``tolerance``
    (relative), i.e. times the loss was not strictly decreasing."""
    loss = data.metrics.sort_values("epoch")[spec.get("column", "train_loss")].to_numpy(float)
    rises = loss[1:] > loss[:-1] * (1 + spec.get("tolerance", 0.0))
    return np.array([float(rises.sum())])


def _top_eigenvalue(data: RunData, _: Mapping) -> np.ndarray:
    table = data.table("spectrum", "eigenvalues.parquet")
    if table.empty:
        return np.array([math.nan])
    return np.array([float(table.sort_values("index")["eigenvalue"].iloc[0])])


def _trace(data: RunData, _: Mapping) -> np.ndarray:
    table = data.table("spectrum", "trace.parquet")
    return np.array([float(table["sample"].mean()) if len(table) else math.nan])


def _landscape_rise(data: RunData, _: Mapping) -> np.ndarray:
    """Mean loss at both ends of the line along the top eigenvector minus the centre's."""
    table = data.table("landscape", "landscape.parquet")
    line = table[(table["directions"] == "eigen") & (table["slice"] == "d1")]
    if line.empty:
        return np.array([math.nan])
    alpha = line["alpha"].to_numpy(float)
    loss = line["loss"].to_numpy(float)
    ends = np.isclose(np.abs(alpha), np.abs(alpha).max())
    centre = loss[np.argmin(np.abs(alpha))]
    return np.array([float(loss[ends].mean() - centre)])


def _plane_drop(data: RunData, _: Mapping) -> np.ndarray:
    """Loss at the centre of the (gradient, top eigenvector) plane minus its lowest loss."""
    table = data.table("landscape", "landscape.parquet")
    plane = table[(table["directions"] == "gradient_eigen") & (table["slice"] == "plane")]
    if plane.empty:
        return np.array([math.nan])
    radius = np.hypot(plane["alpha"].to_numpy(float), plane["beta"].to_numpy(float))
    loss = plane["loss"].to_numpy(float)
    return np.array([float(loss[np.argmin(radius)] - np.nanmin(loss))])


def _sharpness(column: str) -> Callable[[RunData, Mapping], np.ndarray]:
    def read(data: RunData, _: Mapping) -> np.ndarray:
        table = data.table("sharpness", "sharpness.parquet")
        if table.empty:
            return np.array([math.nan])
        return np.array([float(table.sort_values("rho")[column].iloc[0])])

    return read


def _per_step(which: str, reduce: Callable[[pd.Series], float]):
    def read(data: RunData, _: Mapping) -> np.ndarray:
        table = data.table("eigenpairs", "eigenvalues.parquet")
        chosen = table[table["which"] == which]
        return chosen.groupby("step", sort=True)["eigenvalue"].agg(reduce).to_numpy(float)

    return read


def _la_over_sa(data: RunData, _: Mapping) -> np.ndarray:
    table = data.table("eigenpairs", "eigenvalues.parquet")
    la = table[table["which"] == "LA"].groupby("step")["eigenvalue"].max()
    sa = table[table["which"] == "SA"].groupby("step")["eigenvalue"].min().abs()
    return (la / sa).dropna().to_numpy(float)


def _final_la_max(data: RunData, _: Mapping) -> np.ndarray:
    table = data.table("eigenpairs", "eigenvalues.parquet")
    la = table[table["which"] == "LA"]
    last = la[la["step"] == la["step"].max()]
    return np.array([float(last["eigenvalue"].max()) if len(last) else math.nan])


def _negative_step_excess(data: RunData, _: Mapping) -> np.ndarray:
    """|lambda| - 1/alpha* over every negative-eigenvalue line search (> 0: longer steps than
    the quadratic model's 1/|lambda|)."""
    table = data.table("eigenpairs", "line_search_summary.parquet")
    negative = table[table["eigenvalue"] < 0]
    return (negative["eigenvalue"].abs() - 1.0 / negative["alpha_star"].abs()).to_numpy(float)


def _negative_minus_positive_decrease(data: RunData, _: Mapping) -> np.ndarray:
    """Per checkpoint: mean best loss decrease along negative-curvature eigenvectors minus
    the mean along positive ones (> 0: negative curvature pays more); a checkpoint lacking
    either sign has no value."""
    table = data.table("eigenpairs", "line_search_summary.parquet")
    out = []
    for _, rows in table.groupby("step", sort=True):
        negative = rows.loc[rows["eigenvalue"] < 0, "best_decrease"]
        positive = rows.loc[rows["eigenvalue"] > 0, "best_decrease"]
        if len(negative) and len(positive):
            out.append(float(negative.mean() - positive.mean()))
    return np.array(out)


def _inverse_step_log_ratio(data: RunData, _: Mapping) -> np.ndarray:
    """|log10((1/|alpha*|) / lambda)| per positive eigenpair whose alpha* the search did not
    bound (0: 1/alpha* equals lambda, as the quadratic model says)."""
    table = data.table("eigenpairs", "line_search_summary.parquet")
    rows = table[(table["eigenvalue"] > 0) & ~table["bounded"].astype(bool)]
    rows = rows[rows["alpha_star"].abs() > 0]
    inverse = 1.0 / rows["alpha_star"].abs().to_numpy(float)
    return np.abs(np.log10(inverse / rows["eigenvalue"].to_numpy(float)))


QUANTITIES: dict[str, Quantity] = {
    "seconds_per_step": Quantity(
        "training time per iteration",
        None,
        (),
        _seconds_per_step,
        scale=1000,
        decimals=1,
        unit="ms",
    ),
    "gen_gap": Quantity(
        "generalization gap (train - test accuracy)",
        None,
        (),
        _gen_gap,
        scale=100,
        decimals=2,
        unit="pp",
    ),
    "test_error": Quantity("test error", None, (), _test_error, scale=100, decimals=2, unit="%"),
    "conv_over_linear_spectral": Quantity(
        "first-conv / last-linear gradient spectral norm", None, (), _conv_over_linear, per="epoch"
    ),
    "epochs_to": Quantity(
        "epochs to reach the target accuracy",
        None,
        (),
        _epochs_to,
        decimals=1,
        options=("column", "target"),
    ),
    "plateau_epoch": Quantity(
        "epoch from which the loss has made 95% of its fall",
        None,
        (),
        _plateau_epoch,
        decimals=1,
        options=("column", "share"),
    ),
    "loss_increases": Quantity(
        "epochs whose loss rose over the previous epoch's",
        None,
        (),
        _loss_increases,
        decimals=1,
        options=("column", "tolerance"),
    ),
    "top_eigenvalue": Quantity(
        "top Hessian eigenvalue", "spectrum", ("eigenvalues.parquet",), _top_eigenvalue
    ),
    "trace": Quantity("Hessian trace", "spectrum", ("trace.parquet",), _trace, decimals=1),
    "landscape_rise": Quantity(
        "loss rise at the span's ends along the top eigenvector",
        "landscape",
        ("landscape.parquet",),
        _landscape_rise,
    ),
    "plane_drop": Quantity(
        "centre loss minus the lowest loss of the (gradient, eigenvector) plane",
        "landscape",
        ("landscape.parquet",),
        _plane_drop,
        decimals=4,
    ),
    "sharpness_first_order": Quantity(
        "rho||g|| at the final model",
        "sharpness",
        ("sharpness.parquet",),
        _sharpness("first_order"),
        decimals=4,
    ),
    "sharpness_ascent": Quantity(
        "projected-ascent sharpness",
        "sharpness",
        ("sharpness.parquet",),
        _sharpness("ascent"),
        decimals=4,
    ),
    "sa_min": Quantity(
        "smallest Hessian eigenvalue",
        "eigenpairs",
        ("eigenvalues.parquet",),
        _per_step("SA", "min"),
        per="checkpoint",
        decimals=4,
    ),
    "la_over_sa": Quantity(
        "|largest| / |smallest| eigenvalue",
        "eigenpairs",
        ("eigenvalues.parquet",),
        _la_over_sa,
        per="checkpoint",
        decimals=1,
    ),
    "final_la_max": Quantity(
        "largest eigenvalue at the last checkpoint",
        "eigenpairs",
        ("eigenvalues.parquet",),
        _final_la_max,
        decimals=2,
    ),
    "negative_minus_positive_decrease": Quantity(
        "best loss decrease, negative minus positive curvature directions",
        "eigenpairs",
        ("line_search_summary.parquet",),
        _negative_minus_positive_decrease,
        per="checkpoint",
        decimals=4,
    ),
    "inverse_step_log_ratio": Quantity(
        "|log10((1/alpha*) / lambda)| along positive eigenvectors",
        "eigenpairs",
        ("line_search_summary.parquet",),
        _inverse_step_log_ratio,
        per="eigenpair",
    ),
    "negative_step_excess": Quantity(
        "|lambda| - 1/alpha* along negative eigenvectors",
        "eigenpairs",
        ("line_search_summary.parquet",),
        _negative_step_excess,
        per="eigenpair",
    ),
}
QUANTITIES.update(EIGENPAIR_QUANTITIES)  # E5's line searches, settling, spikes, subset check

# Curvature measures correlated with generalization, where the experiment computes them.
CURVATURE_MEASURES = (
    "top_eigenvalue",
    "trace",
    "sharpness_first_order",
    "sharpness_ascent",
    "landscape_rise",
    "sam_sharpness",
)
GENERALIZATION = ("test_error", "gen_gap")


def metric_columns() -> set[str]:
    """Columns of metrics.parquet a claim may name."""
    return set(EPOCH_METRICS) | set(EXTRA_METRIC_COLUMNS)


def is_known(name: str) -> bool:
    return name in QUANTITIES or name in TABLE_QUANTITIES or name in metric_columns()


def is_table_quantity(name: str) -> bool:
    """Read once per experiment from shared tables (sweep, similarity), not per run."""
    return name in TABLE_QUANTITIES


def options_of(name: str) -> tuple[str, ...]:
    """The keys a claim's quantity entry may hold besides ``name`` (and ``at``)."""
    if name in TABLE_QUANTITIES:
        return TABLE_QUANTITIES[name].options
    if name in QUANTITIES:
        return QUANTITIES[name].options
    return ("at",)


def check_options(name: str, spec: Mapping) -> None:
    """ValueError where a claim's option values for quantity ``name`` are not allowed, so a
    bad value stops the workflow at start-up instead of failing the findings job."""
    quantity = QUANTITIES.get(name)
    if quantity is not None and quantity.check is not None:
        quantity.check(spec)


def analysis_of(name: str) -> str | None:
    """The analysis a quantity is read from (None: the metrics table)."""
    return QUANTITIES[name].analysis if name in QUANTITIES else None


def read(name: str, data: RunData, spec: Mapping) -> np.ndarray:
    """The values of quantity ``name`` for one run (``spec``: the claim's quantity entry)."""
    if name in QUANTITIES:
        return np.asarray(QUANTITIES[name].read(data, spec), float)
    return metric_values(data, name, spec.get("at", "final"))


def label(name: str) -> str:
    if name in QUANTITIES:
        return QUANTITIES[name].label
    if name in TABLE_QUANTITIES:
        return TABLE_QUANTITIES[name].label
    if name in EPOCH_METRICS:
        return EPOCH_METRICS[name].label
    return name.replace("_", " ")


def display(name: str) -> tuple[float, int, str]:
    """(scale, decimals, unit) of a quantity in tables and prose."""
    if name in QUANTITIES:
        q = QUANTITIES[name]
        return q.scale, q.decimals, q.unit
    if name in TABLE_QUANTITIES:
        return 1.0, TABLE_QUANTITIES[name].decimals, ""
    if name in EPOCH_METRICS:
        m = EPOCH_METRICS[name]
        return m.scale, m.decimals, m.unit if m.unit != "cross-entropy" else ""
    return 1.0, 3, ""
