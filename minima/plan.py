"""Which runs and analyses the config asks for, and the start-up checks of the whole config.

The Snakemake rules and the rule scripts both call in here, so the DAG and the jobs can never
disagree about what a run is (a run's resolved settings come from ``minima.runs``, re-exported
here). Pure functions of the config dict: no I/O, no Snakemake.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from minima import sweeps
from minima.run_checks import check_device, check_run, split_sizes  # noqa: F401
from minima.runs import (  # noqa: F401  (re-exported: the rules look runs up through plan)
    ConfigError,
    RunKey,
    deep_merge,
    model_label,
    model_spec,
    resolve_run,
    run_settings,
)

# A run may vary how its data is presented, not which images it sees: the split is shared by
# every run of an experiment.
RUN_DATA_KEYS = ("std_scale", "augment")
RESERVED_RUN_LABELS = ("init",)  # results/runs/<exp>/<model>/init/ holds the shared weights


def selected_experiments(config: Mapping[str, Any]) -> list[str]:
    """Experiments that the default target builds (``build_experiments``, null = all)."""
    chosen = config.get("build_experiments")
    names = list(config["experiments"])
    if chosen is None:
        return names
    unknown = [name for name in chosen if name not in config["experiments"]]
    if unknown:
        raise ConfigError(
            f"build_experiments names {unknown}, which are not experiments; allowed: {names}"
        )
    return list(chosen)


def run_keys(
    config: Mapping[str, Any],
    experiments: Iterable[str] | None = None,
    *,
    include_skipped: bool = False,
) -> list[RunKey]:
    """Every (experiment, model, run, seed) the config defines, in config order.

    Runs that cannot be made here (see :func:`skipped_runs`) are left out unless
    ``include_skipped``.
    """
    names = selected_experiments(config) if experiments is None else list(experiments)
    keys = []
    for exp in names:
        entry = config["experiments"][exp]
        for spec in entry["models"]:
            for run in entry["runs"]:
                if not include_skipped and skip_reason(config, exp, run):
                    continue
                for seed in entry["seeds"]:
                    keys.append(RunKey(exp, model_label(spec), run, int(seed)))
    return keys


def skip_reason(config: Mapping[str, Any], experiment: str, run: str) -> str | None:
    """Why a run cannot be made with this config (None if it can).

    Runs from ImageNet-pretrained weights need ``pretrained_weights``; without it they are
    skipped, said so in the log and in the paper, and never replaced by another start.
    """
    settings = config["experiments"][experiment]["runs"][run]
    if settings.get("pretrained") and not config.get("pretrained_weights"):
        return (
            f"experiments.{experiment}.runs.{run} starts from ImageNet-pretrained weights, "
            "but config pretrained_weights is null (point it at torchvision's ResNet18 "
            "ImageNet state dict file to include it)"
        )
    source = settings.get("init_from")
    if source and source in config["experiments"][experiment]["runs"]:
        inherited = skip_reason(config, experiment, source)
        if inherited:
            return f"experiments.{experiment}.runs.{run} starts from {source}, skipped: {inherited}"
    return None


def skipped_runs(config: Mapping[str, Any]) -> dict[str, str]:
    """``experiment/run`` -> reason, for every selected run that is skipped."""
    skipped = {}
    for exp in selected_experiments(config):
        for run in config["experiments"][exp]["runs"]:
            reason = skip_reason(config, exp, run)
            if reason:
                skipped[f"{exp}/{run}"] = reason
    return skipped


def similarity_runs(
    config: Mapping[str, Any], experiment: str, *, with_skipped: bool = False
) -> list[str]:
    """Runs of ``experiment`` compared layer by layer (config ``analyses.similarity.runs``),
    without the skipped ones (``with_skipped``: all, as configured)."""
    section = config["experiments"][experiment].get("analyses", {}).get("similarity")
    if not section:
        return []
    return [
        run for run in section["runs"] if with_skipped or not skip_reason(config, experiment, run)
    ]


def similarity_pairs(
    config: Mapping[str, Any], experiment: str, *, with_skipped: bool = False
) -> list[tuple[str, str]]:
    """Every unordered pair of compared runs, in config order; with ``self_pairs`` each run
    also with itself (its layer x layer map, from which the study reads how its own late
    layers differ), first in its row."""
    runs = similarity_runs(config, experiment, with_skipped=with_skipped)
    section = config["experiments"][experiment].get("analyses", {}).get("similarity") or {}
    first = 0 if section.get("self_pairs", False) else 1
    return [(a, b) for i, a in enumerate(runs) for b in runs[i + first :]]


def init_source(config: Mapping[str, Any], key: RunKey) -> RunKey | None:
    """The run whose final weights start ``key`` (cross-initialization), or None."""
    source = run_settings(config, key.experiment, key.run)["init_from"]
    return None if source is None else RunKey(key.experiment, key.model, source, key.seed)


def check_plan(config: Mapping[str, Any]) -> None:
    """Checks beyond the JSON schema; raises ConfigError naming the offending key."""
    selected_experiments(config)
    for exp, entry in config["experiments"].items():
        labels = [model_label(spec) for spec in entry["models"]]
        if len(set(labels)) != len(labels):
            raise ConfigError(
                f"experiments.{exp}.models: two models share a label ({labels}); give one a `label`"
            )
        for spec in entry["models"]:
            _check_model(exp, spec)
        sizes = split_sizes(config, exp)
        for run, run_entry in entry["runs"].items():
            where = f"experiments.{exp}.runs.{run}"
            if run in RESERVED_RUN_LABELS:
                raise ConfigError(f"{where}: the run label {run!r} is reserved; choose another")
            extra = sorted(set(run_entry.get("data", {})) - set(RUN_DATA_KEYS))
            if extra:
                raise ConfigError(
                    f"{where}.data sets {extra}; a run may set only {list(RUN_DATA_KEYS)} "
                    f"(sizes and seed of the split belong to experiments.{exp}.data)"
                )
            settings = run_settings(config, exp, run)
            check_run(where, settings, sizes, data_where=f"experiments.{exp}.data")
            if settings["pretrained"]:
                _check_pretrained(where, settings, entry)
            source = settings["init_from"]
            if source is not None and source not in entry["runs"]:
                raise ConfigError(
                    f"experiments.{exp}.runs.{run}.init_from is {source!r}; "
                    f"allowed: another run of {exp}: {sorted(set(entry['runs']) - {run})}"
                )
        _check_no_init_cycle(exp, entry["runs"], config)
        similarity = entry.get("analyses", {}).get("similarity")
        if similarity:
            unknown = [run for run in similarity["runs"] if run not in entry["runs"]]
            if unknown:
                raise ConfigError(
                    f"experiments.{exp}.analyses.similarity.runs names {unknown}; "
                    f"allowed: runs of {exp}: {sorted(entry['runs'])}"
                )
        check_curvature_analyses(config, exp)
        sweeps.check_sweeps(config, exp)


def _check_no_init_cycle(exp: str, runs: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    for start in runs:
        seen = [start]
        current = run_settings(config, exp, start)["init_from"]
        while current is not None:
            if current in seen:
                chain = " -> ".join([*seen, current])
                raise ConfigError(f"experiments.{exp}: init_from forms a cycle: {chain}")
            seen.append(current)
            current = run_settings(config, exp, current)["init_from"]


def _check_model(exp: str, spec: Mapping[str, Any]) -> None:
    from minima.models import MODEL_OPTIONS

    name = spec["name"]
    allowed = MODEL_OPTIONS[name]
    for key, value in spec.items():
        if key in ("name", "label"):
            continue
        if key not in allowed:
            raise ConfigError(
                f"experiments.{exp}.models ({name}): unknown option {key!r}; "
                f"allowed: {sorted(allowed)}"
            )
        if value not in allowed[key]:
            raise ConfigError(
                f"experiments.{exp}.models ({name}).{key} is {value!r}; allowed: {allowed[key]}"
            )


def _check_pretrained(where: str, settings: Mapping[str, Any], entry: Mapping[str, Any]) -> None:
    if settings["init_from"] is not None:
        raise ConfigError(f"{where}: set either pretrained or init_from, not both")
    for spec in entry["models"]:
        if spec["name"] != "resnet18" or spec.get("stem", "imagenet") != "imagenet":
            raise ConfigError(
                f"{where}: pretrained weights load only into resnet18 with stem imagenet "
                f"(torchvision's ImageNet shape), not {dict(spec)}"
            )


# ---- Curvature analyses (rules/hessian.smk): which runs, steps and settings ----

CURVATURE_ANALYSES = ("spectrum", "landscape", "sharpness", "eigenpairs")


def analysis_section(
    config: Mapping[str, Any], experiment: str, kind: str
) -> dict[str, Any] | None:
    """The experiment's ``analyses.<kind>`` section, or None where it has none."""
    section = config["experiments"][experiment].get("analyses", {}).get(kind)
    return dict(section) if section else None


