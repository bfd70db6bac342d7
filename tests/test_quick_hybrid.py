"""The quick profile's hybrid must exercise both of its phases: trained exactly as the quick
profile resolves it (config.yaml + config/quick.yaml, the embedded mnist10k sample), it switches
from SGD-momentum to AdaHessian before its last epoch, as its metrics record."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from minima import plan
from minima.data import prepare_dataset, write_manifest
from minima.data.split_job import write_split
from minima.train.job import RunFiles, train_run, write_initial_weights
from tests.workflow_helpers import REPO


@pytest.mark.slow
def test_quick_hybrid_switches_before_its_last_epoch(tmp_path):
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config = plan.deep_merge(config, yaml.safe_load((REPO / "config/quick.yaml").read_text()))
    run = plan.resolve_run(config, plan.RunKey("e2", "resnet18", "hybrid", 0))
    assert run["dataset"] == "mnist10k" and run["optimizer"]["name"] == "hybrid"
    raw, data = tmp_path / "raw", run["data"]
    write_manifest(tmp_path / "manifest.json", prepare_dataset("mnist10k", raw))
    split = tmp_path / "split.npz"
    write_split(
        "mnist10k",
        raw,
        split,
        seed=data["split_seed"],
        val_size=data["val_size"],
        train_size=data["train_size"],
        test_size=data["test_size"],
    )
    init = tmp_path / "init.safetensors"
    write_initial_weights(run["model"], dataset="mnist10k", seed=0, path=init)
    files = RunFiles(
        weights=tmp_path / "final.safetensors",
        metrics=tmp_path / "metrics.parquet",
        checkpoints=tmp_path / "checkpoints",
        work_dir=tmp_path / "work",
    )
    final = train_run(
        run, manifest=tmp_path / "manifest.json", split=split, init_weights=init, files=files
    )
    metrics = pd.read_parquet(files.metrics)
    assert list(metrics["epoch"]) == list(range(1, run["epochs"] + 1))
    switched = metrics[metrics["optimizer_switch"] != ""]
    assert len(switched) == 1, metrics[["epoch", "val_loss", "optimizer_switch"]]
    epoch = int(switched["epoch"].iloc[0])
    assert final["switch_epoch"] == epoch < run["epochs"]  # AdaHessian trains the last epochs
    # the rule: the first epoch whose validation loss is below tl
    below = metrics[metrics["val_loss"] < run["optimizer"]["tl"]]
    assert int(below["epoch"].iloc[0]) == epoch
