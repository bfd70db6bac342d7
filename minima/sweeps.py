"""Hyper-parameter sweeps: E1's learning-rate sweep and E2's grid search.

A sweep is config (``experiments.<exp>.sweeps.<name>``): for each swept run a grid of dotted
run settings (``optimizer.lr``, ``optimizer.sgd.lr`` of the hybrid, ...) whose cartesian
product gives the sweep's points; each point is trained from the experiment's shared initial
weights of each of the sweep's seeds, exactly like the run itself but for the swept values
(and ``epochs`` if the sweep sets it). The winner of each run is the point with the best mean
of the ``select`` quantity over seeds (highest accuracy, lowest loss); ``feed: true`` makes the
main run train with the winner's values.

Pure functions of the config and of tidy tables, no Snakemake: the rules (rules/sweep.smk)
and their scripts call in here, so the DAG and the jobs agree on what a point is.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from minima.run_checks import check_run, split_sizes
from minima.runs import ConfigError, RunKey, model_label, resolve_run, run_settings

# Final quantities a sweep can select on: lower is better for losses, higher for accuracies.
SELECTABLE = {"val_acc": "max", "val_loss": "min", "train_loss": "min", "train_acc": "max"}
# What a sweep may vary: settings that reach the point's training (a data key other than these
# would not: the split is the experiment's, shared by every run and point).
SWEEPABLE = ("optimizer.", "schedule.", "epochs", "batch_size", "data.std_scale", "data.augment")
# Final quantities summarised for every point (mean, std over seeds).
SUMMARISED = ("train_loss", "train_acc", "val_loss", "val_acc", "test_loss", "test_acc")


@dataclass(frozen=True, order=True)
class SweepKey:
    """One training job of a sweep: a point of a run's grid, at one seed."""

    experiment: str
    sweep: str
    model: str
    run: str
    point: int
    seed: int

    @property
    def path(self) -> str:
        """Folder of the point's run below ``results/sweeps/``."""
        return (
            f"{self.experiment}/{self.sweep}/{self.model}/{self.run}/p{self.point}/seed{self.seed}"
        )

    @property
    def run_key(self) -> RunKey:
        """The main run this point varies (its initial weights are that seed's)."""
        return RunKey(self.experiment, self.model, self.run, self.seed)


def sweeps(config: Mapping[str, Any], experiment: str) -> dict[str, dict[str, Any]]:
    """The experiment's sweep sections, name -> section (empty when it has none)."""
    return dict(config["experiments"][experiment].get("sweeps") or {})


def section(config: Mapping[str, Any], experiment: str, sweep: str) -> dict[str, Any]:
    """One sweep's section; ConfigError naming the sweeps the experiment has."""
    found = sweeps(config, experiment)
    if sweep not in found:
        raise ConfigError(
            f"experiments.{experiment}.sweeps has no {sweep!r}; it has {sorted(found)}"
        )
    return found[sweep]


def points(
    config: Mapping[str, Any], experiment: str, sweep: str, run: str
) -> list[dict[str, Any]]:
    """The run's grid points, dotted key -> value, in product order (point i = index i)."""
    grid = section(config, experiment, sweep)["grid"].get(run)
    if not grid:
        return []
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def sweep_keys(config: Mapping[str, Any], experiment: str, sweep: str) -> list[SweepKey]:
    """Every training job of a sweep, in config order (models, runs, points, seeds)."""
    entry = config["experiments"][experiment]
    sec = section(config, experiment, sweep)
    keys = []
    for spec in entry["models"]:
        for run in sec["grid"]:
            for point in range(len(points(config, experiment, sweep, run))):
                for seed in sec["seeds"]:
                    keys.append(SweepKey(experiment, sweep, model_label(spec), run, point, seed))
    return keys


