"""What one job asks a scheduler for: config ``resources`` per rule family and experiment.

Config ``resources`` holds one entry per rule family (``data``, ``train``, ``analysis``,
``paper``: threads, mem_mb, runtime in minutes, gpu) and, under ``experiments``, optional
per-experiment overrides of any of those keys for any family, because one experiment's LeNet
analyses need minutes while another's ResNet18 analyses need hours. A job retried after a
failure (Snakemake's ``attempt``: 1, 2, ...) gets ``attempt`` times its runtime, capped at the
longest time limit of the partitions that could run it (the SLURM plugin's partition file), so a
run killed at its limit resumes with more time instead of dying at the same limit again.

Pure standard library plus PyYAML; Snakemake never imported (rules/cluster.smk wraps these).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

FAMILIES = ("data", "train", "analysis", "paper")
KEYS = ("threads", "mem_mb", "runtime", "gpu", "gpu_slots")

# Rule -> resource family, for the rules whose resources come from config (rules/*.smk); the
# benchmark summary groups measurements by these families.
RULE_FAMILIES = {
    "train": "train",
    "sweep_train": "train",
    "spectrum": "analysis",
    "landscape": "analysis",
    "sharpness": "analysis",
    "eigenpairs": "analysis",
    "subset_check": "analysis",
    "similarity": "analysis",
}


def family_resources(resources: Mapping[str, Any], family: str, exp: str | None) -> dict:
    """The family's threads, mem_mb, runtime and gpu, with experiment ``exp``'s overrides."""
    if family not in FAMILIES:
        raise KeyError(f"resources: unknown family {family!r}; one of {', '.join(FAMILIES)}")
    values = dict(resources[family])
    overrides = (resources.get("experiments") or {}).get(exp) or {}
    values.update(overrides.get(family) or {})
    return values


def parse_minutes(value: int | float | str) -> float:
    """A SLURM time limit in minutes: a number of minutes, or MM, MM:SS, HH:MM:SS, D-HH,
    D-HH:MM, D-HH:MM:SS (sbatch's formats); ``infinite``/``UNLIMITED`` is infinity."""
    if isinstance(value, bool):
        raise ValueError(f"not a time limit: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.lower() in ("infinite", "unlimited"):
        return math.inf
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text)
    if not match:
        raise ValueError(f"not a SLURM time limit: {value!r}")
    days, first, second, third = match.groups()
    if days is None:
        if third is not None:  # HH:MM:SS
            h, m, s = int(first), int(second), int(third)
        elif second is not None:  # MM:SS
            h, m, s = 0, int(first), int(second)
        else:  # MM
            h, m, s = 0, int(first), 0
    else:  # D-HH[:MM[:SS]]
        h, m, s = int(first), int(second or 0), int(third or 0)
    return int(days or 0) * 1440 + h * 60 + m + s / 60


def partition_max_runtime(partition_file: str | Path | None, gpu: int) -> float | None:
    """The longest ``max_runtime`` (minutes) of the partitions that could run a job.

    A job asking for GPUs can only go to partitions with ``max_gpu`` > 0 (as the plugin
    decides); a CPU job to any. ``None`` when there is no file or no partition says a limit.
    """
    if not partition_file:
        return None
    data = yaml.safe_load(Path(partition_file).read_text()) or {}
    limits = []
    for name, spec in (data.get("partitions") or {}).items():
        spec = spec or {}
        if gpu > 0 and not spec.get("max_gpu", 0):
            continue
        if "max_runtime" in spec:
            try:
                limits.append(parse_minutes(spec["max_runtime"]))
            except ValueError as error:
                raise ValueError(f"{partition_file}: partitions.{name}: {error}") from None
    return max(limits) if limits else None


def runtime_for_attempt(runtime: int, attempt: int, cap: float | None) -> int:
    """Minutes for try ``attempt`` (1 = first): ``attempt`` x runtime, at most ``cap``."""
    grown = runtime * max(1, attempt)
    if cap is not None and math.isfinite(cap):
        grown = min(grown, int(cap))
    return max(1, int(grown))


def gpu_slots(values: Mapping[str, Any], slots_per_gpu: int) -> int:
    """Slots of the machine's GPUs a job takes (local scheduling, minima.gpu_slots): none
    without a GPU; its `gpu_slots` of one GPU's ``slots_per_gpu`` (default: all, the GPU to
    itself), at most all of them; all slots of each GPU for a job of several GPUs."""
    if values["gpu"] == 0:
        return 0
    if values["gpu"] > 1:
        return values["gpu"] * slots_per_gpu
    return min(values.get("gpu_slots", slots_per_gpu), slots_per_gpu)


def job_resource(
    resources: Mapping[str, Any],
    family: str,
    name: str,
    exp: str | None,
    attempt: int = 1,
    partition_file: str | Path | None = None,
) -> int:
    """One resource value of a job (what rules/cluster.smk's ``resource`` returns)."""
    if name not in KEYS:
        raise KeyError(f"resources: unknown key {name!r}; one of {', '.join(KEYS)}")
    values = family_resources(resources, family, exp)
    if name == "gpu_slots":
        return gpu_slots(values, resources.get("slots_per_gpu", 1))
    if name != "runtime":
        return values[name]
    cap = partition_max_runtime(partition_file, values["gpu"])
    return runtime_for_attempt(values["runtime"], attempt, cap)
