"""What Snakemake compares: a train job's params hold only result-changing settings, in
canonical order. Reordering keys or editing a setting of ``NON_RESULT_SETTINGS`` plans no job;
changing a learning rate plans that run and what depends on it."""

from __future__ import annotations

import os
import time

import pytest
import yaml

from minima import runs
from minima.plan import RunKey, resolve_run
from tests.test_partial_reruns import outputs, planned
from tests.workflow_helpers import REPO, snakemake

# An experiment defined wholly by the test's config file, so that its key order is the file's
# (an override of config.yaml's own experiments keeps config.yaml's order).
EXPERIMENT = {
    "dataset": "mnist10k",
    "data": {
        "split_seed": 0,
        "val_size": 100,
        "train_size": 200,
        "test_size": 100,
        "std_scale": 1.0,
        "augment": "none",
    },
    "models": [{"name": "lenet5", "activation": "relu", "pool": "max"}],
    "seeds": [0],
    "defaults": {"epochs": 1, "batch_size": 64, "schedule": {"name": "constant"}},
    "runs": {
        "sgd": {"optimizer": {"name": "sgd", "lr": 0.1, "momentum": 0.9}},
        "adam": {"optimizer": {"name": "adam", "lr": 0.001, "betas": [0.9, 0.999]}},
        "sgd_from_adam": {"optimizer": {"name": "sgd", "lr": 0.01}, "init_from": "adam"},
    },
    "analyses": {  # one analysis job, so the hessian settings reach a rule's params
        "spectrum": {
            "runs": ["adam"],
            "examples": 100,
            "subset_seed": 0,
            "top_k": 1,
            "trace_probes": 0,
            "density": None,
            "seed": 0,
        }
    },
}
BASE = {
    "build_experiments": ["rt"],
    "device": "cpu",
    "training": {"progress_seconds": 0, "eval_batch_size": 500},
    "experiments": {"rt": EXPERIMENT},
}


def reversed_keys(value):
    """``value`` with every mapping's keys in reverse order (lists keep theirs)."""
    if isinstance(value, dict):
        return {key: reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [reversed_keys(item) for item in value]
    return value


def changed(dotted: str, value) -> dict:
    config = yaml.safe_load(yaml.safe_dump(BASE))
    node = config
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return config


def write(path, config) -> str:
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A workdir where the rt experiment looks finished (``--touch`` records params)."""
    workdir = tmp_path_factory.mktemp("params")
    config = write(workdir / "base.yaml", BASE)
    touched = snakemake(workdir, "--touch", configfiles=(config,))
    now = time.time()
    for name in outputs(touched.stdout + touched.stderr):
        path = workdir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch() if path.suffix else path.mkdir(exist_ok=True)
        os.utime(path, (now, now))
    assert planned(snakemake(workdir, "-n", configfiles=(config,)).stdout) == []
    return workdir


def test_every_non_result_setting_has_its_reason_and_reaches_training():
    assert set(runs.RUNTIME_TRAINING_KEYS) == {
        "progress_seconds",
        "eval_batch_size",
        "resume_every_epochs",
    }
    assert all(len(reason) > 20 for reason in runs.NON_RESULT_SETTINGS.values())
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    run = resolve_run(config, RunKey("e1", "lenet5", "adam", 0))
    param = runs.result_settings(run)
    assert not set(runs.RUNTIME_TRAINING_KEYS) & set(param["training"])
    assert param["training"]["grad_stats_every"] == config["training"]["grad_stats_every"]
    assert list(param) == sorted(param) and list(param["optimizer"]) == sorted(run["optimizer"])
    # the job gets the full run back, equal to the resolved one
    assert runs.with_runtime_settings(param, config) == runs.canonical(run)
    # the analyses' memory/speed settings likewise: out of the param, back in the job
    assert set(runs.RUNTIME_HESSIAN_KEYS) == {
        "batch_size",
        "chunk_size",
        "hvp_method",
        "cache_graph",
    }
    keys = ("backend", "dtype", "batch_size", "hvp_method", "cache_graph", "chunk_size")
    hessian = runs.result_hessian(config, keys)
    assert list(hessian) == ["backend", "dtype"]
    full = runs.with_runtime_hessian(hessian, config, 2000)
    assert {key: full[key] for key in keys} == {key: config["hessian"][key] for key in keys}
    assert full["mem_mb"] == 2000


@pytest.mark.parametrize(
    "name, config",
    [
        ("keys in reverse order", reversed_keys(BASE)),
        ("training.progress_seconds", changed("training.progress_seconds", 60)),
        ("training.eval_batch_size", changed("training.eval_batch_size", 37)),
        ("training.resume_every_epochs", changed("training.resume_every_epochs", 5)),
        ("resources.train.threads", changed("resources.train.threads", 3)),
        ("resources.analysis.threads", changed("resources.analysis.threads", 3)),
        ("hessian.batch_size", changed("hessian.batch_size", 37)),
        ("hessian.chunk_size", changed("hessian.chunk_size", 3)),
        ("hessian.hvp_method", changed("hessian.hvp_method", "double_backward")),
        ("hessian.cache_graph", changed("hessian.cache_graph", False)),
    ],
)
def test_plans_no_job(finished, tmp_path, name, config):
    result = snakemake(finished, "-n", configfiles=(write(tmp_path / "c.yaml", config),))
    assert planned(result.stdout) == [], name


def test_changed_lr_plans_that_run_and_its_dependents_only(finished, tmp_path):
    config = changed("experiments.rt.runs.adam.optimizer.lr", 0.002)
    jobs = planned(
        snakemake(finished, "-n", configfiles=(write(tmp_path / "c.yaml", config),)).stdout
    )
    jobs = [job for job in jobs if job["rule"] != "all"]
    assert sorted((job["rule"], job["wildcards"]) for job in jobs) == [
        ("spectrum", "exp=rt, model=lenet5, run=adam, seed=0"),
        ("train", "exp=rt, model=lenet5, run=adam, seed=0"),
        ("train", "exp=rt, model=lenet5, run=sgd_from_adam, seed=0"),
    ]
    reasons = {
        job["wildcards"].split("run=")[1]: job["reason"] for job in jobs if job["rule"] == "train"
    }
    assert reasons["adam, seed=0"].startswith("Params have changed")
    assert "Input files updated by another job" in reasons["sgd_from_adam, seed=0"]
