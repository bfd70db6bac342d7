"""Quantities read from an experiment's shared tables, not from one run: the lr sweep's
summary (E1) and the layer-by-layer similarity of two networks (E3).

Such a quantity is judged with ``comparison.kind: every`` only. It is read in *parts*: one
per swept run, or one per compared pair and measure; each part is a label and its values (or
the reason it has none). ``paths`` lists the tables a claim needs, relative to ``results/``
without the ``.parquet`` suffix, which is also the key under which the findings job loads
them, so the rule's inputs and the reader agree on one name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from minima import plan, sweeps
from minima.plan import ConfigError

Tables = Mapping[str, pd.DataFrame]
Part = tuple[str, "np.ndarray | str"]


@dataclass(frozen=True)
class Context:
    """What a part reader needs besides the tables: the claim's experiment, model and runs,
    and the runs the workflow skipped (run -> reason), for the reason a part is missing."""

    experiment: str
    model: str
    runs: tuple[str, ...]
    skipped: Mapping[str, str]
    seeds: tuple[int, ...]


# ---- the lr sweep (results/sweeps/<exp>/<sweep>/summary.parquet) ----


def sweep_key(experiment: str, sweep: str) -> str:
    return f"sweeps/{experiment}/{sweep}/summary"


def _sweep_points(tables: Tables, spec: Mapping, ctx: Context, run: str) -> pd.DataFrame | str:
    """The run's points of the sweep, sorted by the swept value (or why there are none)."""
    table = tables.get(sweep_key(ctx.experiment, spec["sweep"]))
    if table is None:
        return f"sweep {spec['sweep']!r} not built (its build: false)"
    column = f"value:{spec.get('key', 'optimizer.lr')}"
    rows = table[(table["model"] == ctx.model) & (table["run"] == run)]
    if rows.empty or column not in rows:
        return f"{run} has no points of sweep {spec['sweep']!r} over {column[6:]}"
    return rows.sort_values(column).reset_index(drop=True)


def _loss(rows: pd.DataFrame, column: str) -> np.ndarray:
    """Mean final loss per point; a point none of whose seeds completed (diverged) is +inf."""
    loss = rows[f"{column}_mean"].to_numpy(float)
    return np.where(rows[f"{column}_n"].to_numpy() > 0, loss, math.inf)


def _edge_loss_ratio(rows: pd.DataFrame, spec: Mapping) -> np.ndarray:
    """Final loss at the smallest and the largest swept value over the grid's lowest loss."""
    loss = _loss(rows, spec.get("loss_column", "train_loss"))
    best = np.min(loss[np.isfinite(loss)]) if np.isfinite(loss).any() else math.nan
    return np.array([loss[0], loss[-1]]) / best


def _largest_value_loss(rows: pd.DataFrame, spec: Mapping) -> np.ndarray:
    """Final loss at the largest swept value (+inf: it diverged)."""
    return _loss(rows, spec.get("loss_column", "train_loss"))[-1:]


def _best_gap_decades(rows: pd.DataFrame, spec: Mapping) -> np.ndarray:
    """|log10 of the value with the lowest final loss - log10 of the one with the best
    accuracy| (0: the same grid point)."""
    column = f"value:{spec.get('key', 'optimizer.lr')}"
    loss, acc = spec.get("loss_column", "train_loss"), spec.get("acc_column", "test_acc")
    done = rows[rows[f"{loss}_n"] > 0]
    if done.empty:
        return np.array([])
    by_loss = float(done.loc[done[f"{loss}_mean"].idxmin(), column])
    by_acc = float(done.loc[done[f"{acc}_mean"].idxmax(), column])
    return np.array([abs(math.log10(by_loss) - math.log10(by_acc))])


def _sweep_parts(reduce: Callable[[pd.DataFrame, Mapping], np.ndarray]):
    def parts(tables: Tables, spec: Mapping, ctx: Context) -> list[Part]:
        out: list[Part] = []
        for run in ctx.runs:
            rows = _sweep_points(tables, spec, ctx, run)
            out.append((run, rows if isinstance(rows, str) else reduce(rows, spec)))
        return out

    return parts


def _sweep_paths(config: Mapping[str, Any], experiment: str, spec: Mapping) -> list[str]:
    section = sweeps.sweeps(config, experiment).get(spec["sweep"])
    return [sweep_key(experiment, spec["sweep"])] if section and section["build"] else []


