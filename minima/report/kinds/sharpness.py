"""E4's sharpness of the final models in the paper: the ``sharpness`` table.

A row per (model, run), mean +- std over seeds of, per radius ``rho`` of the ``sharpness``
analysis (``rules/hessian.smk``; ``sharpness.parquet``, one row per rho): SAM's first-order
sharpness ``rho ||g||`` (``first_order``) and the largest loss increase found by projected
gradient ascent in the rho-ball (``ascent``), both at the final weights on the analysis's
fixed, unaugmented training examples; then the top Hessian eigenvalue (the ``spectrum``
analysis' ``eigenvalues.parquet``, its first row: largest algebraic with the native engine,
largest magnitude with PyHessian). The per-batch ``rho ||g||`` during training is the curves
figure of ``sam_sharpness``, not this table.

The eigenvalue column needs ``analyses.spectrum``: an experiment without it gets the table
without that column (no error), so the table works wherever sharpness is analysed; a run the
spectrum does not cover shows ``--``. A seed whose analysis was skipped (its run diverged)
is left out of the mean, its cell marked with a dagger and a note.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from minima import plan
from minima.report.kinds import Inputs, Kind
from minima.report.kinds.paths import analysis_file, check_analysis, key_of, shown_keys
from minima.report.latex import escape, tabular
from minima.report.tables import Table, format_mean_std

# Quantities of the table, in column order within one rho: (sharpness.parquet column, header).
PER_RHO: tuple[tuple[str, str], ...] = (
    ("first_order", r"$\rho\|g\|$"),
    ("ascent", r"ascent $\Delta L$"),
)
EIGENVALUE = "lambda_max"
COLUMNS = ("model", "run", "quantity", "rho", "mean", "std", "n", "n_runs")


def sharpness_inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
    """Each shown run's sharpness table and, where the spectrum covers it, its eigenvalues."""
    keys = shown_keys(config, exp, spec, "sharpness")
    inputs = {"sharpness": [analysis_file("sharpness", k, "sharpness.parquet") for k in keys]}
    spectral = set(plan.analysis_runs(config, exp, "spectrum"))
    if plan.analysis_section(config, exp, "spectrum") is not None:
        inputs["eigenvalues"] = [
            analysis_file("spectrum", k, "eigenvalues.parquet") for k in keys if k.run in spectral
        ]
    return inputs


def check_sharpness(
    config: Mapping[str, Any], exp: str, entry: Mapping[str, Any], where: str
) -> None:
    """The experiment analyses sharpness for a shown run (the spectrum is optional)."""
    check_analysis(config, exp, entry, where, "sharpness")


def _records(inputs: Inputs) -> tuple[pd.DataFrame, Counter]:
    """One row per (model, run, seed, quantity, rho) computed, and how many seeds were tried
    per (model, run, source) (source: sharpness | eigenvalues)."""
    rows, tried = [], Counter()
    for path in inputs["sharpness"]:
        key = key_of(path, "sharpness")
        tried[(key.model, key.run, "sharpness")] += 1
        for record in pd.read_parquet(path).to_dict("records"):
            for quantity, _ in PER_RHO:
                value = record[quantity]
                rows.append((key.model, key.run, key.seed, quantity, record["rho"], value))
    for path in inputs.get("eigenvalues", []):
        key = key_of(path, "spectrum")
        tried[(key.model, key.run, "eigenvalues")] += 1
        eig = pd.read_parquet(path)
        if len(eig):
            top = float(eig.sort_values("index")["eigenvalue"].iloc[0])
            rows.append((key.model, key.run, key.seed, EIGENVALUE, math.nan, top))
    frame = pd.DataFrame(rows, columns=["model", "run", "seed", "quantity", "rho", "value"])
    return frame, tried


def _stats(frame: pd.DataFrame, tried: Mapping[tuple[str, str, str], int]) -> pd.DataFrame:
    """Mean, std (ddof=1) and count over seeds per (model, run, quantity, rho)."""
    rows = []
    for (model, run, quantity, rho), group in frame.groupby(
        ["model", "run", "quantity", "rho"], sort=False, dropna=False
    ):
        values = group["value"].to_numpy(dtype=float)
        values = values[np.isfinite(values)]
        n = len(values)
        source = "eigenvalues" if quantity == EIGENVALUE else "sharpness"
        rows.append(
            {
                "model": model,
                "run": run,
                "quantity": quantity,
                "rho": rho,
                "mean": float(values.mean()) if n else math.nan,
                "std": float(values.std(ddof=1)) if n > 1 else math.nan,
                "n": n,
                "n_runs": tried[(model, run, source)],
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS))