def set_dotted(settings: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``settings[a][b]... = value`` for ``dotted`` = ``a.b...``; the key must exist. A
    part that is a number indexes a list (``optimizer.betas.0``: beta1)."""
    *parents, last = dotted.split(".")
    node: Any = settings
    for part in parents:
        node = _child(node, part, dotted)
    if isinstance(node, list):
        index = _index(node, last, dotted)
        node[index] = copy.deepcopy(value)
        return
    if last not in node:
        raise KeyError(dotted)
    node[last] = copy.deepcopy(value)


def _index(node: list, part: str, dotted: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise KeyError(dotted)
    return int(part)


def _child(node: Any, part: str, dotted: str) -> Any:
    if isinstance(node, list):
        return node[_index(node, part, dotted)]
    return node[part]


def apply_values(run: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of resolved run settings with the dotted ``values`` set."""
    settings = copy.deepcopy(dict(run))
    for dotted, value in values.items():
        set_dotted(settings, dotted, value)
    return settings


def resolve_point(config: Mapping[str, Any], key: SweepKey) -> dict[str, Any]:
    """Everything a sweep point's training job needs: the run's resolved settings with the
    point's values (and the sweep's ``epochs``), plus which sweep and point it is."""
    sec = section(config, key.experiment, key.sweep)
    values = points(config, key.experiment, key.sweep, key.run)[key.point]
    run = apply_values(resolve_run(config, key.run_key), values)
    if sec.get("epochs") is not None:
        run["epochs"] = sec["epochs"]
    run["sweep"] = {"name": key.sweep, "point": key.point, "values": values}
    return run


def fed_sweep(config: Mapping[str, Any], experiment: str, run: str) -> str | None:
    """The sweep whose winner a main run trains with (``feed: true``), or None."""
    fed = [
        name
        for name, sec in sweeps(config, experiment).items()
        if sec.get("feed") and run in sec["grid"]
    ]
    return fed[0] if fed else None


def check_sweeps(config: Mapping[str, Any], experiment: str) -> None:
    """Cross-checks beyond the schema; ConfigError names the key and what is allowed."""
    entry = config["experiments"][experiment]
    fed: dict[str, str] = {}
    for name, sec in sweeps(config, experiment).items():
        where = f"experiments.{experiment}.sweeps.{name}"
        if sec["select"] not in SELECTABLE:
            raise ConfigError(f"{where}.select is {sec['select']!r}; allowed: {sorted(SELECTABLE)}")
        sizes = split_sizes(config, experiment)
        if sec["select"].startswith("val_") and sizes["val"] < 1:
            raise ConfigError(
                f"{where}.select is {sec['select']!r}, but experiments.{experiment}.data."
                "val_size is 0; allowed: val_size >= 1, or select train_loss | train_acc"
            )
        for run, grid in sec["grid"].items():
            if run not in entry["runs"]:
                raise ConfigError(
                    f"{where}.grid names run {run!r}; allowed: {sorted(entry['runs'])}"
                )
            settings = run_settings(config, experiment, run)
            if settings["init_from"] is not None or settings["pretrained"]:
                raise ConfigError(
                    f"{where}.grid.{run}: run {run} does not start from the shared initial "
                    "weights (init_from/pretrained); sweep the run it starts from instead"
                )
            for dotted in grid:
                try:
                    set_dotted(copy.deepcopy(settings), dotted, None)
                except (KeyError, TypeError):
                    raise ConfigError(
                        f"{where}.grid.{run}: {dotted!r} is not a setting of run {run}; "
                        f"allowed: {sorted(_dotted_keys(settings))}"
                    ) from None
                if not any(dotted == k or dotted.startswith(k) for k in SWEEPABLE):
                    raise ConfigError(
                        f"{where}.grid.{run}: {dotted!r} does not reach the run's training "
                        f"(the split is shared by every run); allowed: keys under {SWEEPABLE}"
                    )
            for values in points(config, experiment, name, run):
                point = apply_values(settings, values)
                if sec.get("epochs") is not None:
                    point["epochs"] = sec["epochs"]
                check_run(
                    f"{where}.grid.{run} at {values}",
                    point,
                    sizes,
                    data_where=f"experiments.{experiment}.data",
                )
            if sec.get("feed"):
                if run in fed:
                    raise ConfigError(f"{where}.feed: run {run} is already fed by sweep {fed[run]}")
                fed[run] = name


def _dotted_keys(settings: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for key, value in settings.items():
        if isinstance(value, Mapping):
            keys += _dotted_keys(value, f"{prefix}{key}.")
        elif isinstance(value, list | tuple):
            keys += [f"{prefix}{key}.{i}" for i in range(len(value))]
        else:
            keys.append(f"{prefix}{key}")
    return keys


# ---- Summaries: from the points' final metrics to the winner ----


def summarise(finals: pd.DataFrame, select: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per (model, run, point): mean/std/n over seeds of every final quantity; and the winners.

    Args:
        finals: one row per trained point and seed: model, run, point, seed, status, the
            swept values as columns ``value:<dotted key>``, and the final quantities.
        select: the quantity the winner is chosen by (``SELECTABLE``).

    Returns:
        The summary table, and ``{model: {run: {point, values, select, mean, std, n}}}``. A
        diverged seed counts as lost: its point's mean is over the seeds that completed, and a
        point none of whose seeds completed cannot win.
    """
    goal = SELECTABLE[select]
    value_columns = [c for c in finals.columns if c.startswith("value:")]
    done = finals[finals["status"] == "completed"]
    groups = ["model", "run", "point"]
    stats = done.groupby(groups, sort=False)[list(SUMMARISED)].agg(["mean", "std", "count"])
    stats.columns = [f"{q}_{s}".replace("_count", "_n") for q, s in stats.columns]
    seeds = finals.groupby(groups, sort=False).agg(seeds=("seed", "nunique"))
    values = finals.groupby(groups, sort=False)[value_columns].first()
    summary = seeds.join(values).join(stats).reset_index()
    for q in SUMMARISED:
        summary[f"{q}_n"] = summary[f"{q}_n"].fillna(0).astype(int)
    winners: dict[str, Any] = {}
    for (model, run), rows in summary.groupby(["model", "run"], sort=False):
        ranked = rows[rows[f"{select}_n"] > 0]
        if ranked.empty:
            continue
        best = ranked.loc[
            ranked[f"{select}_mean"].idxmax()
            if goal == "max"
            else ranked[f"{select}_mean"].idxmin()
        ]
        winners.setdefault(model, {})[run] = {
            "point": int(best["point"]),
            "values": {
                c.removeprefix("value:"): _plain(best[c])
                for c in value_columns
                if _present(best[c])
            },
            "select": select,
            "mean": float(best[f"{select}_mean"]),
            "std": _plain(best[f"{select}_std"]),
            "n": int(best[f"{select}_n"]),
        }
    summary["best"] = [
        winners.get(r.model, {}).get(r.run, {}).get("point") == r.point
        for r in summary.itertuples()
    ]
    return summary, winners


def _present(value: Any) -> bool:
    return not (isinstance(value, float) and math.isnan(value))


def _plain(value: Any) -> Any:
    """A JSON-able scalar (numpy types and NaN -> float/None)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def final_row(meta: Mapping[str, Any], metrics: pd.DataFrame) -> dict[str, Any]:
    """One sweep point's row of ``summarise``'s input: its key, values and last-epoch numbers."""
    run = meta["run"]
    row: dict[str, Any] = {
        "model": run["model_label"],
        "run": run["run"],
        "point": run["sweep"]["point"],
        "seed": run["seed"],
        "status": meta["status"],
        **{f"value:{k}": v for k, v in run["sweep"]["values"].items()},
    }
    last = metrics.sort_values("epoch").tail(1)
    for q in SUMMARISED:
        row[q] = float(last[q].iloc[0]) if len(last) and q in last else float("nan")
    return row


def swept_keys(summary: pd.DataFrame) -> list[str]:
    """The dotted keys a summary's points vary."""
    return [c.removeprefix("value:") for c in summary.columns if c.startswith("value:")]


def describe_values(values: Mapping[str, Any], order: Sequence[str] | None = None) -> str:
    """``lr=0.01, momentum=0.9``: the last part of each dotted key (enough within one run)."""
    keys = list(order or values)
    return ", ".join(
        f"{k.split('.')[-1]}={values[k]:g}"
        if isinstance(values[k], int | float)
        else f"{k.split('.')[-1]}={values[k]}"
        for k in keys
        if k in values
    )


def apply_winner(run: Mapping[str, Any], best: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A main run's resolved settings with its sweep winner's values (``best.json``), and a
    ``tuned_by`` record saying where they came from (kept in the run's metadata)."""
    winner = best.get("winners", {}).get(run["model_label"], {}).get(run["run"])
    if winner is None:
        raise ValueError(
            f"{source} has no winner for {run['model_label']}/{run['run']} "
            "(every point of its grid diverged?): cannot feed the run"
        )
    tuned = apply_values(run, winner["values"])
    tuned["tuned_by"] = {"file": str(source), **winner}
    return tuned
