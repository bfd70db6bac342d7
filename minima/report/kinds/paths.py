"""Where the results an analysis figure or table is drawn from live, and which runs it shows.

The same layout as the rules (``results/runs/<exp>/<model>/<run>/seed<s>/`` and
``results/analysis/<kind>/<exp>/<model>/<run>/seed<s>/``), kept pure so a kind's ``inputs`` can
be unit-tested, and a path can be read back into its run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from minima import plan
from minima.plan import ConfigError, RunKey

_RUN_PATH = re.compile(r"(?P<exp>[^/]+)/(?P<model>[^/]+)/(?P<run>[^/]+)/seed(?P<seed>\d+)/")


def run_file(key: RunKey, name: str) -> str:
    """A file of one training run's folder."""
    return f"results/runs/{key.path}/{name}"


def analysis_file(kind: str, key: RunKey, name: str) -> str:
    """A file of one run's ``kind`` analysis (spectrum, landscape, sharpness, eigenpairs...)."""
    return f"results/analysis/{kind}/{key.path}/{name}"


def key_of(path: str | PurePath, kind: str | None = None) -> RunKey:
    """The run a result path belongs to (``kind``: the analysis folder, None: a run file)."""
    text = PurePath(path).as_posix()
    marker = f"results/analysis/{kind}/" if kind else "results/runs/"
    start = text.rfind(marker)
    if start < 0:
        raise ValueError(f"{path} is not under {marker}")
    match = _RUN_PATH.match(text[start + len(marker) :])
    if match is None:
        raise ValueError(f"{path}: no <exp>/<model>/<run>/seed<N>/ after {marker}")
    return RunKey(match["exp"], match["model"], match["run"], int(match["seed"]))


def shown_keys(
    config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], analysis: str | None = None
) -> list[RunKey]:
    """Runs an entry shows: its ``runs``/``models`` (filled in, in config order), its ``seed``
    (null or absent: every seed), and, for an ``analysis``, only the runs it covers."""
    covered = set(plan.analysis_runs(config, exp, analysis)) if analysis else None
    seed = spec.get("seed")
    return [
        key
        for key in plan.run_keys(config, [exp])
        if key.run in spec["runs"]
        and key.model in spec["models"]
        and (seed is None or key.seed == seed)
        and (covered is None or key.run in covered)
    ]


def drawn_seed(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> int:
    """The seed a figure draws: the entry's ``seed``, null: the experiment's lowest (every run
    of an experiment has the same seeds)."""
    seed = spec.get("seed")
    return min(config["experiments"][exp]["seeds"]) if seed is None else int(seed)


def drawn_keys(
    config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], analysis: str
) -> list[RunKey]:
    """:func:`shown_keys` at the :func:`drawn_seed` only: one run key per (model, run)."""
    return shown_keys(config, exp, {**spec, "seed": drawn_seed(config, exp, spec)}, analysis)


def check_analysis(
    config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], where: str, analysis: str
) -> None:
    """The entry's experiment runs ``analysis`` on some shown run, and its seed exists."""
    if plan.analysis_section(config, exp, analysis) is None:
        raise ConfigError(
            f"{where}: a {spec['kind']} entry needs experiments.{exp}.analyses.{analysis}"
        )
    seed = spec.get("seed")
    seeds = list(config["experiments"][exp]["seeds"])
    if seed is not None and seed not in seeds:
        raise ConfigError(f"{where}.seed is {seed}; allowed: the experiment's seeds {seeds}")
    runs = [r for r in spec.get("runs") or [] if r in plan.analysis_runs(config, exp, analysis)]
    if spec.get("runs") is not None and not runs:
        raise ConfigError(
            f"{where}.runs: none of {spec['runs']} is covered by experiments.{exp}.analyses."
            f"{analysis} (it covers {plan.analysis_runs(config, exp, analysis)})"
        )