def significant_decimals(value: float, digits: int = 3) -> int:
    """Decimals that show ``digits`` significant digits of ``value`` (sharpness spans decades)."""
    if not math.isfinite(value) or value == 0:
        return digits - 1
    return max(0, digits - 1 - int(math.floor(math.log10(abs(value)))))


def _cell(stats: pd.DataFrame, quantity: str, rho: float, tried: int) -> str:
    match = stats[stats["quantity"] == quantity]
    if quantity != EIGENVALUE:
        match = match[np.isclose(match["rho"].to_numpy(dtype=float), rho)]
    if match.empty:
        return "--"
    c = match.iloc[0]
    decimals = significant_decimals(c["mean"])
    return format_mean_std(c["mean"], c["std"], int(c["n"]), decimals=decimals, n_runs=tried)


def build_sharpness_table(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Table:
    """A row per (model, run): per rho the first-order and ascent sharpness, then lambda_max."""
    frame, tried = _records(inputs)
    stats = _stats(frame, tried)
    rhos = sorted(frame.loc[frame["quantity"] != EIGENVALUE, "rho"].unique())
    if not rhos:
        raise ValueError("no completed sharpness analysis to tabulate")
    with_eigenvalue = "eigenvalues" in inputs
    groups = [(m, r) for m in spec["models"] for r in spec["runs"] if (m, r, "sharpness") in tried]
    models = list(dict.fromkeys(m for m, _ in groups))
    show_model = len(models) > 1
    lead = (["Model"] if show_model else []) + ["Optimizer"]
    header = lead + [h for _ in rhos for _, h in PER_RHO]
    top = [" & " * (len(lead) - 1)]
    rules = []
    for i, rho in enumerate(rhos):
        first = len(lead) + 1 + i * len(PER_RHO)
        top.append(rf" & \multicolumn{{{len(PER_RHO)}}}{{c}}{{$\rho = {rho:g}$}}")
        rules.append(rf"\cmidrule(lr){{{first}-{first + len(PER_RHO) - 1}}}")
    if with_eigenvalue:
        header.append(r"$\lambda_{\max}$")
        top.append(" & ")
    header_rows = ["".join(top) + r" \\", " ".join(rules)]
    rows = []
    for model, run in groups:
        cells = stats[(stats["model"] == model) & (stats["run"] == run)]
        row = [escape(look.model(model))] if show_model else []
        row.append(escape(look.name(run)))
        for rho in rhos:
            row += [_cell(cells, q, rho, tried[(model, run, "sharpness")]) for q, _ in PER_RHO]
        if with_eigenvalue:
            row.append(
                _cell(cells, EIGENVALUE, math.nan, tried.get((model, run, "eigenvalues"), 0))
            )
        rows.append(row)
    notes = _missing_note(stats, tried, groups)
    align = "l" * len(lead) + "r" * (len(header) - len(lead))
    return Table(
        tabular(header, rows, align=align, header_rows=header_rows, notes=notes), stats, notes
    )


def _missing_note(
    stats: pd.DataFrame, tried: Mapping[tuple[str, str, str], int], groups: list
) -> list[str]:
    parts = []
    for model, run in groups:
        for source in ("sharpness", "eigenvalues"):
            n_runs = tried.get((model, run, source), 0)
            quantity = EIGENVALUE if source == "eigenvalues" else PER_RHO[0][0]
            done = stats[
                (stats["model"] == model) & (stats["run"] == run) & (stats["quantity"] == quantity)
            ]
            n = int(done["n"].max()) if len(done) else 0
            if n_runs > n:
                what = "spectrum" if source == "eigenvalues" else "sharpness"
                parts.append(
                    f"{what} of {n_runs - n} of {n_runs} seeds of {escape(run)} ({escape(model)})"
                )
    if not parts:
        return []
    what = "not computed (the run did not complete), left out of the mean"
    return [rf"$\dagger$ {what}: {', '.join(parts)}."]


SHARPNESS_TABLE = Kind(inputs=sharpness_inputs, check=check_sharpness, draw=build_sharpness_table)
