"""Checks of one resolved run (a main run or a sweep point), before any job starts.

Everything that can be known from the config and the dataset registry is checked here, at
start-up, so a bad value never costs a data download, a split or an hour of training first.
Each message names the key path and what is allowed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from minima.data.registry import pool_sizes
from minima.runs import ConfigError

# Optimizer numbers and their allowed ranges: (test, words), at any depth of a spec (the
# hybrid's sgd/adahessian parts, SAM's base optimizer).
_OPTIMIZER_RANGES = {
    "lr": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "momentum": (lambda v: 0 <= v < 1, "a number in [0, 1)"),
    "weight_decay": (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "rho": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
}
DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda|cuda:[0-9]+)$")


def check_run_settings(where: str, settings: Mapping[str, Any]) -> None:
    """The optimizer and schedule of resolved run settings are valid; ConfigError at ``where``."""
    from minima.optim import resolve_spec, validate_schedule

    try:
        spec = resolve_spec(dict(settings["optimizer"]))
    except ValueError as error:
        raise ConfigError(f"{where}.optimizer: {error}") from None
    _check_optimizer_numbers(f"{where}.optimizer", spec)
    try:
        validate_schedule(dict(settings["schedule"]))
    except ValueError as error:
        raise ConfigError(f"{where}.schedule: {error}") from None


def _check_optimizer_numbers(where: str, spec: Mapping[str, Any]) -> None:
    for key, value in spec.items():
        if isinstance(value, Mapping):
            _check_optimizer_numbers(f"{where}.{key}", value)
        elif key in _OPTIMIZER_RANGES:
            test, allowed = _OPTIMIZER_RANGES[key]
            if not test(float(value)):
                raise ConfigError(f"{where}.{key} is {value!r}; allowed: {allowed}")
        elif key == "betas" and not all(0 <= float(b) < 1 for b in value):
            raise ConfigError(f"{where}.betas is {list(value)!r}; allowed: two numbers in [0, 1)")


def split_sizes(config: Mapping[str, Any], experiment: str) -> dict[str, int]:
    """Train/val/test sizes of an experiment's split, from the dataset registry's pool sizes
    (no data read); ConfigError naming the key where a size exceeds what its pool has."""
    entry = config["experiments"][experiment]
    data = entry["data"]
    where = f"experiments.{experiment}.data"
    pools = pool_sizes(entry["dataset"], config.get("synthetic_cifar10"))
    val, train, test = data["val_size"], data.get("train_size"), data.get("test_size")
    if "all" in pools:
        n = pools["all"]
        if test is None:
            raise ConfigError(
                f"{where}.test_size is null; {entry['dataset']} has one pool of {n} images "
                "that is re-split, so give test_size (an integer >= 1)"
            )
        rest = {"train": n - test - val}
        limits = {"test_size": n, "val_size": n - test, "train_size": n - test - val}
        test_n = test
    else:
        rest = {"train": pools["train"] - val}
        limits = {"val_size": pools["train"], "train_size": pools["train"] - val}
        limits["test_size"] = pools["test"]
        test_n = pools["test"] if test is None else test
    for key, value in (("test_size", test), ("val_size", val), ("train_size", train)):
        if value is not None and value > limits[key]:
            raise ConfigError(
                f"{where}.{key} is {value}; allowed: at most {max(limits[key], 0)} "
                f"({entry['dataset']}'s pools: {pools})"
            )
    train_n = rest["train"] if train is None else train
    if train_n < 1:
        raise ConfigError(f"{where}: no training images left after val_size and test_size")
    return {"train": train_n, "val": val, "test": test_n}


def check_run(
    where: str,
    settings: Mapping[str, Any],
    sizes: Mapping[str, int],
    *,
    data_where: str,
) -> None:
    """A resolved run (or sweep point) can train: its optimizer and schedule, its epochs and
    batch size against the split, its checkpoint steps against its length, and validation
    images where it reads them."""
    check_run_settings(where, settings)
    for key in ("epochs", "batch_size"):
        value = settings[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{where}.{key} is {value!r}; allowed: an integer >= 1")
    if settings["batch_size"] > sizes["train"]:
        raise ConfigError(
            f"{where}.batch_size is {settings['batch_size']}; allowed: at most the "
            f"{sizes['train']} images of the training split ({data_where})"
        )
    total = settings["epochs"] * (sizes["train"] // settings["batch_size"])
    beyond = [s for s in settings["checkpoints"].get("steps") or [] if s > total]
    if beyond:
        raise ConfigError(
            f"{where}.checkpoints.steps names {beyond}; allowed: steps in [0, {total}] "
            f"(the run's {settings['epochs']} epochs x "
            f"{sizes['train'] // settings['batch_size']} steps)"
        )
    if settings["optimizer"]["name"] == "hybrid" and sizes["val"] < 1:
        raise ConfigError(
            f"{data_where}.val_size is 0, but {where} (hybrid) switches on the validation "
            "loss; allowed: val_size >= 1"
        )


def check_device(device: str, visible_gpus: int | None) -> None:
    """``device`` is auto | cpu | cuda | cuda:N, and a ``cuda:N`` asked for is there
    (``visible_gpus``: what torch sees here; None where jobs may run elsewhere). Plain
    ``cuda`` means the job's own GPU (a SLURM or GPU-slot job sees only its own), which the
    job itself checks when it starts."""
    if not isinstance(device, str) or not DEVICE_PATTERN.match(device):
        raise ConfigError(f"device is {device!r}; allowed: auto, cpu, cuda, cuda:N")
    if visible_gpus is None or ":" not in device:
        return
    index = int(device.partition(":")[2])
    if index >= visible_gpus:
        seen = f"GPUs 0..{visible_gpus - 1}" if visible_gpus else "no GPU"
        raise ConfigError(
            f"device is {device!r}, but torch sees {seen} here; allowed: auto, cpu"
            + (f", cuda, cuda:0..cuda:{visible_gpus - 1}" if visible_gpus else ", cuda")
        )