def _check_sweep(config: Mapping[str, Any], experiment: str, spec: Mapping, runs) -> str:
    found = sweeps.sweeps(config, experiment)
    name = spec.get("sweep")
    if name not in found:
        return f"quantity.sweep is {name!r}; the experiment's sweeps: {sorted(found)}"
    key = spec.get("key", "optimizer.lr")
    missing = [r for r in runs if key not in (found[name]["grid"].get(r) or {})]
    if missing:
        return f"run(s) {missing} do not sweep {key!r} in sweeps.{name}.grid"
    return ""


# ---- layer-by-layer similarity (results/analysis/similarity/<exp>/<model>/seed<s>/<a>__<b>/) ----


def similarity_key(experiment: str, model: str, seed: int, a: str, b: str, measure: str) -> str:
    return f"analysis/similarity/{experiment}/{model}/seed{seed}/{a}__{b}/{measure}"


def _oriented(table: pd.DataFrame, measure: str) -> pd.DataFrame:
    """The table with ``value`` turned into a similarity (a distance such as OPD negated), so
    "more similar" is "larger" for every measure."""
    from minima.similarity.measures import get_measure  # torch: only in the findings job

    sign = 1.0 if measure.startswith("cka") or get_measure(measure).higher_is_similar else -1.0
    return table.assign(value=sign * table["value"].astype(float))


def _thirds(n_layers: int) -> tuple[np.ndarray, np.ndarray]:
    """Layer indices of the first and the last third of a network (execution order)."""
    index = np.arange(n_layers)
    return index[index < n_layers / 3], index[index >= 2 * n_layers / 3]


def _diagonal(table: pd.DataFrame) -> pd.Series:
    """Similarity of each layer of network A with the same layer of network B, by index."""
    same = table[table["index_a"] == table["index_b"]]
    return same.set_index("index_a")["value"].sort_index()


def _early_minus_late(table: pd.DataFrame) -> float:
    """Mean diagonal similarity over the first third of layers minus over the last third."""
    diag = _diagonal(table)
    early, late = _thirds(len(diag))
    return float(diag.loc[early].mean() - diag.loc[late].mean())


def _self_adjacent_early_minus_late(table: pd.DataFrame) -> float:
    """In one network with itself: mean similarity of adjacent layers (i, i+1) over the
    first third minus over the last third (late layers unlike each other: > 0)."""
    n = int(table["index_a"].max()) + 1
    adjacent = table[table["index_b"] == table["index_a"] + 1].set_index("index_a")["value"]
    early, late = _thirds(n - 1)
    return float(adjacent.loc[early].mean() - adjacent.loc[late].mean())


def _measures_in(tables: Tables, ctx: Context) -> list[str]:
    """The similarity measures whose tables were loaded for the claim's model (config order)."""
    prefix = f"analysis/similarity/{ctx.experiment}/{ctx.model}/"
    return list(dict.fromkeys(k.rsplit("/", 1)[1] for k in tables if k.startswith(prefix)))


def _measures(spec: Mapping, section: Mapping) -> list[str]:
    return list(spec.get("measures") or section["measures"])


def _pair_tables(tables: Tables, ctx: Context, a: str, b: str, measure: str):
    """The pair's table per seed, oriented, or why it is missing."""
    found = {}
    for seed in ctx.seeds:
        table = tables.get(similarity_key(ctx.experiment, ctx.model, seed, a, b, measure))
        if table is None:  # the workflow keeps one order per pair; diagonals do not care
            table = tables.get(similarity_key(ctx.experiment, ctx.model, seed, b, a, measure))
        if table is not None:
            found[seed] = _oriented(table, measure)
    if found:
        return found
    reasons = [f"{r} not made: {ctx.skipped[r]}" for r in (a, b) if r in ctx.skipped]
    return "; ".join(reasons) or f"no {measure} table of {a} vs {b}"


def _pairs_in(tables: Tables, ctx: Context, measure: str, *, self_pairs: bool):
    """Every (a, b) pair with a table of ``measure`` (cross pairs or self pairs only)."""
    prefix = f"analysis/similarity/{ctx.experiment}/{ctx.model}/seed"
    pairs = []
    for key in tables:
        if key.startswith(prefix) and key.endswith(f"/{measure}"):
            a, b = key.split("/")[-2].split("__")
            if (a == b) == self_pairs and (a, b) not in pairs:
                pairs.append((a, b))
    return pairs


