"""LaTeX tables (booktabs) of the training runs: mean +- std over seeds, formatted one way.

Every number goes through :func:`format_mean_std` with the decimals and scale of its quantity
(``minima.report.metrics``), so 97.12 +- 0.31 % looks the same in every table. A cell whose
group had diverged runs carries a dagger and the table a note saying how many. Each table is
returned with the tidy numbers behind it, written next to the ``.tex`` as CSV, so the figures
in the PDF can always be checked against the run tables.

Kinds (config ``experiments.<exp>.tables.<name>.kind``):

- ``summary``: a row per (model, run), a column per quantity (E2 accuracies and training time,
  E3 test accuracy and time per iteration, E3 normalization study).
- ``by_model``: one quantity, a row per run and a column per model (E4's SGD/SGD+SAM/Adam/
  Adam+SAM x ResNet18/VGG16 table).
- ``hyperparameters``: each run's optimizer settings as run, batch size, epochs, and chosen
  quantities (E1's table of hyper-parameters and test accuracy).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from minima.report import style
from minima.report.aggregate import final_key, seed_stats
from minima.report.figures import Look
from minima.report.files import write_text
from minima.report.latex import escape, tabular
from minima.report.metrics import metric

DAGGER = r"^{\dagger}"


@dataclass
class Table:
    """A table's LaTeX (a ``tabular``) and the tidy numbers in it."""

    tex: str
    numbers: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def format_number(value: float, decimals: int) -> str:
    """``value`` rounded to ``decimals`` places (``--`` for a missing value)."""
    if value is None or not math.isfinite(value):
        return "--"
    return f"{value:.{decimals}f}"


def format_mean_std(
    mean: float,
    std: float,
    n: int,
    *,
    decimals: int,
    scale: float = 1.0,
    n_runs: int | None = None,
) -> str:
    """One table cell in math mode: ``$m \\pm s$`` over n > 1 seeds, ``$m$`` for one seed.

    Mean and std share ``decimals`` places after scaling by ``scale`` (accuracy 0.9712 ->
    97.12). ``n_runs > n`` (some seeds diverged) adds a dagger; no completed seed gives ``--``.
    """
    if n == 0 or not math.isfinite(mean):
        return "--"
    text = format_number(mean * scale, decimals)
    if n > 1 and math.isfinite(std):
        text += r" \pm " + format_number(std * scale, decimals)
    if n_runs is not None and n_runs > n:
        text += DAGGER
    return f"${text}$"


def _cell(stat: Mapping[str, Any]) -> str:
    info = metric(stat["metric"])
    return format_mean_std(
        stat["mean"],
        stat["std"],
        int(stat["n"]),
        decimals=info.decimals,
        scale=info.scale,
        n_runs=int(stat["n_runs"]),
    )


def _diverged_note(stats: pd.DataFrame) -> list[str]:
    lost = stats.drop_duplicates(["model", "run"])
    lost = lost[lost["n_runs"] > lost["n"]]
    if lost.empty:
        return []
    parts = [
        f"{int(r.n_runs - r.n)} of {int(r.n_runs)} seeds of {escape(r.run)} ({escape(r.model)})"
        for r in lost.itertuples()
    ]
    return [rf"$\dagger$ diverged, left out of the mean: {', '.join(parts)}."]


def _order(summaries: pd.DataFrame, column: str, order: Sequence[str] | None) -> list[str]:
    present = list(dict.fromkeys(summaries[column]))
    return [v for v in order if v in present] if order else present


def _header(name: str) -> str:
    return escape(metric(name).header())


def summary_table(
    summaries: pd.DataFrame,
    metrics: Sequence[str],
    *,
    runs: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    look: Look | None = None,
) -> Table:
    """A row per (model, run), a column per quantity: mean +- std over seeds.

    Args:
        summaries: one row per run (``aggregate.run_summaries``).
        metrics: the quantities (columns), by registry name.
        runs: runs to show, in row order (default: all, in order of appearance).
        models: models to show, in order; a Model column appears when there are several.
        look: names of runs and models.
    """
    look = look or Look()
    runs, models = _order(summaries, "run", runs), _order(summaries, "model", models)
    chosen = summaries[summaries["run"].isin(runs) & summaries["model"].isin(models)]
    stats = seed_stats(chosen, metrics, by=("model", "run"))
    show_model = len(models) > 1
    header = (["Model"] if show_model else []) + ["Optimizer"] + [_header(m) for m in metrics]
    rows = []
    for model in models:
        for run in runs:
            cells = stats[(stats["model"] == model) & (stats["run"] == run)]
            if cells.empty:
                continue
            by_metric = {r["metric"]: r for r in cells.to_dict("records")}
            row = [escape(look.model(model))] if show_model else []
            row.append(escape(look.name(run)))
            row += [_cell(by_metric[m]) for m in metrics]
            rows.append(row)
    notes = _diverged_note(stats)
    align = "l" * (2 if show_model else 1) + "r" * len(metrics)
    return Table(tabular(header, rows, align=align, notes=notes), stats, notes)


def by_model_table(
    summaries: pd.DataFrame,
    metric_name: str,
    *,
    runs: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    look: Look | None = None,
) -> Table:
    """One quantity: a row per run, a column per model (mean +- std over seeds)."""
    look = look or Look()
    runs, models = _order(summaries, "run", runs), _order(summaries, "model", models)
    chosen = summaries[summaries["run"].isin(runs) & summaries["model"].isin(models)]
    stats = seed_stats(chosen, [metric_name], by=("model", "run"))
    header = ["Optimizer"] + [escape(look.model(m)) for m in models]
    top = [
        rf"& \multicolumn{{{len(models)}}}{{c}}{{{_header(metric_name)}}} \\",
        rf"\cmidrule(lr){{2-{len(models) + 1}}}",
    ]
    rows = []
    for run in runs:
        row = [escape(look.name(run))]
        for model in models:
            cell = stats[(stats["model"] == model) & (stats["run"] == run)]
            row.append(_cell(cell.iloc[0]) if len(cell) else "--")
        rows.append(row)
    notes = _diverged_note(stats)
    return Table(tabular(header, rows, header_rows=top, notes=notes), stats, notes)


