"""Per-step curves (E1's gradient norm): a minibatch quantity every N steps, and beside it a
per-epoch quantity at each epoch's last step.

Drawn from the runs' ``steps.parquet`` (one row every ``training.step_stats_every`` steps,
:class:`minima.train.gradstats.StepRecorder`) and ``metrics.parquet`` (one row per epoch). One
seed is drawn (the entry's ``seed``, null: the lowest): a mean over seeds would smooth away
the step-to-step oscillation the figure is there to show.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from minima.plan import ConfigError
from minima.report import style
from minima.report.figures import _PlainLogFormatter
from minima.report.kinds import Inputs, Kind
from minima.report.kinds.paths import drawn_seed, key_of, run_file, shown_keys
from minima.report.metrics import EPOCH_METRICS, STEP_METRICS
from minima.train.options import takes_full_gradient


def _keys(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]):
    return shown_keys(config, exp, {**spec, "seed": drawn_seed(config, exp, spec)})


def _inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
    keys = _keys(config, exp, spec)
    inputs = {"steps": [run_file(k, "steps.parquet") for k in keys]}
    if spec.get("epoch_metric"):
        inputs["metrics"] = [run_file(k, "metrics.parquet") for k in keys]
    return inputs


def _check(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], where: str) -> None:
    name = spec.get("metric")
    if name not in STEP_METRICS:
        raise ConfigError(f"{where}.metric is {name!r}; allowed: {sorted(STEP_METRICS)}")
    epoch_metric = spec.get("epoch_metric")
    if epoch_metric is not None and epoch_metric not in EPOCH_METRICS:
        raise ConfigError(
            f"{where}.epoch_metric is {epoch_metric!r}; allowed: null or {sorted(EPOCH_METRICS)}"
        )
    if epoch_metric == "full_grad_norm" and not takes_full_gradient(
        config["training"]["full_grad_norm"], exp
    ):
        raise ConfigError(
            f"{where}.epoch_metric is full_grad_norm, but training.full_grad_norm "
            f"({config['training']['full_grad_norm']}) does not cover {exp}: add it there"
        )
    seeds = list(config["experiments"][exp]["seeds"])
    if spec.get("seed") is not None and spec["seed"] not in seeds:
        raise ConfigError(
            f"{where}.seed is {spec['seed']}; allowed: the experiment's seeds {seeds}"
        )


def _resolve(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    """The entry with the recording interval and the seed drawn (the legend says both)."""
    return {
        **spec,
        "every": int(config["training"]["step_stats_every"]),
        "seed": drawn_seed(config, exp, spec),
    }


def _read(paths: list[str]) -> pd.DataFrame:
    frames = []
    for path in paths:
        key = key_of(path)
        frame = pd.read_parquet(path)
        frames.append(frame.assign(model=key.model, run=key.run, seed=key.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def draw_steps(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Figure:
    """A row per (model, run): the step quantity (solid) vs iteration, the epoch quantity
    (dashed, markers) at each epoch's last step; shared axes, log y if ``log_y``."""
    steps = _read(inputs["steps"])
    epochs = _read(inputs.get("metrics", []))
    step_info = STEP_METRICS[spec["metric"]]
    epoch_metric = spec.get("epoch_metric")
    rows = [
        (m, r)
        for m in spec["models"]
        for r in spec["runs"]
        if not steps.empty and ((steps["model"] == m) & (steps["run"] == r)).any()
    ]
    if not rows:
        raise ValueError(f"no step records of runs {spec['runs']} to draw")
    models = {m for m, _ in rows}
    row_height = min(1.7, (style.MAX_HEIGHT - 0.6) / len(rows))
    with style.styled():
        fig = Figure(
            figsize=(4.6, min(style.MAX_HEIGHT, len(rows) * row_height + 0.9)),
            layout="constrained",
        )
        axes = fig.subplots(len(rows), 1, squeeze=False, sharex=True, sharey=True)[:, 0]
        for ax, (model, run) in zip(axes, rows, strict=True):
            color = look.color(run)
            mine = steps[(steps["model"] == model) & (steps["run"] == run)].sort_values("step")
            ax.plot(
                mine["step"].to_numpy(dtype=float),
                mine[spec["metric"]].to_numpy(dtype=float) * step_info.scale,
                color=color,
                linewidth=0.8,
                marker="o" if len(mine) <= 6 else None,
                markersize=3,
            )
            if epoch_metric and not epochs.empty:
                per_epoch = epochs[(epochs["model"] == model) & (epochs["run"] == run)]
                per_epoch = per_epoch.sort_values("step")
                ax.plot(
                    per_epoch["step"].to_numpy(dtype=float),
                    per_epoch[epoch_metric].to_numpy(dtype=float)
                    * EPOCH_METRICS[epoch_metric].scale,
                    color="black",
                    linestyle="--",
                    marker="o",
                    markersize=3,
                )
            if spec.get("log_y", False):  # plain tick labels (0.3, 2), as the epoch curves
                ax.set_yscale("log")
                ax.yaxis.set_major_formatter(_PlainLogFormatter())
                ax.yaxis.set_minor_formatter(_PlainLogFormatter(minor_thresholds=(1, 0.4)))
            title = look.name(run) if len(models) == 1 else f"{look.model(model)}, {look.name(run)}"
            ax.set_title(title, loc="left", color=color, fontweight="bold")
            ax.set_ylabel(step_info.symbol)
        axes[-1].set_xlabel("iteration")
        axes[-1].xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        handles = [
            Line2D(
                [],
                [],
                color="0.3",
                linewidth=0.8,
                label=f"{step_info.label}, every {spec['every']} steps",
            )
        ]
        if epoch_metric:
            handles.append(
                Line2D(
                    [],
                    [],
                    color="black",
                    linestyle="--",
                    marker="o",
                    markersize=3,
                    label=f"{EPOCH_METRICS[epoch_metric].label}, after each epoch",
                )
            )
        fig.legend(handles=handles, loc="outside lower center", ncols=1)
        fig.suptitle(f"seed {spec['seed']}", fontsize="small")
    return fig


STEPS = Kind(inputs=_inputs, check=_check, draw=draw_steps, resolve=_resolve)
