"""E1's Hessian spectrum in the paper: the eigenvalue density figure and the spectrum table.

Both read the ``spectrum`` analysis of each final model (``rules/hessian.smk``):
``density.parquet`` (SLQ density on a grid) and ``eigenvalues.parquet`` + ``spectrum.json``
(top eigenvalues, Hutchinson trace).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from minima.io import read_json
from minima.plan import ConfigError
from minima.report import style
from minima.report.kinds import Inputs, Kind
from minima.report.kinds.paths import analysis_file, check_analysis, key_of, shown_keys
from minima.report.latex import escape, tabular
from minima.report.tables import Table, format_mean_std

# The y axis starts here: SLQ's Gaussian tails reach 1e-30 and would squash the plot, so the
# density is drawn clipped to this floor (PyHessian's plots add a similar offset).
DENSITY_FLOOR = 1e-8


def _check_density(
    config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], where: str
) -> None:
    check_analysis(config, exp, spec, where, "spectrum")
    if not config["experiments"][exp]["analyses"]["spectrum"].get("density"):
        raise ConfigError(f"{where}: experiments.{exp}.analyses.spectrum.density is null")


def _first_seed(paths: list[str]) -> dict[tuple[str, str], str]:
    """(model, run) -> the density file of its lowest seed."""
    chosen: dict[tuple[str, str], tuple[int, str]] = {}
    for path in paths:
        key = key_of(path, "spectrum")
        current = chosen.get((key.model, key.run))
        if current is None or key.seed < current[0]:
            chosen[(key.model, key.run)] = (key.seed, path)
    return {group: path for group, (_, path) in chosen.items()}


def draw_density(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Figure:
    """One panel per run (a row of panels per model), density on a log axis, shared x. A run
    whose analysis was not computed (it diverged) keeps its panel, saying so and why."""
    files = _first_seed(inputs["density"])
    reasons = {
        path: meta.get("reason", "not computed")
        for path, meta_path in zip(inputs["density"], inputs["meta"], strict=True)
        if (meta := read_json(meta_path)).get("status") == "skipped"
    }
    runs = [r for r in spec["runs"] if any(run == r for _, run in files)]
    models = [m for m in spec["models"] if any(model == m for model, _ in files)]
    if not runs:
        raise ValueError("no density file to draw")
    cols = min(len(runs), 4)
    rows = math.ceil(len(runs) / cols) * len(models)
    with style.styled():
        fig = Figure(
            figsize=(style.TEXT_WIDTH, min(style.MAX_HEIGHT, 0.5 + 2.0 * rows)),
            layout="constrained",
        )
        axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
        for ax in axes.flat:
            ax.set_visible(False)
        for m, model in enumerate(models):
            for i, run in enumerate(runs):
                if (model, run) not in files:
                    continue
                ax = axes[m * math.ceil(len(runs) / cols) + i // cols, i % cols]
                ax.set_visible(True)
                title = (
                    look.name(run) if len(models) == 1 else f"{look.model(model)}, {look.name(run)}"
                )
                ax.set_title(title, color=look.color(run), fontweight="bold", loc="left")
                if files[(model, run)] in reasons:
                    why = reasons[files[(model, run)]]
                    seed = key_of(files[(model, run)], "spectrum").seed
                    ax.text(
                        0.5,
                        0.5,
                        f"not drawn (seed {seed}):\n{why}",
                        ha="center",
                        va="center",
                        wrap=True,
                        fontsize=7,
                        transform=ax.transAxes,
                    )
                    ax.set_yticks([])
                    continue
                frame = pd.read_parquet(files[(model, run)])
                clipped = np.maximum(frame["density"].to_numpy(dtype=float), DENSITY_FLOOR)
                ax.semilogy(frame["x"], clipped, color=look.color(run), linewidth=1.0)
                ax.set_ylim(bottom=DENSITY_FLOOR)
                ax.set_xlabel("eigenvalue")
                if i % cols == 0:
                    ax.set_ylabel("density")
    return fig


def build_spectrum_table(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Table:
    """A row per (model, run): top eigenvalues lambda_1..k and the trace, mean +- std over seeds."""
    records, left_out = [], []
    for eig_path, meta_path in zip(inputs["eigenvalues"], inputs["meta"], strict=True):
        key = key_of(eig_path, "spectrum")
        meta = read_json(meta_path)
        if meta.get("status") == "skipped":
            left_out.append((key, meta.get("reason", "not computed")))
            continue
        eig = pd.read_parquet(eig_path).sort_values("eigenvalue", ascending=False)
        record = {"model": key.model, "run": key.run, "seed": key.seed}
        for i, value in enumerate(eig["eigenvalue"].to_numpy(dtype=float)):
            record[f"lambda_{i + 1}"] = value
        trace = meta.get("trace")
        record["trace"] = trace["estimate"] if trace else np.nan
        records.append(record)
    if not records:
        raise ValueError(f"no completed spectrum analysis to tabulate: {left_out}")
    frame = pd.DataFrame(records)
    k = spec.get("top", 3)
    columns = [c for c in (f"lambda_{i + 1}" for i in range(k)) if c in frame] + (
        ["trace"] if frame["trace"].notna().any() else []
    )
    models = [m for m in spec["models"] if m in set(frame["model"])]
    runs = [r for r in spec["runs"] if r in set(frame["run"])]
    long = frame.melt(["model", "run", "seed"], columns, "quantity").dropna(subset=["value"])
    stats = (
        long.groupby(["model", "run", "quantity"], sort=False)["value"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    show_model = len(models) > 1
    header = (["Model"] if show_model else []) + ["Optimizer"]
    header += [rf"$\lambda_{{{c.split('_')[1]}}}$" if c != "trace" else "trace" for c in columns]
    rows = []
    for model in models:
        for run in runs:
            cells = stats[(stats["model"] == model) & (stats["run"] == run)].set_index("quantity")
            if cells.empty:
                continue
            row = [escape(look.model(model))] if show_model else []
            row.append(escape(look.name(run)))
            for column in columns:
                if column not in cells.index:
                    row.append("--")
                    continue
                c = cells.loc[column]
                row.append(
                    format_mean_std(c["mean"], c["std"], int(c["n"]), decimals=_decimals(c["mean"]))
                )
            rows.append(row)
    align = "l" * (2 if show_model else 1) + "r" * len(columns)
    notes = left_out_notes(left_out, look)
    return Table(tabular(header, rows, align=align, notes=notes), stats, notes)


def left_out_notes(left_out: list[tuple[Any, str]], look: Any) -> list[str]:
    """One footnote line per run left out of a table: which seed and why (its sidecar's
    reason, e.g. the run diverged)."""
    return [
        escape(f"Left out: {look.name(key.run)} ({look.model(key.model)}), seed {key.seed}: {why}.")
        for key, why in left_out
    ]


def _decimals(value: float) -> int:
    """Three significant digits for eigenvalues that span 1e-2 to 1e4."""
    if not math.isfinite(value) or value == 0:
        return 2
    return max(0, 2 - int(math.floor(math.log10(abs(value)))))


def _spectrum_table_inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
    keys = shown_keys(config, exp, spec, "spectrum")
    return {
        "eigenvalues": [analysis_file("spectrum", k, "eigenvalues.parquet") for k in keys],
        "meta": [analysis_file("spectrum", k, "spectrum.json") for k in keys],
    }


def _check_table(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], where: str) -> None:
    check_analysis(config, exp, spec, where, "spectrum")


def _density_inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
    keys = shown_keys(config, exp, spec, "spectrum")
    return {
        "density": [analysis_file("spectrum", k, "density.parquet") for k in keys],
        "meta": [analysis_file("spectrum", k, "spectrum.json") for k in keys],
    }


DENSITY = Kind(inputs=_density_inputs, check=_check_density, draw=draw_density)
SPECTRUM_TABLE = Kind(inputs=_spectrum_table_inputs, check=_check_table, draw=build_spectrum_table)
