"""Sweeps in the paper: final quantity vs swept value (E1's lr sweep), and the winners' table.

Both read a sweep's ``summary.parquet`` (``rules/sweep.smk``, :func:`minima.sweeps.summarise`):
one row per (model, run, point) with the swept values (``value:<key>``) and mean/std/n over
seeds of each final quantity.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from minima import sweeps
from minima.io import read_json
from minima.plan import ConfigError
from minima.report import style
from minima.report.kinds import Inputs, Kind
from minima.report.latex import escape, tabular
from minima.report.metrics import metric
from minima.report.tables import Table, format_mean_std


def _inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
    folder = f"results/sweeps/{exp}/{spec['sweep']}"
    return {"summary": [f"{folder}/summary.parquet"], "best": [f"{folder}/best.json"]}


def _check(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], where: str) -> None:
    found = sweeps.sweeps(config, exp)
    if "sweep" not in spec:
        raise ConfigError(
            f"{where}: a {spec['kind']} entry needs `sweep`; allowed: {sorted(found)}"
        )
    if spec["sweep"] not in found:
        raise ConfigError(f"{where}.sweep is {spec['sweep']!r}; allowed: {sorted(found)}")
    if spec["kind"] == "sweep" and "figures" in where:
        name = spec.get("metric")
        if name not in sweeps.SUMMARISED:
            raise ConfigError(f"{where}.metric is {name!r}; allowed: {list(sweeps.SUMMARISED)}")
        grid = found[spec["sweep"]]["grid"]
        wide = {run: list(g) for run, g in grid.items() if len(g) != 1}
        if wide:
            raise ConfigError(
                f"{where}: a sweep figure draws one swept value on x; runs {sorted(wide)} vary "
                f"several ({wide}): show them in a sweep table instead"
            )


# Swept settings by their last dotted part, as an axis says them.
AXIS_NAMES = {"lr": "learning rate", "momentum": "momentum", "tl": "switch threshold (val. loss)"}


def _axis_name(dotted: str) -> str:
    """``optimizer.lr`` -> "learning rate"; ``optimizer.sgd.lr`` -> "learning rate (sgd)"."""
    *parents, last = dotted.split(".")
    name = AXIS_NAMES.get(last, last)
    inner = [p for p in parents if p != "optimizer"]
    return f"{name} ({'.'.join(inner)})" if inner else name


def _shown(summary: pd.DataFrame, spec: Mapping[str, Any]) -> pd.DataFrame:
    return summary[summary["run"].isin(spec["runs"]) & summary["model"].isin(spec["models"])]


def draw_sweep(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Figure:
    """A line per run: the final quantity (mean +- std over seeds) vs its swept value; the
    winner ringed. One panel per model; the swept value on a log axis if ``log_x``."""
    summary = _shown(pd.read_parquet(inputs["summary"][0]), spec)
    info = metric(spec["metric"])
    models = [m for m in spec["models"] if m in set(summary["model"])]
    runs = [r for r in spec["runs"] if r in set(summary["run"])]
    if not runs:
        raise ValueError(f"sweep {spec['sweep']}: none of runs {spec['runs']} was swept")
    with style.styled():
        fig = Figure(
            figsize=(style.TEXT_WIDTH if len(models) > 1 else 4.6, 0.9 + style.PANEL_HEIGHT),
            layout="constrained",
        )
        axes = fig.subplots(1, len(models), squeeze=False)[0]
        xlabels = set()
        for ax, model in zip(axes, models, strict=True):
            for run in runs:
                rows = summary[(summary["model"] == model) & (summary["run"] == run)]
                if rows.empty:
                    continue
                (key,) = [
                    c for c in rows.columns if c.startswith("value:") and rows[c].notna().any()
                ]
                xlabels.add(key.removeprefix("value:"))
                rows = rows.sort_values(key)
                xs = rows[key].to_numpy(dtype=float)
                mean = rows[f"{spec['metric']}_mean"].to_numpy(dtype=float) * info.scale
                std = (
                    np.nan_to_num(rows[f"{spec['metric']}_std"].to_numpy(dtype=float)) * info.scale
                )
                color = look.color(run)
                ax.errorbar(
                    xs, mean, yerr=std, color=color, marker="o", capsize=2, label=look.name(run)
                )
                best = rows[rows["best"]]
                ax.plot(
                    best[key].to_numpy(dtype=float),
                    best[f"{spec['metric']}_mean"].to_numpy(dtype=float) * info.scale,
                    marker="o",
                    markersize=10,
                    markerfacecolor="none",
                    color=color,
                    linestyle="",
                )
            if spec.get("log_x", False):
                ax.set_xscale("log")
            ax.set_ylabel(info.axis_label())
            if len(models) > 1:
                ax.set_title(look.model(model))
        for ax in axes:
            ax.set_xlabel(" / ".join(_axis_name(key) for key in sorted(xlabels)))
        if spec["metric"].endswith("loss"):  # losses of a sweep span decades
            for ax in axes:
                ax.set_yscale("log")
        handles, labels = axes[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4))
        notes = [spec["sweep_note"]] if spec.get("sweep_note") else []
        notes += diverged_notes(summary, spec["metric"], models, runs, look)
        if notes:
            fig.suptitle("\n".join(notes), fontsize="small", wrap=True)
    return fig


def build_sweep_table(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Table:
    """A row per (model, run): the winning values, the selection quantity (mean +- std over the
    sweep's seeds) and the winner's test accuracy, and how many points were tried."""
    summary = _shown(pd.read_parquet(inputs["summary"][0]), spec)
    select = read_json(inputs["best"][0])["select"]
    models = [m for m in spec["models"] if m in set(summary["model"])]
    runs = [r for r in spec["runs"] if r in set(summary["run"])]
    show_model = len(models) > 1
    chosen = [select] + (["test_acc"] if select != "test_acc" else [])
    header = (["Model"] if show_model else []) + ["Optimizer", "Best values", "Points"]
    header += [escape(metric(q).header()) for q in chosen]
    rows, numbers = [], []
    for model in models:
        for run in runs:
            rows_ = summary[(summary["model"] == model) & (summary["run"] == run)]
            best = rows_[rows_["best"]]
            row = [escape(look.model(model))] if show_model else []
            row += [escape(look.name(run))]
            if best.empty:
                row += ["all diverged", str(len(rows_))] + ["--"] * len(chosen)
                rows.append(row)
                continue
            b = best.iloc[0]
            values = {
                c.removeprefix("value:"): b[c]
                for c in rows_.columns
                if c.startswith("value:") and pd.notna(b[c])
            }
            row += [escape(sweeps.describe_values(values)), str(len(rows_))]
            for q in chosen:
                info = metric(q)
                row.append(
                    format_mean_std(
                        b[f"{q}_mean"],
                        b[f"{q}_std"],
                        int(b[f"{q}_n"]),
                        decimals=info.decimals,
                        scale=info.scale,
                        n_runs=int(b["seeds"]),
                    )
                )
                numbers.append(
                    {
                        "model": model,
                        "run": run,
                        "metric": q,
                        "mean": b[f"{q}_mean"],
                        "std": b[f"{q}_std"],
                        "n": int(b[f"{q}_n"]),
                        "point": int(b["point"]),
                        **{f"value:{k}": v for k, v in values.items()},
                    }
                )
            rows.append(row)
    align = "l" * (3 if show_model else 2) + "r" * (1 + len(chosen))
    notes = [escape(spec["sweep_note"])] if spec.get("sweep_note") else []
    notes += [escape(note) for note in diverged_notes(summary, select, models, runs, look)]
    return Table(tabular(header, rows, align=align, notes=notes), pd.DataFrame(numbers), notes)


def diverged_notes(
    summary: pd.DataFrame, select: str, models: list[str], runs: list[str], look: Any
) -> list[str]:
    """A note (plain text) naming every point with seeds that did not complete (diverged):
    they are left out of its mean and, with none completed, of the selection."""
    parts = []
    value_columns = [c for c in summary.columns if c.startswith("value:")]
    for model in models:
        for run in runs:
            rows = summary[(summary["model"] == model) & (summary["run"] == run)]
            for _, row in rows[rows[f"{select}_n"] < rows["seeds"]].iterrows():
                values = {
                    c.removeprefix("value:"): row[c] for c in value_columns if pd.notna(row[c])
                }
                seeds = int(row["seeds"])
                lost = seeds - int(row[f"{select}_n"])
                name = (
                    look.name(run)
                    if len(models) == 1
                    else f"{look.name(run)} ({look.model(model)})"
                )
                parts.append(
                    f"{name} at {sweeps.describe_values(values)} ({lost} of {seeds} seeds)"
                )
    if not parts:
        return []
    return [
        "Did not complete (diverged), left out of the means and the selection: "
        + "; ".join(parts)
        + "."
    ]


def _resolve(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The entry with ``sweep_note``: how the sweep's points were trained, which the paper's
    caption sentence (about the main runs) does not say."""
    sec = sweeps.section(config, exp, spec["sweep"])
    seeds = len(sec["seeds"])
    epochs = f"{sec['epochs']} epoch(s)" if sec.get("epochs") else "the runs' own epochs"
    return {**spec, "sweep_note": f"Each point: {seeds} seed(s), {epochs}."}


SWEEP_FIGURE = Kind(inputs=_inputs, check=_check, draw=draw_sweep, resolve=_resolve)
SWEEP_TABLE = Kind(inputs=_inputs, check=_check, draw=build_sweep_table, resolve=_resolve)
