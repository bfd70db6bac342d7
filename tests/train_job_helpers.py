"""A tiny training job on files (mnist10k sample, LeNet-5, a few steps) for the crash tests:
the dataset manifest, split and initial weights once per session, and the run's settings."""

from __future__ import annotations

import copy
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from minima import plan
from minima.data import manifest_root, prepare_dataset, write_manifest, write_split
from minima.train.job import RunFiles, write_initial_weights
from tests.workflow_helpers import REPO

# 64 training images, batch 16: 4 steps per epoch, 8 in all; checkpoints at steps 0, 3 (mid
# epoch 1), 4 and 8 (every epoch); resume states at step 3 and at each epoch's end.
TRAIN_SIZE, BATCH, EPOCHS = 64, 16, 2


def make_inputs(folder: Path) -> dict[str, Path]:
    """Manifest, split and seed-0 initial weights of a tiny mnist10k job under ``folder``."""
    manifest = folder / "data" / "mnist10k.json"
    prepared = prepare_dataset("mnist10k", folder / "data" / "raw")
    write_manifest(manifest, prepared)
    split = folder / "splits" / "e1_seed0.npz"
    write_split(
        "mnist10k",
        manifest_root(manifest),
        split,
        seed=0,
        val_size=32,
        train_size=TRAIN_SIZE,
        test_size=32,
    )
    init = folder / "init" / "seed0.safetensors"
    write_initial_weights(tiny_run()["model"], dataset="mnist10k", seed=0, path=init)
    return {"manifest": manifest, "split": split, "init_weights": init}


def tiny_run(**changes: Any) -> dict[str, Any]:
    """E1's SGD run on LeNet-5, as ``minima.plan.resolve_run`` gives it, shrunk to 8 steps."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["experiments"]["e1"]["dataset"] = "mnist10k"
    config["device"] = "cpu"
    run = plan.resolve_run(config, plan.RunKey("e1", "lenet5", "sgd", 0))
    run.update(
        epochs=EPOCHS,
        batch_size=BATCH,
        checkpoints={"steps": [0, 3], "every_epochs": 1},
        training={**run["training"], "progress_seconds": 0, "eval_batch_size": 32},
    )
    run["data"] = {**run["data"], "train_size": TRAIN_SIZE, "val_size": 32, "test_size": 32}
    for key, value in changes.items():
        run[key] = copy.deepcopy(value)
    return run


def run_files(folder: Path) -> RunFiles:
    """The `train` rule's outputs and work folder, under ``folder``."""
    return RunFiles(
        weights=folder / "final.safetensors",
        metrics=folder / "metrics.parquet",
        checkpoints=folder / "checkpoints",
        work_dir=folder / ".partial",
        steps=folder / "steps.parquet",
    )


def killed_in_child(job: Callable[[], object], fault: str, timeout: int = 120) -> int:
    """Run ``job`` in a forked child with ``MINIMA_FAULT=fault``; return the signal it died of.

    The child ends as a ``kill -9`` would end it (see ``minima.faults``); exit status 3 means
    the fault point was never reached, 4 that the job raised.
    """
    pid = os.fork()
    if pid == 0:  # child
        code = 4
        try:
            signal.alarm(timeout)
            os.environ["MINIMA_FAULT"] = fault
            job()
            code = 3
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        return os.WTERMSIG(status)
    raise AssertionError(f"fault {fault}: child exited with {os.WEXITSTATUS(status)}, not killed")
