"""Bad config fails at start-up, before anything is written: each case names the key path
and the allowed values (config.yaml + tests/configs/tiny.yaml, one value changed)."""

from __future__ import annotations

import copy

import pytest
import yaml

from minima import plan
from minima.run_checks import check_device
from tests.workflow_helpers import REPO, snakemake

NAN, INF = float("nan"), float("inf")
E1 = "experiments.e1"
E2 = "experiments.e2"
SWEEP = f"{E1}.sweeps.lr"


@pytest.fixture(scope="module")
def config() -> dict:
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    return plan.deep_merge(base, yaml.safe_load((REPO / "tests/configs/tiny.yaml").read_text()))


def edit(config: dict, dotted: str, value) -> dict:
    """A copy of ``config`` with ``dotted`` (keys joined by '/') set to ``value``."""
    bad = copy.deepcopy(config)
    *parents, last = dotted.split("/")
    node = bad
    for part in parents:
        node = node[part]
    node[last] = value
    return bad


SAM_RUN = {"optimizer": {"name": "sam", "rho": 0.0, "base": {"name": "sgd", "lr": 0.1}}}
# (key set, value, words the message must hold). tiny.yaml: E1 trains on 512 mnist10k
# images (val 200, test 200), batch 64, one epoch = 8 steps; E2 on 200 (val 100) with a hybrid.
CASES = {
    "lr negative": (
        "experiments/e1/runs/sgd/optimizer/lr",
        -0.1,
        f"{E1}.runs.sgd.optimizer.lr is -0.1; allowed: a finite number > 0",
    ),
    "lr zero": ("experiments/e1/runs/sgd/optimizer/lr", 0.0, "lr is 0.0; allowed: a finite"),
    "lr nan": ("experiments/e1/runs/adam/optimizer/lr", NAN, "lr is nan; allowed: a finite"),
    "lr inf": ("experiments/e1/runs/adagrad/optimizer/lr", INF, "lr is inf; allowed: a finite"),
    "hybrid's sgd lr": (
        "experiments/e2/runs/hybrid/optimizer/sgd/lr",
        -1.0,
        f"{E2}.runs.hybrid.optimizer.sgd.lr is -1.0; allowed: a finite number > 0",
    ),
    "beta2 = 1": (
        "experiments/e1/runs/adam/optimizer/betas",
        [0.9, 1.0],
        f"{E1}.runs.adam.optimizer.betas is [0.9, 1.0]; allowed: two numbers in [0, 1)",
    ),
    "beta1 < 0": (
        "experiments/e1/runs/adahessian/optimizer/betas",
        [-0.1, 0.999],
        f"{E1}.runs.adahessian.optimizer.betas is [-0.1, 0.999]; allowed: two numbers in [0, 1)",
    ),
    "momentum = 1": (
        "experiments/e1/runs/sgd/optimizer/momentum",
        1.0,
        f"{E1}.runs.sgd.optimizer.momentum is 1.0; allowed: a number in [0, 1)",
    ),
    "weight decay < 0": (
        "experiments/e1/runs/sgd/optimizer/weight_decay",
        -1e-4,
        f"{E1}.runs.sgd.optimizer.weight_decay is -0.0001; allowed: a finite number >= 0",
    ),
    "sam rho = 0": (
        "experiments/e1/runs/sam_sgd",
        SAM_RUN,
        f"{E1}.runs.sam_sgd.optimizer.rho is 0.0; allowed: a finite number > 0",
    ),
    "batch larger than the split": (
        "experiments/e1/defaults/batch_size",
        1000,
        f"{E1}.runs.sgd.batch_size is 1000; allowed: at most the 512 images of the training",
    ),
    "train_size beyond the pool": (
        "experiments/e1/data/train_size",
        20000,
        f"{E1}.data.train_size is 20000; allowed: at most 9600",
    ),
    "test_size beyond the pool": (
        "experiments/e1/data/test_size",
        10001,
        f"{E1}.data.test_size is 10001; allowed: at most 10000",
    ),
    "mnist10k without test_size": (
        "experiments/e1/data/test_size",
        None,
        f"{E1}.data.test_size is null; mnist10k has one pool of 10000 images",
    ),
    "synthetic val beyond its pool": (
        "synthetic_cifar10/n_train",
        150,
        f"{E2}.data.train_size is 200; allowed: at most 50 (cifar10_synthetic's pools",
    ),
    "val_size 0 with a hybrid": (
        "experiments/e2/data/val_size",
        0,
        f"{E2}.data.val_size is 0, but {E2}.runs.hybrid (hybrid) switches on the validation "
        "loss; allowed: val_size >= 1",
    ),
    "val_size 0 with a sweep selecting val_acc": (
        "experiments/e1/data/val_size",
        0,
        f"{SWEEP}.select is 'val_acc', but {E1}.data.val_size is 0; allowed: val_size >= 1",
    ),
    "checkpoint beyond the run": (
        "experiments/e1/defaults/checkpoints/steps",
        [0, 4, 100],
        f"{E1}.runs.sgd.checkpoints.steps names [100]; allowed: steps in [0, 8]",
    ),
    "sweep key that does not reach training": (
        "experiments/e1/sweeps/lr/grid/sgd",
        {"data.train_size": [100, 200]},
        f"{SWEEP}.grid.sgd: 'data.train_size' does not reach the run's training",
    ),
    "sweep epochs 0": (
        "experiments/e1/sweeps/lr/grid/sgd",
        {"epochs": [0]},
        f"{SWEEP}.grid.sgd at {{'epochs': 0}}.epochs is 0; allowed: an integer >= 1",
    ),
    "sweep point with a negative lr": (
        "experiments/e1/sweeps/lr/grid/sgd",
        {"optimizer.lr": [0.1, -1.0]},
        f"{SWEEP}.grid.sgd at {{'optimizer.lr': -1.0}}.optimizer.lr is -1.0; allowed: a finite",
    ),
    "sweep point with a nan lr": (
        "experiments/e1/sweeps/lr/grid/adam",
        {"optimizer.lr": [0.001, NAN]},
        f"{SWEEP}.grid.adam at {{'optimizer.lr': nan}}.optimizer.lr is nan; allowed: a finite",
    ),
    "sweep point batch larger than the split": (
        "experiments/e1/sweeps/lr/grid/adam",
        {"batch_size": [64, 4096]},
        f"{SWEEP}.grid.adam at {{'batch_size': 4096}}.batch_size is 4096; allowed: at most the 512",
    ),
    "device cuda:7 without a GPU": (
        "device",
        "cuda:7",
        "device is 'cuda:7', but torch sees no GPU here; allowed: auto, cpu",
    ),
    "device not a device": ("device", "gpu0", "device is 'gpu0'; allowed: auto, cpu, cuda, cuda:N"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_fails_at_start_up_naming_key_and_allowed(config, case, tmp_path, monkeypatch):
    dotted, value, message = CASES[case]
    bad = edit(config, dotted, value)
    if case == "synthetic val beyond its pool":
        bad["experiments"]["e2"]["dataset"] = "cifar10_synthetic"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(plan.ConfigError) as error:
        check_device(bad["device"], 0)  # start-up's order (rules/common.smk), on a CPU machine
        plan.check_plan(bad)
    assert message in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_base_config_passes_and_a_present_gpu_is_accepted(config):
    plan.check_plan(config)
    check_device("cuda:1", 2)
    check_device("cuda", 0)  # the job's own GPU: checked by the job where it runs
    with pytest.raises(plan.ConfigError, match=r"torch sees GPUs 0\.\.1 here"):
        check_device("cuda:2", 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, message",
    [
        ("device: cuda:7\n", "device is 'cuda:7', but torch sees no GPU here"),
        (
            "experiments: {e1: {runs: {adam: {optimizer: {name: adam, lr: .nan}}}}}\n",
            "experiments.e1.runs.adam.optimizer.lr is nan; allowed: a finite number > 0",
        ),
        (
            "experiments: {e1: {sweeps: {lr: {grid: {sgd: {data.train_size: [100, 200]}}}}}}\n",
            "'data.train_size' does not reach the run's training",
        ),
    ],
)
def test_snakemake_stops_before_writing_anything(tmp_path, override, message):
    (tmp_path / "bad.yaml").write_text(override)
    result = snakemake(
        tmp_path,
        configfiles=("tests/configs/tiny.yaml", str(tmp_path / "bad.yaml")),
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stdout + result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "logs").exists()