def analysis_runs(config: Mapping[str, Any], experiment: str, kind: str) -> list[str]:
    """Runs ``analyses.<kind>`` covers (its ``runs``; null: every run), without skipped ones."""
    section = analysis_section(config, experiment, kind)
    if section is None:
        return []
    runs = section.get("runs") or list(config["experiments"][experiment]["runs"])
    return [run for run in runs if not skip_reason(config, experiment, run)]


def analysis_settings(
    config: Mapping[str, Any], experiment: str, kind: str, run: str
) -> dict[str, Any]:
    """The settings of one run's ``kind`` analysis, without the keys that choose runs/steps.

    Given to a job as a param, so editing which runs or steps are analysed does not rerun the
    analyses of the others. ``landscape``: only the direction pairs that apply to ``run``.
    """
    section = analysis_section(config, experiment, kind)
    if section is None:
        raise ConfigError(f"experiments.{experiment}.analyses has no {kind} section")
    settings = {k: copy.deepcopy(v) for k, v in section.items() if k not in ("runs", "steps")}
    if kind == "landscape":
        settings["directions"] = {
            name: {k: v for k, v in spec.items() if k != "runs"}
            for name, spec in section["directions"].items()
            if not spec.get("runs") or run in spec["runs"]
        }
    return settings


def eigenpair_steps(config: Mapping[str, Any], experiment: str, run: str) -> list[int]:
    """Checkpoint steps whose eigenpairs are computed (``analyses.eigenpairs.steps``, or null:
    the run's ``checkpoints.steps``), ascending."""
    section = analysis_section(config, experiment, "eigenpairs")
    if section is None:
        return []
    steps = section.get("steps")
    if steps is None:
        steps = run_settings(config, experiment, run)["checkpoints"].get("steps", [])
    return sorted({int(step) for step in steps})


