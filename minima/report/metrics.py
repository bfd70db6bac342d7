"""What each recorded quantity is called, in which unit it is shown, and how it is rounded.

One registry, read by the figures (axis labels) and the tables (headers and number format), so
a quantity is named and rounded the same way everywhere in the paper. The names are the columns
of a run's ``metrics.parquet`` (see ``minima.train.loop``) plus the per-run quantities that
``minima.report.aggregate.run_summaries`` derives from them and from ``final.json``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """How one quantity is shown.

    Attributes:
        label: what it is, in words (axis labels, table headers).
        unit: the unit it is shown in ("" for none); appended as "label (unit)".
        scale: factor from the stored value to the shown one (0.97 -> 97 %).
        decimals: decimal places of table entries (mean and std alike).
        symbol: a short name for legends and table headers (plain text; may hold Greek
            letters and the norm bars, which ``minima.report.latex.escape`` translates).
    """

    label: str
    unit: str = ""
    scale: float = 1.0
    decimals: int = 3
    symbol: str = ""

    def header(self) -> str:
        """ "Symbol (unit)" with a capital first letter: a table column's header."""
        text = self.symbol or self.label
        text = text[:1].upper() + text[1:]
        return f"{text} ({self.unit})" if self.unit else text

    def axis_label(self) -> str:
        """ "label (unit)", or the label alone when it has no unit."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


def _acc(split: str, short: str) -> Metric:
    return Metric(f"{split} accuracy", "%", 100.0, 2, f"{short} acc.")


def _loss(split: str, short: str) -> Metric:
    return Metric(f"{split} loss", "cross-entropy", 1.0, 4, f"{short} loss")


# Columns of metrics.parquet, one row per epoch. ``train_loss``/``train_acc`` are running means
# over the epoch's batches in train mode (weights changing, batch statistics); the
# ``train_eval_*`` columns come from an evaluation pass in eval mode after the epoch, on the
# footing of the validation and test columns: what a final training accuracy should report.
EPOCH_METRICS: dict[str, Metric] = {
    "train_loss": _loss("training", "train"),
    "train_acc": _acc("training", "train"),
    "train_eval_loss": Metric(
        "eval-mode training loss", "cross-entropy", 1.0, 4, "train loss, eval"
    ),
    "train_eval_acc": Metric("eval-mode training accuracy", "%", 100.0, 2, "train acc., eval"),
    "val_loss": _loss("validation", "val."),
    "val_acc": _acc("validation", "val."),
    "test_loss": _loss("test", "test"),
    "test_acc": _acc("test", "test"),
    "epoch_seconds": Metric("epoch time", "s", 1.0, 1, "epoch time"),
    "train_seconds": Metric("training time", "s", 1.0, 1, "training time"),
    "images_per_second": Metric("throughput", "images/s", 1.0, 0, "throughput"),
    # the epoch's mean of the minibatch gradient norms (full_grad_norm: the full gradient's)
    "grad_norm": Metric("gradient norm \u2016g\u2016", "", 1.0, 3, "\u2016g\u2016"),
    "first_conv_grad_spectral": Metric(
        "spectral norm of the first-conv gradient", "", 1.0, 3, "first conv"
    ),
    "last_linear_grad_spectral": Metric(
        "spectral norm of the last-linear gradient", "", 1.0, 3, "last linear"
    ),
    "sam_sharpness": Metric("sharpness \u03c1\u2016g\u2016", "", 1.0, 4, "\u03c1\u2016g\u2016"),
    "full_grad_norm": Metric(
        "full-batch gradient norm \u2016g\u2016", "", 1.0, 3, "full \u2016g\u2016"
    ),
    "lr": Metric("learning rate", "", 1.0, 5, "lr"),
}

# Columns of steps.parquet, one row every ``training.step_stats_every`` steps (besides
# grad_norm and sam_sharpness, there of the step's minibatch).
STEP_METRICS: dict[str, Metric] = {
    "grad_norm": Metric("minibatch gradient norm \u2016g\u2016", "", 1.0, 3, "\u2016g\u2016"),
    "sam_sharpness": Metric(
        "minibatch sharpness \u03c1\u2016g\u2016", "", 1.0, 4, "\u03c1\u2016g\u2016"
    ),
    "batch_loss": _loss("minibatch", "batch"),
}

# Per-run quantities (one value per run, from the last epoch and final.json).
RUN_METRICS: dict[str, Metric] = {
    "seconds_per_step": Metric("time per iteration", "ms", 1000.0, 1, "time/iter."),
    "steps": Metric("iterations", "", 1.0, 0, "iterations"),
    "epochs_run": Metric("epochs", "", 1.0, 0, "epochs"),
    "best_val_acc": Metric("best validation accuracy", "%", 100.0, 2, "best val. acc."),
}

METRICS: dict[str, Metric] = {**EPOCH_METRICS, **RUN_METRICS}


def metric(name: str) -> Metric:
    """The registry entry of ``name``; a KeyError lists the known names."""
    try:
        return METRICS[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; known: {sorted(METRICS)}") from None
