"""The ``steps`` figure kind (E1's gradient norm): which run files it reads, what it refuses,
and that the drawn lines are the step records and the per-epoch values of the drawn seed."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from minima.plan import ConfigError
from minima.report import spec as paper_spec
from minima.report.figures import Look
from minima.report.kinds import figure_kind
from minima.train.job import STEP_COLUMNS
from tests.workflow_helpers import REPO

RUNS = ["sgd", "adam"]
STEPS_PER_EPOCH, EPOCHS, EVERY = 20, 3, 4


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _entry(config: dict, **changes) -> dict:
    entry = copy.deepcopy(config["experiments"]["e1"]["figures"]["grad_norm"])
    entry.update(changes)
    return paper_spec.with_order(config, "e1", entry)


def test_paper_config_draws_the_gradient_norm_from_the_step_records(config):
    paper_spec.check_paper(config)
    entry = _entry(config)
    assert entry["kind"] == "steps"
    assert "grad_norm" in paper_spec.analysis_names(config, "figures")
    inputs = figure_kind("steps").inputs(config, "e1", entry)
    runs = config["experiments"]["e1"]["runs"]
    assert inputs == {
        "steps": [f"results/runs/e1/lenet5/{r}/seed0/steps.parquet" for r in runs],
        "metrics": [f"results/runs/e1/lenet5/{r}/seed0/metrics.parquet" for r in runs],
    }
    spec = figure_kind("steps").job_spec(config, "e1", entry)
    assert spec["every"] == config["training"]["step_stats_every"] and spec["seed"] == 0


def test_without_an_epoch_metric_only_the_step_records_are_read(config):
    entry = _entry(config, epoch_metric=None, seed=2)
    inputs = figure_kind("steps").inputs(config, "e1", entry)
    assert list(inputs) == ["steps"]
    assert all("/seed2/" in p for p in inputs["steps"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"metric": "val_loss"}, r"figures\.grad_norm\.metric is 'val_loss'; allowed: \["),
        ({"epoch_metric": "nope"}, r"figures\.grad_norm\.epoch_metric is 'nope'; allowed: null"),
        ({"seed": 7}, r"figures\.grad_norm\.seed is 7; allowed: the experiment's seeds"),
    ],
)
def test_bad_entry_is_refused_naming_the_key(config, changes, message):
    bad = copy.deepcopy(config)
    bad["experiments"]["e1"]["figures"]["grad_norm"].update(changes)
    with pytest.raises(ConfigError, match=message):
        paper_spec.check_paper(bad)


@pytest.mark.parametrize("setting", [False, ["e2"]])
def test_full_gradient_line_needs_the_experiment_in_training_full_grad_norm(config, setting):
    bad = copy.deepcopy(config)
    bad["training"]["full_grad_norm"] = setting
    with pytest.raises(ConfigError, match=r"does not cover e1: add it there"):
        paper_spec.check_paper(bad)
    bad["training"]["full_grad_norm"] = True
    paper_spec.check_paper(bad)


def _write_run(root: Path, run: int, name: str) -> tuple[str, str, pd.DataFrame, pd.DataFrame]:
    """steps.parquet and metrics.parquet of one run, in the train rule's layout and columns."""
    rng = np.random.default_rng(run)
    folder = root / f"results/runs/e1/lenet5/{name}/seed0"
    folder.mkdir(parents=True)
    steps = np.arange(1, STEPS_PER_EPOCH * EPOCHS + 1, EVERY)
    norm = rng.uniform(0.1, 3.0, len(steps))
    step_rows = pd.DataFrame(
        {
            "experiment": "e1",
            "model": "lenet5",
            "run": name,
            "seed": 0,
            "step": steps,
            "epoch": (steps - 1) // STEPS_PER_EPOCH + 1,
            "grad_norm": norm,
            "sam_sharpness": 0.05 * norm,
            "batch_loss": rng.uniform(0.1, 2.0, len(steps)),
            "lr": 0.1,
        }
    )[list(STEP_COLUMNS)]
    epochs = pd.DataFrame(
        {
            "epoch": np.arange(1, EPOCHS + 1),
            "step": STEPS_PER_EPOCH * np.arange(1, EPOCHS + 1),
            "full_grad_norm": rng.uniform(0.01, 0.5, EPOCHS),
        }
    )
    step_rows.to_parquet(folder / "steps.parquet")
    epochs.to_parquet(folder / "metrics.parquet")
    return str(folder / "steps.parquet"), str(folder / "metrics.parquet"), step_rows, epochs


def test_lines_are_the_step_records_and_the_epoch_values(tmp_path):
    written = [_write_run(tmp_path, i, run) for i, run in enumerate(RUNS)]
    inputs = {"steps": [w[0] for w in written], "metrics": [w[1] for w in written]}
    spec = {
        "kind": "steps",
        "metric": "grad_norm",
        "epoch_metric": "full_grad_norm",
        "log_y": True,
        "runs": RUNS,
        "models": ["lenet5"],
        "every": EVERY,
        "seed": 0,
    }
    fig = figure_kind("steps").draw(spec, inputs, Look())
    axes = [ax for ax in fig.axes if ax.get_lines()]
    assert len(axes) == len(RUNS)  # a row per run
    for ax, (_, _, step_rows, epochs) in zip(axes, written, strict=True):
        minibatch, full = ax.get_lines()
        np.testing.assert_array_equal(minibatch.get_xdata(), step_rows["step"])
        np.testing.assert_array_equal(minibatch.get_ydata(), step_rows["grad_norm"])
        np.testing.assert_array_equal(full.get_xdata(), epochs["step"])
        np.testing.assert_array_equal(full.get_ydata(), epochs["full_grad_norm"])
        assert full.get_linestyle() == "--"
        assert ax.get_yscale() == "log"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0].endswith(f"every {EVERY} steps") and legend[1].endswith("after each epoch")


def test_nothing_recorded_is_an_error(tmp_path):
    folder = tmp_path / "results/runs/e1/lenet5/sgd/seed0"
    folder.mkdir(parents=True)
    pd.DataFrame(columns=list(STEP_COLUMNS)).to_parquet(folder / "steps.parquet")
    spec = {"kind": "steps", "metric": "grad_norm", "runs": ["sgd"], "models": ["lenet5"]}
    spec.update(every=10, seed=0)
    with pytest.raises(ValueError, match="no step records"):
        figure_kind("steps").draw(spec, {"steps": [str(folder / "steps.parquet")]}, Look())
