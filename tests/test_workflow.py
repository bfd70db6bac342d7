"""The Snakemake workflow itself: plans, lint, bad config, and a tiny end-to-end run."""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from safetensors.torch import load_file

from tests.workflow_helpers import REPO, planned_jobs, snakemake


def test_dry_run_plans_every_training_job_of_the_paper(tmp_path):
    result = snakemake(tmp_path, "-n")
    jobs = planned_jobs(result.stdout)
    assert jobs["train"] == 12 + 50 + 5 + 24 + 1 + 1  # E3: 5 runs (one normalization run)
    assert jobs["download"] == 2  # mnist and cifar10
    assert jobs["split"] == 6  # one per experiment
    assert jobs["init_weights"] == 3 + 10 + 1 + 3 * 2 + 1 + 1  # one per (experiment, model, seed)


def test_gpu_paper_profile_plans_full_mnist_and_synthetic_cifar(tmp_path):
    """profiles/paper-gpu: E1, E2, E5 exactly as config.yaml (the spec's size) on MNIST from
    data_root, E3/E4 on generated CIFAR-format images, E5's CIFAR-10 setting left out."""
    from snakemake.utils import update_config

    base = yaml.safe_load((REPO / "config.yaml").read_text())
    merged = copy.deepcopy(base)
    update_config(merged, yaml.safe_load((REPO / "config" / "paper_gpu.yaml").read_text()))
    for exp in ("e1", "e2", "e5"):
        assert merged["experiments"][exp] == base["experiments"][exp]
    assert {merged["experiments"][e]["dataset"] for e in ("e3", "e4")} == {"cifar10_synthetic"}
    assert merged["download"] is False and merged["build_experiments"] == [
        "e1",
        "e2",
        "e5",
        "e3",
        "e4",
    ]
    result = snakemake(
        tmp_path,
        "-n",
        "--profile",
        str(REPO / "profiles" / "paper-gpu"),
        "all",
        "results/paper/paper.pdf",
        configfiles=("config/paper_gpu.yaml",),
    )
    jobs = planned_jobs(result.stdout)
    assert jobs["download"] == 1 and jobs["synthetic_cifar10"] == 1  # MNIST; no CIFAR-10
    # E1 12, E2 50, E5 1, E3 5 (the pretrained pair skipped), E4 2 models x 4 x 2 seeds
    assert jobs["train"] == 12 + 50 + 1 + 5 + 16
    assert jobs["sweep_train"] == 36 and jobs["paper"] == 1
    assert jobs["paper_section"] == 5


def test_cross_initialized_run_waits_for_its_source(tmp_path):
    target = "results/runs/e3/resnet18/sgd_from_adahessian/seed0/final.safetensors"
    result = snakemake(tmp_path, "-n", target)
    trained = set(re.findall(r"run=([\w.+-]+)", result.stdout))
    assert trained == {"adahessian", "sgd_from_adahessian"}


def test_bad_config_fails_at_once_naming_the_key(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiments: {e1: {seeds: [0], defaults: {epochs: 1, batch_sise: 3}}}\n")
    result = snakemake(
        tmp_path, "-n", "--configfile", str(REPO / "config.yaml"), str(bad), check=False
    )
    assert result.returncode != 0
    assert "batch_sise" in result.stdout + result.stderr


def test_lint_and_format():
    for command in (
        [sys.executable, "-m", "ruff", "check", "."],
        [sys.executable, "-m", "ruff", "format", "--check", "."],
        [sys.executable, "-m", "snakefmt", "--check", "Snakefile", "rules"],
    ):
        result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_snakemake_lint_is_clean(tmp_path):
    result = snakemake(tmp_path, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


@pytest.mark.slow
def test_tiny_workflow_end_to_end(tiny_built):
    tmp_path = tiny_built  # the whole tiny workflow, built once for the session (conftest)
    runs = tmp_path / "results" / "runs"
    for run in ("sgd", "adagrad", "adam", "adahessian"):
        folder = runs / "e1" / "lenet5" / run / "seed0"
        metrics = pd.read_parquet(folder / "metrics.parquet")
        assert list(metrics["epoch"]) == [1]
        assert metrics["train_loss"].notna().all()
        assert metrics["train_eval_examples"].tolist() == [64]  # tiny: a fixed 64-image subset
        assert metrics["full_grad_norm"].gt(0).all()
        steps = pd.read_parquet(folder / "steps.parquet")  # 8 steps, tiny step_stats_every: 2
        assert steps["step"].tolist() == [1, 3, 5, 7] and steps["grad_norm"].gt(0).all()
        meta = json.loads((folder / "final.json").read_text())
        assert meta["status"] == "completed"
        assert meta["run"]["optimizer"]["name"] == run
        assert meta["versions"]["torch"] and meta["hardware"]["device"] == "cpu"
        assert len(load_file(str(folder / "final.safetensors"))) > 0
        checkpoints = sorted(p.name for p in (folder / "checkpoints").glob("*.safetensors"))
        assert checkpoints == ["step0.safetensors", "step4.safetensors", "step8.safetensors"]
        assert not (folder / ".partial").exists()
    for run in ("sgd", "sgd_momentum", "adam", "adahessian", "hybrid"):
        assert (runs / "e2" / "resnet18" / run / "seed0" / "final.safetensors").exists()
    # every optimizer of a seed started from the same initial weights
    inits = {
        json.loads((runs / "e1" / "lenet5" / r / "seed0" / "final.json").read_text())[
            "init_weights"
        ]["sha256"]
        for r in ("sgd", "adam")
    }
    assert len(inits) == 1

    # every JSON record is strict JSON (no bare NaN/Infinity), and no temporary file is left
    def refuse(constant: str) -> None:
        raise ValueError(f"not strict JSON: {constant}")

    records = list((tmp_path / "results").rglob("*.json"))
    assert any(path.name == "final.json" for path in records)
    for path in records:
        json.loads(path.read_text(), parse_constant=refuse)
    assert not list((tmp_path / "results").rglob("*.tmp"))
    # nothing left to do: a second invocation plans no job
    again = snakemake(tmp_path, "-n", configfiles=("tests/configs/tiny.yaml",))
    assert "Nothing to be done" in again.stdout + again.stderr
