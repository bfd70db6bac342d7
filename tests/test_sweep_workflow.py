"""Sweeps as workflow targets: E2's grid search planned on its own, E1's tiny lr sweep run end
to end into its figure and table, and a sweep's winner fed into a main run."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from minima.io import read_json
from tests.workflow_helpers import REPO, planned_jobs, snakemake

TINY = ("tests/configs/tiny.yaml",)


def _override(tmp_path, text: str) -> str:
    path = tmp_path / "override.yaml"
    path.write_text(text)
    return str(path)


def test_grid_search_is_a_target_of_its_own(tmp_path):
    jobs = planned_jobs(snakemake(tmp_path, "-n", "results/sweeps/e2/grid/best.json").stdout)
    # 5 values per hyper-parameter of each optimizer (their product) x 5 repeats; no main run
    assert jobs == {
        "download": 1,
        "split": 1,
        "init_weights": 5,
        "sweep_train": (5 + 25 + 5 + 125 + 125) * 5,
        "sweep_summary": 1,
    }
    everything = planned_jobs(snakemake(tmp_path, "-n").stdout)
    assert everything["sweep_train"] == 36  # E1's lr sweep is in rule all, the grid is not


def test_on_slurm_the_grid_search_packs_25_runs_per_job(tmp_path):
    profile = str(REPO / "profiles" / "slurm")
    out = snakemake(tmp_path, "-n", "--profile", profile, "results/sweeps/e2/grid/best.json")
    groups = out.stdout.count("Group job sweep_e2 ")
    assert groups == 57  # 1,425 short runs in 57 SLURM jobs, not 1,425


def test_feed_makes_the_main_run_wait_for_the_winner(tmp_path):
    feed = _override(tmp_path, "experiments: {e2: {sweeps: {grid: {feed: true}}}}\n")
    out = snakemake(
        tmp_path, "-n", "results/runs/e2/resnet18/sgd/seed0/final.json", configfiles=(feed,)
    ).stdout
    jobs = planned_jobs(out)
    assert jobs["sweep_summary"] == 1 and jobs["train"] == 1 and jobs["sweep_train"] == 1425
    assert "results/sweeps/e2/grid/best.json" in out


@pytest.mark.slow
def test_tiny_lr_sweep_builds_its_figure_table_and_feeds_a_run(tmp_path):
    targets = (
        "results/figures/e1/lr_sweep_acc.pdf",
        "results/tables/e1/lr_sweep.tex",
    )
    snakemake(tmp_path, *targets, configfiles=TINY, timeout=900)
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0
    summary = pd.read_parquet(tmp_path / "results/sweeps/e1/lr/summary.parquet")
    assert len(summary) == 5 and summary["seeds"].eq(1).all()
    best = read_json(tmp_path / "results/sweeps/e1/lr/best.json")
    sgd = summary[summary.run == "sgd"]
    winner = sgd.loc[sgd["val_acc_mean"].idxmax()]
    assert best["winners"]["lenet5"]["sgd"]["values"] == {
        "optimizer.lr": winner["value:optimizer.lr"]
    }
    # each point trained from the seed's shared initial weights, with its own lr
    point = read_json(tmp_path / "results/sweeps/e1/lr/lenet5/sgd/p1/seed0/final.json")
    assert point["run"]["optimizer"]["lr"] == 0.1 and point["run"]["sweep"]["point"] == 1
    assert point["init_weights"]["file"].endswith("results/runs/e1/lenet5/init/seed0.safetensors")
    assert not (tmp_path / "results/sweeps/e1/lr/lenet5/sgd/p1/seed0/final.safetensors").exists()

    feed = _override(
        tmp_path, yaml.safe_dump({"experiments": {"e1": {"sweeps": {"lr": {"feed": True}}}}})
    )
    snakemake(tmp_path, "results/runs/e1/lenet5/sgd/seed0/final.json", configfiles=(*TINY, feed))
    run = read_json(tmp_path / "results/runs/e1/lenet5/sgd/seed0/final.json")["run"]
    assert run["optimizer"]["lr"] == winner["value:optimizer.lr"]
    assert run["tuned_by"]["file"] == "results/sweeps/e1/lr/best.json"
