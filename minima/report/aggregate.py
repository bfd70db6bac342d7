"""From many runs' files to one tidy table, and from it to means and spreads over seeds.

Every figure and table of the paper starts here: ``load_metrics`` stacks the per-epoch tables
of a set of runs (one row per run and epoch), ``run_summaries`` reduces each run to one row
(its last epoch, plus timing and status), and ``seed_stats``/``curve_stats`` average over seeds.
The spread is the sample standard deviation (ddof=1) over the seeds that completed, the usual
"mean +- std over n runs" of the study; a diverged run is counted, never averaged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RUN_COLUMNS = ("experiment", "model", "run", "seed")
REQUIRED_COLUMNS = (*RUN_COLUMNS, "epoch", "step", "train_loss", "val_loss", "test_acc")


def load_metrics(paths: Iterable[str | Path]) -> pd.DataFrame:
    """Stack the ``metrics.parquet`` tables of several runs into one tidy frame.

    Rows are sorted by (experiment, model, run, seed, epoch); the run columns come from the
    tables themselves, so a file's location never decides what it is.
    """
    paths = list(paths)
    frames = [pd.read_parquet(path) for path in paths]
    if not frames:
        raise ValueError("load_metrics: no metrics files given")
    for path, frame in zip(paths, frames, strict=True):
        missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path}: metrics table lacks columns {missing}")
    frame = pd.concat(frames, ignore_index=True)
    return frame.sort_values([*RUN_COLUMNS, "epoch"], kind="stable").reset_index(drop=True)


def load_finals(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read the ``final.json`` metadata of several runs."""
    return [json.loads(Path(path).read_text()) for path in paths]


def final_key(meta: Mapping[str, Any]) -> tuple[str, str, str, int]:
    """(experiment, model, run, seed) of a run's final.json."""
    run = meta["run"]
    return (run["experiment"], run["model_label"], run["run"], int(run["seed"]))


def run_summaries(
    metrics: pd.DataFrame, finals: Sequence[Mapping[str, Any]] | None = None
) -> pd.DataFrame:
    """One row per run: its last epoch's values, timing and status.

    Adds ``best_val_acc`` (the maximum over epochs), ``epochs_run``, ``steps``,
    ``seconds_per_step`` (training time / optimizer steps) and ``status``: from ``finals``
    (the runs' final.json) where given, else ``completed`` when the last losses are finite.

    Args:
        metrics: tidy per-epoch frame (``load_metrics``).
        finals: the runs' final.json dicts, matched to runs by their resolved run config.
    """
    keys = list(RUN_COLUMNS)
    grouped = metrics.groupby(keys, sort=False)
    last = metrics.loc[grouped["epoch"].idxmax()].set_index(keys)
    summary = last.drop(columns=["epoch"]).copy()
    summary["epochs_run"] = grouped["epoch"].count()
    if "val_acc" in metrics.columns:
        summary["best_val_acc"] = grouped["val_acc"].max()
    summary["steps"] = last["step"]
    summary["seconds_per_step"] = last["train_seconds"] / last["step"].where(last["step"] > 0)
    finite = np.isfinite(last["train_loss"]) & np.isfinite(last["val_loss"])
    summary["status"] = np.where(finite, "completed", "diverged")
    if finals is not None:
        status = {final_key(meta): meta.get("status", "completed") for meta in finals}
        summary["status"] = [
            status.get(key, s) for key, s in zip(summary.index, summary.status, strict=True)
        ]
    return summary.reset_index()


def seed_stats(
    summaries: pd.DataFrame,
    metrics: Sequence[str],
    by: Sequence[str] = ("model", "run"),
) -> pd.DataFrame:
    """Mean, std (ddof=1) and count over seeds of each metric, per group of ``by``.

    Only completed runs enter the mean; ``n_runs`` counts every run of the group, so
    ``n_runs - n`` runs diverged. Groups keep their order of first appearance.

    Returns:
        tidy frame with columns ``*by, metric, mean, std, n, n_runs`` (std is NaN for n = 1).
    """
    rows = []
    for group, frame in summaries.groupby(list(by), sort=False):
        group = group if isinstance(group, tuple) else (group,)
        done = frame[frame["status"] == "completed"]
        for name in metrics:
            values = done[name].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            n = len(values)
            rows.append(
                {
                    **dict(zip(by, group, strict=True)),
                    "metric": name,
                    "mean": float(values.mean()) if n else math.nan,
                    "std": float(values.std(ddof=1)) if n > 1 else math.nan,
                    "n": n,
                    "n_runs": len(frame),
                }
            )
    return pd.DataFrame(rows, columns=[*by, "metric", "mean", "std", "n", "n_runs"])


def curve_stats(
    metrics: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("model", "run"),
    x: str = "epoch",
) -> pd.DataFrame:
    """Mean, std (ddof=1) and count over seeds of ``metric`` at each ``x``, per group.

    Non-finite values (a diverged run's last epoch) are left out of that epoch's mean.

    Returns:
        frame with columns ``*by, x, mean, std, n``, groups in order of first appearance.
    """
    keys = [*by, x]
    values = metrics[[*keys, metric]].copy()
    values[metric] = values[metric].where(np.isfinite(values[metric].astype(float)))
    grouped = values.groupby(keys, sort=False)[metric]
    out = grouped.agg(mean="mean", std=lambda s: s.std(ddof=1), n="count").reset_index()
    return out.sort_values(keys, key=_first_appearance(values, keys), kind="stable").reset_index(
        drop=True
    )


def _first_appearance(frame: pd.DataFrame, keys: Sequence[str]):
    orders = {k: {v: i for i, v in enumerate(dict.fromkeys(frame[k]))} for k in keys[:-1]}

    def key(column: pd.Series) -> pd.Series:
        if column.name in orders:
            return column.map(orders[column.name])
        return column

    return key