def check_curvature_analyses(config: Mapping[str, Any], experiment: str) -> None:
    """Cross-references of the curvature analyses: runs exist, steps are checkpointed."""
    entry = config["experiments"][experiment]
    runs = sorted(entry["runs"])
    for kind in CURVATURE_ANALYSES:
        section = analysis_section(config, experiment, kind)
        if section is None:
            continue
        where = f"experiments.{experiment}.analyses.{kind}"
        named = {f"{where}.runs": section.get("runs") or []}
        if kind == "landscape":
            for name, spec in section["directions"].items():
                named[f"{where}.directions.{name}.runs"] = spec.get("runs") or []
        for key, listed in named.items():
            unknown = [run for run in listed if run not in entry["runs"]]
            if unknown:
                raise ConfigError(f"{key} names {unknown}; allowed: runs of {experiment}: {runs}")
        if kind == "eigenpairs":
            _check_eigenpairs(config, experiment, section, where)


def _check_eigenpairs(
    config: Mapping[str, Any], experiment: str, section: Mapping[str, Any], where: str
) -> None:
    if (section.get("fraction") is None) == (section.get("examples") is None):
        raise ConfigError(
            f"{where}: give exactly one of fraction or examples (the fixed subset's size)"
        )
    if section["la"] + section["sa"] < 1:
        raise ConfigError(f"{where}: la + sa is 0; ask for at least one eigenpair")
    for run in analysis_runs(config, experiment, "eigenpairs"):
        written = set(run_settings(config, experiment, run)["checkpoints"].get("steps", []))
        steps = eigenpair_steps(config, experiment, run)
        if not steps:
            raise ConfigError(
                f"{where}: run {run} has no checkpoint steps to analyse; set {where}.steps "
                f"or experiments.{experiment}.runs.{run}.checkpoints.steps"
            )
        missing = [step for step in steps if step not in written]
        if missing:
            raise ConfigError(
                f"{where}.steps names {missing}, which run {run} does not checkpoint "
                f"(its checkpoints.steps: {sorted(written)})"
            )
