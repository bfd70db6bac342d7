"""The paper's config: which experiments, figures and tables, checked beyond the schema.

Figures and tables are listed per experiment (``experiments.<exp>.figures`` and ``.tables``,
name -> entry); the kinds named here are drawn from training-run metrics by the ``figure`` and
``table`` rules. An analysis stage adds a figure kind of its own by listing it in the schema's
``kind`` enum and making ``results/figures/<exp>/<name>.pdf|png`` with its own rule; the paper
includes every listed figure whatever its kind. Pure functions of the config dict, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from minima.plan import ConfigError, model_label, selected_experiments
from minima.report import kinds, style
from minima.report.metrics import EPOCH_METRICS, METRICS

# Kinds drawn by minima.report.figures / minima.report.tables from the runs' metrics.
TRAINING_FIGURE_KINDS = ("curves", "run_grid")
TRAINING_TABLE_KINDS = ("summary", "by_model", "hyperparameters")


def paper_section(config: Mapping[str, Any]) -> dict[str, Any]:
    """The ``paper`` section with its defaults (no PDF in rule all, no renames)."""
    section = {"build": False, "title": "", "experiments": None, "labels": {}, "colors": {}}
    section.update(config.get("paper") or {})
    return section


def paper_experiments(config: Mapping[str, Any]) -> list[str]:
    """Experiments in the paper, in order: ``paper.experiments``, else the built ones."""
    chosen = paper_section(config)["experiments"]
    return list(chosen) if chosen is not None else selected_experiments(config)


def figures(config: Mapping[str, Any], experiment: str) -> dict[str, dict[str, Any]]:
    """An experiment's figure entries, name -> entry (empty when it lists none)."""
    return dict(config["experiments"][experiment].get("figures") or {})


def tables(config: Mapping[str, Any], experiment: str) -> dict[str, dict[str, Any]]:
    """An experiment's table entries, name -> entry (empty when it lists none)."""
    return dict(config["experiments"][experiment].get("tables") or {})


def with_order(config: Mapping[str, Any], experiment: str, entry: Mapping[str, Any]) -> dict:
    """A figure/table entry with ``runs`` and ``models`` filled in, in config order.

    Legends and table rows then follow the order the experiment lists its runs (SGD first),
    not the alphabet.
    """
    spec = dict(entry)
    exp = config["experiments"][experiment]
    spec["runs"] = list(spec.get("runs") or exp["runs"])
    spec["models"] = list(spec.get("models") or [model_label(m) for m in exp["models"]])
    return spec


def run_colors(config: Mapping[str, Any]) -> dict[str, str]:
    """One color per run label of the whole config (``paper.colors`` first).

    Resolved once over every experiment's labels, so a label whose hashed fallback collides
    with another's keeps the same (moved) color in every figure, whichever runs it shows.
    """
    labels = [run for entry in config["experiments"].values() for run in entry["runs"]]
    return style.colors_for(labels, paper_section(config)["colors"])


def training_figure_names(config: Mapping[str, Any]) -> set[str]:
    """Names of the figures, in any experiment, that the ``figure`` rule draws."""
    return {
        name
        for exp in config["experiments"]
        for name, entry in figures(config, exp).items()
        if entry["kind"] in TRAINING_FIGURE_KINDS
    }


def entry(config: Mapping[str, Any], experiment: str, section: str, name: str) -> dict[str, Any]:
    """``experiments.<experiment>.<section>.<name>`` (section: figures | tables), runs in order.

    Raises:
        ConfigError: the experiment lists no such entry (names the ones it lists).
    """
    listed = figures(config, experiment) if section == "figures" else tables(config, experiment)
    if name not in listed:
        raise ConfigError(
            f"experiments.{experiment}.{section} has no {name!r}; it lists {sorted(listed)}"
        )
    return with_order(config, experiment, listed[name])


def table_names(config: Mapping[str, Any]) -> set[str]:
    """Names of the tables, in any experiment, that the ``table`` rule builds."""
    return {
        name
        for exp in config["experiments"]
        for name, entry in tables(config, exp).items()
        if entry["kind"] in TRAINING_TABLE_KINDS
    }


