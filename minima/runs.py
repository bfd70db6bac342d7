"""What one run is: its key and its fully resolved settings.

The rules, the rule scripts and the sweeps resolve runs through here, so the DAG and the jobs
can never disagree about what a run is. Pure functions of the config dict: no I/O.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

REQUIRED_RUN_KEYS = ("epochs", "batch_size", "optimizer", "schedule")


class ConfigError(ValueError):
    """A config value the schema cannot catch (cross references, merged settings)."""


@dataclass(frozen=True, order=True)
class RunKey:
    """One training run: the four wildcards of the `train` rule."""

    experiment: str
    model: str
    run: str
    seed: int

    @property
    def path(self) -> str:
        """Folder of the run below ``results/runs/``."""
        return f"{self.experiment}/{self.model}/{self.run}/seed{self.seed}"


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``, merging nested mappings key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def model_label(model_spec: Mapping[str, Any]) -> str:
    """A model's folder name: its ``label`` if given, else its registry name."""
    return str(model_spec.get("label", model_spec["name"]))


def model_spec(config: Mapping[str, Any], experiment: str, label: str) -> dict[str, Any]:
    """The model entry of ``experiment`` whose label is ``label`` (without the label key)."""
    for spec in config["experiments"][experiment]["models"]:
        if model_label(spec) == label:
            return {k: v for k, v in spec.items() if k != "label"}
    raise ConfigError(f"experiments.{experiment}.models has no model labelled {label!r}")


def run_settings(config: Mapping[str, Any], experiment: str, run: str) -> dict[str, Any]:
    """A run's settings: the experiment's defaults deep-merged with the run's own entry."""
    entry = config["experiments"][experiment]
    if run not in entry["runs"]:
        raise ConfigError(
            f"experiments.{experiment}.runs has no run {run!r}; runs: {sorted(entry['runs'])}"
        )
    settings = deep_merge(entry.get("defaults", {}), entry["runs"][run])
    settings["data"] = deep_merge(entry["data"], settings.get("data", {}))
    missing = [key for key in REQUIRED_RUN_KEYS if key not in settings]
    if missing:
        raise ConfigError(
            f"experiments.{experiment}.runs.{run} lacks {missing}: set them in the run or in "
            f"experiments.{experiment}.defaults"
        )
    settings.setdefault("checkpoints", {"steps": [], "every_epochs": None})
    settings.setdefault("init_from", None)
    settings.setdefault("pretrained", False)
    return settings


def resolve_run(config: Mapping[str, Any], key: RunKey) -> dict[str, Any]:
    """Everything one training job needs to know, as one JSON-able dict (recorded with it)."""
    entry = config["experiments"][key.experiment]
    settings = run_settings(config, key.experiment, key.run)
    return {
        "experiment": key.experiment,
        "model_label": key.model,
        "run": key.run,
        "seed": key.seed,
        "dataset": entry["dataset"],
        "model": model_spec(config, key.experiment, key.model),
        **settings,
        "training": copy.deepcopy(dict(config["training"])),
        "device": config["device"],
    }


# ---- What Snakemake compares: a run's result-changing settings, in canonical order ----

# Settings that change how a job runs, never what it computes. The one list of them: they are
# left out of the params that Snakemake compares (editing one reruns nothing), and the train
# and analysis scripts take them from the config itself (``with_runtime_settings``,
# ``with_runtime_hessian``).
NON_RESULT_SETTINGS = {
    "training.progress_seconds": "how often a progress line is logged within an epoch",
    "training.eval_batch_size": (
        "batch size of the val/test passes: memory and speed only (each metric is the mean "
        "over every image of the split)"
    ),
    "training.resume_every_epochs": (
        "how often a resume state is saved: a resumed run ends bit-identical to an "
        "uninterrupted one"
    ),
    "resources.<family>.threads": "a job's threads (a directive, never a param): speed only",
    "hessian.batch_size": (
        "examples per pass inside one Hessian-vector product: memory only, the Hessian is that "
        "of the mean over all examples (tests/test_hessian_hvp.py: unequal batches give the "
        "dense Hessian)"
    ),
    "hessian.chunk_size": (
        "parameter points per vmap call of landscapes and line searches: memory only "
        "(tests/test_landscape.py: batched points equal point-by-point evaluation)"
    ),
    "hessian.hvp_method": (
        "how a Hessian-vector product is computed (forward-over-reverse or double backward): "
        "the same product (tests/test_hessian_hvp.py: each equals the dense Hessian)"
    ),
    "hessian.cache_graph": (
        "whether a double-backward product reuses its first-backward graph: the same product "
        "(tests/test_hessian_hvp.py: the cached product equals the dense Hessian)"
    ),
}
RUNTIME_TRAINING_KEYS = tuple(
    key.removeprefix("training.") for key in NON_RESULT_SETTINGS if key.startswith("training.")
)
RUNTIME_HESSIAN_KEYS = tuple(
    key.removeprefix("hessian.") for key in NON_RESULT_SETTINGS if key.startswith("hessian.")
)


def canonical(value: Any) -> Any:
    """``value`` with every mapping's keys sorted (recursively), tuples as lists.

    Snakemake compares params by their ``repr``; in this form, reordering keys in the config
    changes no param, so it plans no job.
    """
    if isinstance(value, Mapping):
        return {str(key): canonical(value[key]) for key in sorted(value, key=str)}
    if isinstance(value, list | tuple):
        return [canonical(item) for item in value]
    return value


def result_settings(run: Mapping[str, Any]) -> dict[str, Any]:
    """A resolved run (or sweep point) as the `train` rules' param: canonical, and without the
    settings of ``NON_RESULT_SETTINGS``."""
    settings = copy.deepcopy(dict(run))
    training = dict(settings.get("training", {}))
    for key in RUNTIME_TRAINING_KEYS:
        training.pop(key, None)
    settings["training"] = training
    return canonical(settings)


def with_runtime_settings(run: Mapping[str, Any], config: Mapping[str, Any]) -> dict[str, Any]:
    """``run`` (a param of ``result_settings``) with the config's non-result training settings
    put back: what the training job needs to run."""
    settings = copy.deepcopy(dict(run))
    settings["training"] = {
        **settings.get("training", {}),
        **{key: config["training"][key] for key in RUNTIME_TRAINING_KEYS},
    }
    return settings


def result_hessian(config: Mapping[str, Any], keys: Sequence[str]) -> dict[str, Any]:
    """The named keys of config ``hessian`` as an analysis rule's param: canonical, and
    without the memory/speed settings of ``NON_RESULT_SETTINGS``."""
    return canonical(
        {key: config["hessian"][key] for key in keys if key not in RUNTIME_HESSIAN_KEYS}
    )


def with_runtime_hessian(
    hessian: Mapping[str, Any], config: Mapping[str, Any], mem_mb: float | None = None
) -> dict[str, Any]:
    """``hessian`` (a param of ``result_hessian``) with the config's memory/speed settings put
    back, and the job's memory request (``cache_graph: auto`` sizes itself by it): what an
    analysis job needs to run."""
    runtime = {key: config["hessian"][key] for key in RUNTIME_HESSIAN_KEYS}
    return {**hessian, **runtime, "mem_mb": mem_mb}
