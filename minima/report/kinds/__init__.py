"""Figure and table kinds drawn from analysis results (curvature, similarity, sweeps).

The training kinds (``curves``, ``run_grid``; ``summary``, ``by_model``, ``hyperparameters``)
read only the runs' metrics and are drawn by the ``figure``/``table`` rules. Every other kind
named in ``experiments.<exp>.figures|tables.<name>.kind`` is one :class:`Kind` here, drawn by
the ``analysis_figure``/``analysis_table`` rules: its ``inputs`` says which result files the
entry needs (so a dry run plans exactly those), its ``check`` validates the entry's own keys
against the config, and its ``draw`` turns the files into a figure or a table.

A new kind is a module with a ``Kind`` and one line in :data:`FIGURE_KINDS` or
:data:`TABLE_KINDS`, plus its name in the schema's ``kind`` enum.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Inputs = dict[str, list[str]]


@dataclass(frozen=True)
class Kind:
    """One figure or table kind.

    inputs(config, exp, spec) -> {name: [path, ...]}: the files the entry is drawn from.
    check(config, exp, spec, where): raise ``ConfigError`` naming ``where``'s bad key.
    draw(spec, inputs, look) -> ``matplotlib.figure.Figure`` (figures) or ``Table`` (tables).
    resolve(config, exp, spec) -> spec (optional): the entry completed from the config (e.g.
    the analysis settings it shows), as the job's ``spec`` param.
    """

    inputs: Callable[[Mapping[str, Any], str, Mapping[str, Any]], Inputs]
    check: Callable[[Mapping[str, Any], str, Mapping[str, Any], str], None]
    draw: Callable[[Mapping[str, Any], Inputs, Any], Any]
    resolve: Callable[[Mapping[str, Any], str, Mapping[str, Any]], dict[str, Any]] | None = None

    def job_spec(self, config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> dict:
        """The spec a job draws from: the entry plus what the kind reads from the rest of the
        config (``resolve``), so one value is never written twice in config.yaml."""
        return dict(self.resolve(config, exp, spec)) if self.resolve else dict(spec)


# kind name -> "module:attribute" (imported on first use: Snakemake's start-up stays light).
FIGURE_KINDS: dict[str, str] = {
    "density": "minima.report.kinds.spectrum:DENSITY",
    "similarity": "minima.report.kinds.similarity:SIMILARITY",
    "filters": "minima.report.kinds.similarity:FILTERS",
    "eigenvalues": "minima.report.kinds.eigenpairs:EIGENVALUES",
    "line_search": "minima.report.kinds.eigenpairs:LINE_SEARCH",
    "line_search_summary": "minima.report.kinds.eigenpairs:LINE_SEARCH_SUMMARY",
    "landscape": "minima.report.kinds.landscape:LANDSCAPE",
    "sweep": "minima.report.kinds.sweep:SWEEP_FIGURE",
    "steps": "minima.report.kinds.steps:STEPS",
}
TABLE_KINDS: dict[str, str] = {
    "spectrum": "minima.report.kinds.spectrum:SPECTRUM_TABLE",
    "subset_check": "minima.report.kinds.eigenpairs:SUBSET_CHECK_TABLE",
    "sharpness": "minima.report.kinds.sharpness:SHARPNESS_TABLE",
    "sweep": "minima.report.kinds.sweep:SWEEP_TABLE",
}


def _load(registry: Mapping[str, str], name: str, what: str) -> Kind:
    if name not in registry:
        raise KeyError(f"unknown {what} kind {name!r}; known: {sorted(registry)}")
    module, attribute = registry[name].split(":")
    return getattr(importlib.import_module(module), attribute)


def figure_kind(name: str) -> Kind:
    """The analysis figure kind ``name``."""
    return _load(FIGURE_KINDS, name, "figure")


def table_kind(name: str) -> Kind:
    """The analysis table kind ``name``."""
    return _load(TABLE_KINDS, name, "table")


def named_inputs(inputs: Any) -> Inputs:
    """A Snakemake job's named inputs as ``{name: [path, ...]}`` (a single file as a list)."""
    return {
        name: [value] if isinstance(value, str) else [str(v) for v in value]
        for name, value in inputs.items()
    }