def _per_pair(reduce: Callable[[pd.DataFrame], float], *, self_pairs: bool):
    def parts(tables: Tables, spec: Mapping, ctx: Context) -> list[Part]:
        out: list[Part] = []
        for measure in spec["_measures"]:
            listed = [tuple(p) for p in spec.get("pairs") or ()]
            pairs = listed or _pairs_in(tables, ctx, measure, self_pairs=self_pairs)
            if not pairs:
                out.append((measure, f"no {measure} tables"))
            for a, b in pairs:
                found = _pair_tables(tables, ctx, a, b, measure)
                label = f"{a} vs {b} ({measure})"
                values = (
                    found
                    if isinstance(found, str)
                    else np.array([reduce(t) for t in found.values()])
                )
                out.append((label, values))
        return out

    return parts


def _after_first_third(n_layers: int) -> np.ndarray:
    """Layer indices beyond the first third ("beyond the first layers", as E3 puts it)."""
    early, _ = _thirds(n_layers)
    return np.arange(len(early), n_layers)


_SPANS: dict[str, Callable[[int], np.ndarray]] = {
    "first third": lambda n: _thirds(n)[0],
    "after the first third": _after_first_third,
}


def _pair_gain(span: str):
    """Per layer of ``span``: diagonal similarity of ``pair`` minus that of ``baseline``
    (> 0: the pair's networks are more alike there than the baseline's)."""
    layers_of = _SPANS[span]

    def parts(tables: Tables, spec: Mapping, ctx: Context) -> list[Part]:
        out: list[Part] = []
        (a, b), (c, d) = spec["pair"], spec["baseline"]
        for measure in spec["_measures"]:
            label = f"{a} vs {b} minus {c} vs {d} ({measure})"
            pair = _pair_tables(tables, ctx, a, b, measure)
            base = _pair_tables(tables, ctx, c, d, measure)
            if isinstance(pair, str) or isinstance(base, str):
                out.append((label, pair if isinstance(pair, str) else base))
                continue
            values = []
            for seed in sorted(set(pair) & set(base)):
                gain = _diagonal(pair[seed]) - _diagonal(base[seed])
                values.append(gain.iloc[layers_of(len(gain))].to_numpy(float))
            out.append((label, np.concatenate(values) if values else np.array([])))
        return out

    return parts


def _layer_max(tables: Tables, spec: Mapping, ctx: Context) -> list[Part]:
    """In a network with itself: the largest similarity of ``layer`` with any other layer."""
    out: list[Part] = []
    for run in spec["runs_of_layer"]:
        for measure in spec["_measures"]:
            found = _pair_tables(tables, ctx, run, run, measure)
            for layer in spec["layers"]:
                label = f"{run}: {layer} vs every other layer ({measure})"
                if isinstance(found, str):
                    out.append((label, found))
                    continue
                values = []
                for table in found.values():
                    rows = table[(table["layer_a"] == layer) & (table["layer_b"] != layer)]
                    if rows.empty:
                        values = f"{run} has no layer {layer!r}"
                        break
                    values.append(float(rows["value"].max()))
                out.append((label, values if isinstance(values, str) else np.array(values)))
    return out


def _similarity_paths(config: Mapping[str, Any], experiment: str, spec: Mapping) -> list[str]:
    entry = config["experiments"][experiment]
    section = entry["analyses"]["similarity"]
    pairs = plan.similarity_pairs(config, experiment)
    wanted = {tuple(p) for p in spec.get("pairs") or ()}
    for key in ("pair", "baseline"):
        if spec.get(key):
            wanted.add(tuple(spec[key]))
    wanted |= {(r, r) for r in spec.get("runs_of_layer") or ()}
    chosen = [p for p in pairs if p in wanted or p[::-1] in wanted] if wanted else pairs
    return [
        similarity_key(experiment, plan.model_label(m), seed, a, b, measure)
        for m in entry["models"]
        for seed in entry["seeds"]
        for a, b in chosen
        for measure in _measures(spec, section)
    ]


def _check_similarity(config: Mapping[str, Any], experiment: str, spec: Mapping, runs) -> str:
    section = config["experiments"][experiment].get("analyses", {}).get("similarity")
    if not section:
        return f"needs experiments.{experiment}.analyses.similarity, which it does not run"
    unknown = [m for m in spec.get("measures") or () if m not in section["measures"]]
    if unknown:
        return f"quantity.measures {unknown} are not computed (it computes {section['measures']})"
    configured = plan.similarity_pairs(config, experiment, with_skipped=True)
    asked = [tuple(p) for p in spec.get("pairs") or ()]
    asked += [tuple(spec[k]) for k in ("pair", "baseline") if spec.get(k)]
    asked += [(r, r) for r in spec.get("runs_of_layer") or ()]
    missing = [p for p in asked if p not in configured and p[::-1] not in configured]
    if missing:
        return f"pairs {missing} are not compared by analyses.similarity (pairs: {configured})"
    return ""