def analysis_names(config: Mapping[str, Any], section: str) -> set[str]:
    """Names of the figures (section ``figures``) or tables drawn by an analysis kind."""
    training = TRAINING_FIGURE_KINDS if section == "figures" else TRAINING_TABLE_KINDS
    listed = figures if section == "figures" else tables
    return {
        name
        for exp in config["experiments"]
        for name, entry in listed(config, exp).items()
        if entry["kind"] not in training
    }


def default_caption(entry: Mapping[str, Any]) -> str:
    """A caption naming what is drawn, for an entry that has none."""
    if "caption" in entry:
        return str(entry["caption"])
    if "panels" in entry:
        names = [METRICS[m].label for p in entry["panels"] for m in p["metrics"] if m in METRICS]
        return (", ".join(dict.fromkeys(names)) + " per epoch.").capitalize()
    names = [METRICS[m].label for m in entry.get("metrics", []) if m in METRICS]
    return ("Final " + ", ".join(names) + ".") if names else ""


def check_paper(config: Mapping[str, Any]) -> None:
    """Cross-references the schema cannot check; raises ConfigError naming the key."""
    section = paper_section(config)
    if section["experiments"] is not None:
        unknown = [e for e in section["experiments"] if e not in config["experiments"]]
        if unknown:
            raise ConfigError(
                f"paper.experiments names {unknown}; allowed: {list(config['experiments'])}"
            )
    _check_colors(section["colors"])
    kinds_by_name: dict[str, set[str]] = {}
    for exp, entry in config["experiments"].items():
        runs, models = list(entry["runs"]), [model_label(m) for m in entry["models"]]
        for name, fig in figures(config, exp).items():
            where = f"experiments.{exp}.figures.{name}"
            kinds_by_name.setdefault(name, set()).add(fig["kind"])
            _check_subset(where, "runs", fig.get("runs"), runs)
            _check_subset(where, "models", fig.get("models"), models)
            if fig["kind"] in TRAINING_FIGURE_KINDS:
                if not fig.get("panels"):
                    raise ConfigError(f"{where}: a {fig['kind']} figure needs `panels`")
                for i, panel in enumerate(fig["panels"]):
                    _check_metrics(f"{where}.panels[{i}]", panel["metrics"], EPOCH_METRICS)
            else:
                kinds.figure_kind(fig["kind"]).check(config, exp, fig, where)
        for name, table in tables(config, exp).items():
            where = f"experiments.{exp}.tables.{name}"
            kinds_by_name.setdefault(f"table:{name}", set()).add(table["kind"])
            _check_subset(where, "runs", table.get("runs"), runs)
            _check_subset(where, "models", table.get("models"), models)
            if table["kind"] not in TRAINING_TABLE_KINDS:
                kinds.table_kind(table["kind"]).check(config, exp, table, where)
                continue
            if not table.get("metrics"):
                raise ConfigError(f"{where}: a {table['kind']} table needs `metrics`")
            _check_metrics(where, table["metrics"], METRICS)
            if table["kind"] == "by_model" and len(table["metrics"]) != 1:
                raise ConfigError(f"{where}: a by_model table shows one metric")
    for name, used in kinds_by_name.items():
        training = TRAINING_TABLE_KINDS if name.startswith("table:") else TRAINING_FIGURE_KINDS
        if len(used) > 1 and used & set(training):
            what = "table" if name.startswith("table:") else "figure"
            raise ConfigError(
                f"{what} name {name.removeprefix('table:')!r} is used with kinds {sorted(used)} "
                f"in different experiments; a name drawn by the `{what}` rule must not name "
                "another kind's"
            )


def _check_subset(where: str, key: str, chosen: Any, allowed: list[str]) -> None:
    if chosen is None:
        return
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise ConfigError(f"{where}.{key} names {unknown}; allowed: {allowed}")


def _check_metrics(where: str, names: list[str], allowed: Mapping[str, Any]) -> None:
    unknown = [m for m in names if m not in allowed]
    if unknown:
        raise ConfigError(f"{where}.metrics names {unknown}; allowed: {sorted(allowed)}")


def _check_colors(colors: Mapping[str, str]) -> None:
    from matplotlib.colors import is_color_like

    bad = {label: color for label, color in colors.items() if not is_color_like(color)}
    if bad:
        raise ConfigError(f"paper.colors: not matplotlib colors: {bad}")