# How optimizer options are named in the hyper-parameter table.
OPTION_NAMES = {
    "lr": r"$\eta$",
    "momentum": "momentum",
    "betas": r"$(\beta_1, \beta_2)$",
    "weight_decay": "weight decay",
    "lr_decay": "lr decay",
    "hessian_power": "Hessian power",
    "rho": r"$\rho$",
    "adaptive": "adaptive",
    "tl": r"switch below val.\ loss",
    "eps": r"$\epsilon$",
    "alpha": r"$\alpha$",
    "nesterov": "Nesterov",
}


def _option_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return "(" + ", ".join(_option_value(v) for v in value) + ")"
    return escape(value)


# Nested optimizer settings in the order they act (the hybrid's phases; SAM's base).
NESTED_ORDER = ("base", "sgd", "adahessian")


def _option_order(key: str) -> tuple[int, str]:
    known = list(OPTION_NAMES) + list(NESTED_ORDER)
    return (known.index(key), key) if key in known else (len(known), key)


def describe_optimizer(spec: Mapping[str, Any], *, with_name: bool = True) -> str:
    """An optimizer config as LaTeX text: ``SGD: $\\eta$ 0.1, momentum 0.9``.

    Options come in a fixed order (learning rate first); nested settings (the hybrid's two
    phases, SAM's base optimizer) follow in the order they act. ``with_name=False`` leaves out
    the outer optimizer's name (a table already shows it).
    """
    name = spec.get("name")
    parts, nested = [], []
    for key in sorted((k for k in spec if k != "name"), key=_option_order):
        value = spec[key]
        if isinstance(value, Mapping):
            nested.append(describe_optimizer({"name": key, **dict(value)}))
        else:
            parts.append(f"{OPTION_NAMES.get(key, escape(key))} {_option_value(value)}")
    text = ", ".join(parts)
    if name and with_name:
        text = escape(style.display_name(str(name))) + (f": {text}" if text else "")
    if nested:
        joined = "; then ".join(nested) if name == "hybrid" else "; ".join(nested)
        text += ("; " if name == "hybrid" else " over ") + joined if text else joined
    return text


def hyperparameter_table(
    summaries: pd.DataFrame,
    finals: Sequence[Mapping[str, Any]],
    metrics: Sequence[str],
    *,
    runs: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    look: Look | None = None,
) -> Table:
    """Each run's optimizer settings, batch size and epochs, then the chosen quantities.

    The settings are read from the runs' final.json (what was run, not what config says now).
    """
    look = look or Look()
    runs, models = _order(summaries, "run", runs), _order(summaries, "model", models)
    chosen = summaries[summaries["run"].isin(runs) & summaries["model"].isin(models)]
    stats = seed_stats(chosen, metrics, by=("model", "run"))
    settings = {final_key(m)[1:3]: m["run"] for m in finals}
    show_model = len(models) > 1
    header = (["Model"] if show_model else []) + [
        "Optimizer",
        "Hyper-parameters",
        "Batch",
        "Epochs",
    ]
    header += [_header(m) for m in metrics]
    rows = []
    for model in models:
        for run in runs:
            cells = stats[(stats["model"] == model) & (stats["run"] == run)]
            if cells.empty:
                continue
            run_config = settings.get((model, run), {})
            by_metric = {r["metric"]: r for r in cells.to_dict("records")}
            row = [escape(look.model(model))] if show_model else []
            row += [
                escape(look.name(run)),
                describe_optimizer(run_config.get("optimizer", {}), with_name=False),
                str(run_config.get("batch_size", "--")),
                str(run_config.get("epochs", "--")),
            ]
            row += [_cell(by_metric[m]) for m in metrics]
            rows.append(row)
    align = "l" * (2 if show_model else 1) + r"p{0.42\linewidth}rr" + "r" * len(metrics)
    notes = _diverged_note(stats)
    return Table(tabular(header, rows, align=align, notes=notes), stats, notes)


TABLE_KINDS: dict[str, str] = {
    "summary": "a row per (model, run), a column per quantity",
    "by_model": "one quantity, a row per run, a column per model",
    "hyperparameters": "optimizer settings and chosen quantities per run",
}


def training_table(
    summaries: pd.DataFrame,
    finals: Sequence[Mapping[str, Any]],
    spec: Mapping[str, Any],
    look: Look | None = None,
) -> Table:
    """Build a table config entry (kind, metrics, runs, models) from the run summaries."""
    kind = spec["kind"]
    options = {"runs": spec.get("runs"), "models": spec.get("models"), "look": look}
    if kind == "summary":
        return summary_table(summaries, spec["metrics"], **options)
    if kind == "by_model":
        if len(spec["metrics"]) != 1:
            raise ValueError(f"a by_model table shows one quantity; got {spec['metrics']}")
        return by_model_table(summaries, spec["metrics"][0], **options)
    if kind == "hyperparameters":
        return hyperparameter_table(summaries, finals, spec["metrics"], **options)
    raise KeyError(f"unknown table kind {kind!r}; known: {sorted(TABLE_KINDS)}")


def write_table(table: Table, tex: str | Path, csv: str | Path) -> None:
    """Write the ``tabular`` and its numbers (CSV: mean, std, n per cell), each atomically."""
    write_text(tex, table.tex)
    write_text(csv, table.numbers.to_csv(index=False))