@dataclass(frozen=True)
class TableQuantity:
    """A quantity read in parts from an experiment's shared tables."""

    label: str
    source: str  # sweep | similarity
    parts: Callable[[Tables, Mapping, Context], list[Part]]
    options: tuple[str, ...]
    required: tuple[str, ...] = ()
    decimals: int = 3

    def paths(self, config: Mapping[str, Any], experiment: str, spec: Mapping) -> list[str]:
        if self.source == "sweep":
            return _sweep_paths(config, experiment, spec)
        return _similarity_paths(config, experiment, spec)

    def check(
        self, config: Mapping[str, Any], experiment: str, spec: Mapping, runs: Sequence[str]
    ) -> str:
        """Why the claim's quantity entry cannot be read ('' when it can)."""
        missing = [k for k in self.required if k not in spec]
        if missing:
            return f"quantity {self.label!r} needs option(s) {missing}"
        if self.source == "sweep":
            return _check_sweep(config, experiment, spec, runs)
        return _check_similarity(config, experiment, spec, runs)

    def read_parts(self, tables: Tables, spec: Mapping, ctx: Context) -> list[Part]:
        full = dict(spec)
        full["_measures"] = list(spec.get("measures") or _measures_in(tables, ctx))
        return self.parts(tables, full, ctx)


_SWEEP_OPTIONS = ("sweep", "key", "loss_column", "acc_column")
_SIM_OPTIONS = ("measures", "pairs")
TABLE_QUANTITIES: dict[str, TableQuantity] = {
    "sweep_edge_loss_ratio": TableQuantity(
        "final loss at the grid's smallest and largest value / its lowest final loss",
        "sweep",
        _sweep_parts(_edge_loss_ratio),
        _SWEEP_OPTIONS,
        ("sweep",),
        decimals=2,
    ),
    "sweep_largest_value_loss": TableQuantity(
        "final loss at the grid's largest value (diverged: infinite)",
        "sweep",
        _sweep_parts(_largest_value_loss),
        _SWEEP_OPTIONS,
        ("sweep",),
    ),
    "sweep_best_gap_decades": TableQuantity(
        "decades between the lowest-loss and the best-accuracy grid point",
        "sweep",
        _sweep_parts(_best_gap_decades),
        _SWEEP_OPTIONS,
        ("sweep",),
        decimals=2,
    ),
    "similarity_early_minus_late": TableQuantity(
        "same-layer similarity, first third of layers minus last third",
        "similarity",
        _per_pair(_early_minus_late, self_pairs=False),
        _SIM_OPTIONS,
    ),
    "similarity_self_adjacent_early_minus_late": TableQuantity(
        "adjacent-layer similarity in one network, first third minus last third",
        "similarity",
        _per_pair(_self_adjacent_early_minus_late, self_pairs=True),
        _SIM_OPTIONS,
    ),
    "similarity_pair_gain_early": TableQuantity(
        "same-layer similarity of a pair minus a baseline pair, per layer of the first third",
        "similarity",
        _pair_gain("first third"),
        ("measures", "pair", "baseline"),
        ("pair", "baseline"),
    ),
    "similarity_pair_gain_late": TableQuantity(
        "same-layer similarity of a pair minus a baseline pair, per layer after the first third",
        "similarity",
        _pair_gain("after the first third"),
        ("measures", "pair", "baseline"),
        ("pair", "baseline"),
    ),
    "similarity_layer_max": TableQuantity(
        "largest similarity of a layer with any other layer of its network",
        "similarity",
        _layer_max,
        ("measures", "runs_of_layer", "layers"),
        ("runs_of_layer", "layers"),
    ),
}


def check_table_quantity(
    config: Mapping[str, Any], experiment: str, name: str, spec: Mapping, runs: Sequence[str]
) -> None:
    """Raise ConfigError when a table quantity's options do not fit the experiment."""
    q = TABLE_QUANTITIES[name]
    unknown = [k for k in spec if k not in ("name", *q.options)]
    if unknown:
        raise ConfigError(f"options {unknown} unknown; {name} takes {list(q.options)}")
    reason = q.check(config, experiment, spec, runs)
    if reason:
        raise ConfigError(reason)
