"""E3's similarity study in the paper: layer x layer heatmaps of every compared pair, and the
filters of one mid-network conv layer.

``similarity`` reads the tables of the ``similarity`` rule (``rules/similarity.smk``), one per
pair of compared runs and measure: ``results/analysis/similarity/<exp>/<model>/seed<s>/
<run_a>__<run_b>/<measure>.parquet`` with columns measure, layer_a, layer_b, index_a, index_b,
value (and form, for cka). ``filters`` reads each run's final weights, as the ``filters`` rule
does. Both draw with the per-pair figures' own functions (``minima.similarity.plots``),
imported inside ``draw``: ``check`` runs at every Snakemake start-up, and the similarity
package pulls in torch.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from minima import plan
from minima.plan import ConfigError, RunKey
from minima.report import style
from minima.report.kinds import Inputs, Kind
from minima.report.kinds.paths import drawn_seed, key_of, run_file

MEASURE_NAMES = {
    "cka": "linear CKA",
    "cka_unbiased": "unbiased linear CKA",
    "svcca": "SVCCA",
    "pwcca": "PWCCA",
    "opd": "Procrustes distance",
}
# Plot cosmetics (inches): the largest heatmap, room for the row labels and for the column
# titles, a layer number per this much panel, and run names wrapped to the panel's width.
MAX_PANEL = 2.2
LABEL_WIDTH = 0.6
HEADER_HEIGHT = 0.5
FOOTER_HEIGHT = 0.3
MARGIN = 0.1
COLORBAR_WIDTH = 1.0
COLORBAR_CLEARANCE = 0.9  # from the last row's panel: its layer numbers and wrapped name
GAP = 0.08  # between panels side by side, a fraction of a panel
ROW_GAP = 0.25  # between rows: a diagonal panel's layer numbers sit above the next row's
INCHES_PER_TICK = 0.2
INCHES_PER_CHAR = 0.065
LINE_HEIGHT = 0.15  # one line of a wrapped title
TITLE_SHARE = 0.85  # of a panel's width a column title may take (the gap is small)
NAME_WIDTH_MIN = 10


def _section(config: Mapping[str, Any], exp: str) -> dict[str, Any] | None:
    return plan.analysis_section(config, exp, "similarity")


def _models(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> list[str]:
    listed = spec.get("models") or [
        plan.model_label(m) for m in config["experiments"][exp]["models"]
    ]
    return list(listed)


def _compared(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> list[str]:
    """The entry's runs among the compared, not skipped runs, in the analysis' order."""
    wanted = spec.get("runs")
    return [r for r in plan.similarity_runs(config, exp) if wanted is None or r in wanted]


def _pairs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The compared pairs among the entry's runs, in ``minima.plan.similarity_pairs`` order."""
    runs = set(_compared(config, exp, spec))
    return [(a, b) for a, b in plan.similarity_pairs(config, exp) if a in runs and b in runs]


def similarity_table(exp: str, model: str, seed: int, pair: tuple[str, str], measure: str) -> str:
    """Where the ``similarity`` rule writes one pair's table for one measure."""
    return (
        f"results/analysis/similarity/{exp}/{model}/seed{seed}/{pair[0]}__{pair[1]}/"
        f"{measure}.parquet"
    )


def similarity_inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
    seed = drawn_seed(config, exp, spec)
    return {
        "tables": [
            similarity_table(exp, model, seed, pair, spec["measure"])
            for model in _models(config, exp, spec)
            for pair in _pairs(config, exp, spec)
        ]
    }


def filters_inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
    seed = drawn_seed(config, exp, spec)
    return {
        "weights": [
            run_file(RunKey(exp, model, run, seed), "final.safetensors")
            for model in _models(config, exp, spec)
            for run in _compared(config, exp, spec)
        ]
    }


def _check_common(
    config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], where: str
) -> dict[str, Any]:
    """The experiment compares runs, the entry's seed exists and its runs are compared ones."""
    section = _section(config, exp)
    if section is None:
        raise ConfigError(
            f"{where}: a {spec['kind']} figure needs experiments.{exp}.analyses.similarity"
        )
    seeds = list(config["experiments"][exp]["seeds"])
    if spec.get("seed") is not None and spec["seed"] not in seeds:
        raise ConfigError(
            f"{where}.seed is {spec['seed']}; allowed: the experiment's seeds {seeds}"
        )
    unknown = [r for r in spec.get("runs") or [] if r not in section["runs"]]
    if unknown:
        raise ConfigError(
            f"{where}.runs names {unknown}; allowed: the compared runs "
            f"(experiments.{exp}.analyses.similarity.runs) {list(section['runs'])}"
        )
    return section


def check_similarity(
    config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], where: str
) -> None:
    section = _check_common(config, exp, spec, where)
    measures = list(section["measures"])
    if spec.get("measure") not in measures:
        raise ConfigError(
            f"{where}.measure is {spec.get('measure')!r}; allowed: the measures computed "
            f"(experiments.{exp}.analyses.similarity.measures) {measures}"
        )
    models = _models(config, exp, spec)
    if len(models) != 1:
        raise ConfigError(
            f"{where}.models: a similarity figure shows one model's pairs; name one of {models}"
        )
    if not _pairs(config, exp, spec):
        raise ConfigError(
            f"{where}: no pair of runs to compare among {_compared(config, exp, spec)} "
            f"(runs {spec.get('runs') or section['runs']}, skipped ones left out)"
        )


def check_filters(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any], where: str) -> None:
    _check_common(config, exp, spec, where)
    if not _compared(config, exp, spec):
        raise ConfigError(f"{where}: every run of {spec.get('runs')} is skipped")


def resolve_filters(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> dict:
    """The entry with ``layer``: analyses.similarity.filter_layer, the layer the `filters`
    rule draws too."""
    section = config["experiments"][exp]["analyses"]["similarity"]
    return {**spec, "layer": section["filter_layer"]}


def _pair_of(path: str, runs: list[str]) -> tuple[str, str]:
    """(run_a, run_b) of a similarity table path, split with the known run labels (a label
    may itself hold "__")."""
    folder = PurePath(path).parent.name
    for a in runs:
        for b in runs:
            if folder == f"{a}__{b}":
                return a, b
    a, _, b = folder.partition("__")
    return a, b


def color_limits(measure: str, matrices: list[np.ndarray]) -> tuple[float, float]:
    """One colour scale for every panel: the measure's natural bounds, else the data's range."""
    from minima.similarity.plots import MEASURE_LIMITS

    lo, hi = MEASURE_LIMITS.get(measure, (None, None))
    finite = np.concatenate([m[np.isfinite(m)] for m in matrices])
    return (
        float(finite.min()) if lo is None else lo,
        float(finite.max()) if hi is None else hi,
    )


def _panel_grid(pairs: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """Rows: the pairs' first runs, columns: their second runs, in order. All pairs of
    r1..rk then fill the upper triangle of a (k-1) x (k-1) grid, each run named once."""
    return list(dict.fromkeys(a for a, _ in pairs)), list(dict.fromkeys(b for _, b in pairs))


def _wrap(name: str, inches: float) -> str:
    """A run name on lines about ``inches`` wide (8-9 pt text)."""
    return textwrap.fill(name, max(NAME_WIDTH_MIN, int(inches / INCHES_PER_CHAR)))


def draw_similarity(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Figure:
    """A heatmap per compared pair in the upper triangle of a matrix of panels (its diagonal:
    each network with itself, where ``self_pairs`` is on): the panel in run A's row and run
    B's column has A's layers as rows and B's as columns (execution order, numbered from 1).
    One colour scale; its colorbar and the run names and layer numbers of the diagonal panels
    sit in the empty lower triangle, so the heatmaps get the width."""
    from minima.similarity.plots import draw_heatmap, layer_matrix

    measure = spec["measure"]
    panels = {}
    for path in inputs["tables"]:
        panels[_pair_of(path, list(spec["runs"]))] = layer_matrix(pd.read_parquet(path), "value")[0]
    if not panels:
        raise ValueError(f"no {measure} table to draw")
    vmin, vmax = color_limits(measure, list(panels.values()))
    row_runs, col_runs = _panel_grid(list(panels))
    cells = {pair: (row_runs.index(pair[0]), col_runs.index(pair[1])) for pair in panels}
    rows, cols = len(row_runs), len(col_runs)
    # a single row has no empty triangle: its colorbar goes to the right
    right = MARGIN if rows > 1 else COLORBAR_WIDTH
    side = min(MAX_PANEL, (style.TEXT_WIDTH - LABEL_WIDTH - right) / (cols + (cols - 1) * GAP))
    # room for the column titles: run names wrapped to a panel's width may take 3 lines
    lines = max(_wrap(look.name(b), TITLE_SHARE * side).count("\n") + 1 for b in col_runs)
    header = max(HEADER_HEIGHT, 0.2 + LINE_HEIGHT * lines)
    height = header + FOOTER_HEIGHT + side * (rows + (rows - 1) * ROW_GAP)
    width, fig_height = style.TEXT_WIDTH, min(style.MAX_HEIGHT, height)
    with style.styled():
        fig = Figure(figsize=(width, fig_height))
        grid = fig.add_gridspec(
            rows,
            cols,
            left=LABEL_WIDTH / width,
            right=(LABEL_WIDTH + side * (cols + (cols - 1) * GAP)) / width,
            bottom=FOOTER_HEIGHT / fig_height,
            top=1 - header / fig_height,
            wspace=GAP,
            hspace=ROW_GAP,
        )
        first_in_row = {r: min(c for rr, c in cells.values() if rr == r) for r in range(rows)}
        first_in_col = {c: min(r for r, cc in cells.values() if cc == c) for c in range(cols)}
        last_in_col = {c: max(r for r, cc in cells.values() if cc == c) for c in range(cols)}
        axes = {}
        for (a, b), matrix in panels.items():
            r, c = cells[(a, b)]
            ax = axes[(a, b)] = fig.add_subplot(grid[r, c])
            image = draw_heatmap(
                ax,
                matrix,
                vmin=vmin,
                vmax=vmax,
                labels_a=[str(i + 1) for i in range(matrix.shape[0])],
                labels_b=[str(i + 1) for i in range(matrix.shape[1])],
                max_ticks=max(2, int(side / INCHES_PER_TICK)),
            )
            ax.tick_params(labelleft=first_in_row[r] == c, labelbottom=last_in_col[c] == r)
            if first_in_row[r] == c:
                ax.set_ylabel(_wrap(look.name(a), 0.8 * side), color=look.color(a))
            if first_in_col[c] == r:
                ax.set_title(_wrap(look.name(b), TITLE_SHARE * side), color=look.color(b))
        label = MEASURE_NAMES.get(measure, measure)
        if rows > 1:
            # horizontal, in the empty cells left of the last row's panel and its labels
            last = axes[next(p for p, (r, c) in cells.items() if r == rows - 1)].get_position()
            x0 = grid[rows - 1, 0].get_position(fig).x0
            x1 = last.x0 - COLORBAR_CLEARANCE / width
            cax = fig.add_axes((x0, last.y0 + 0.45 * last.height, x1 - x0, 0.1 * last.height))
            fig.colorbar(image, cax=cax, orientation="horizontal", label=label)
        else:
            box = next(iter(axes.values())).get_position()
            cax = fig.add_axes(
                (box.x1 + GAP * side / width, box.y0, 0.1 * side / width, box.height)
            )
            fig.colorbar(image, cax=cax, label=label)
    return fig


def read_filters(weights: str, layer: str) -> np.ndarray:
    """The weight tensor of conv layer ``layer`` from an exported safetensors file (checked
    against its sidecar's SHA-256, as ``load_weights`` does), without building the model."""
    from safetensors import safe_open

    from minima.io import read_json, sha256_file
    from minima.train.checkpoint import sidecar_path

    expected = read_json(sidecar_path(weights)).get("sha256")
    if expected and expected != sha256_file(weights):
        raise ValueError(f"{weights}: SHA-256 differs from its sidecar; the file was altered")
    name = f"{layer}.weight"
    with safe_open(weights, framework="pt") as handle:
        keys = list(handle.keys())
        if name not in keys:
            convs = [
                k.removesuffix(".weight") for k in keys if len(handle.get_slice(k).get_shape()) == 4
            ]
            raise KeyError(f"{weights} has no conv layer {layer!r}; conv layers: {convs}")
        return handle.get_tensor(name).double().numpy()


def shown_part(shape: tuple[int, ...], max_filters: int | None, max_channels: int | None) -> str:
    """What a cropped filter grid leaves out, in words ("" when it shows everything): the
    figure must not pass a corner of the layer off as the whole of it."""
    out_ch, in_ch = shape[:2]
    parts = []
    if max_filters is not None and max_filters < out_ch:
        parts.append(f"filters 1-{max_filters} of {out_ch}")
    if max_channels is not None and max_channels < in_ch and in_ch != 3:
        parts.append(f"input channels 1-{max_channels} of {in_ch}")
    return ": " + ", ".join(parts) if parts else ""


def draw_filters(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Figure:
    """The filter grid of ``spec['layer']`` of each run side by side (a row per model), drawn
    as the ``filters`` rule draws them: a row per filter, a column per input channel (RGB for
    a 3-channel layer), each filter scaled to its own range. ``max_filters``/``max_channels``
    crop the grid to its first filters and input channels, so the tiles stay legible at text
    width (a 128 x 64 grid of 3 x 3 kernels has tiles of about 1 mm)."""
    from minima.similarity.filters import filter_grid
    from minima.similarity.plots import draw_filter_grid

    keys = [key_of(path) for path in inputs["weights"]]
    if not keys:
        raise ValueError("no weights to draw filters from")
    weights = [read_filters(path, spec["layer"]) for path in inputs["weights"]]
    limits = {"max_filters": spec.get("max_filters"), "max_channels": spec.get("max_channels")}
    grids = [filter_grid(w, **limits) for w in weights]
    models = list(dict.fromkeys(k.model for k in keys))
    runs = list(dict.fromkeys(k.run for k in keys))
    height, width = grids[0].shape[:2]
    panel = style.TEXT_WIDTH / len(runs)
    with style.styled():
        fig = Figure(
            figsize=(
                style.TEXT_WIDTH,
                min(style.MAX_HEIGHT, len(models) * (panel * height / width + 0.3) + 0.3),
            ),
            layout="constrained",
        )
        axes = fig.subplots(len(models), len(runs), squeeze=False)
        for ax in axes.flat:
            ax.set_visible(False)
        for key, grid in zip(keys, grids, strict=True):
            ax = axes[models.index(key.model), runs.index(key.run)]
            ax.set_visible(True)
            name = look.name(key.run)
            title = name if len(models) == 1 else f"{look.model(key.model)}, {name}"
            draw_filter_grid(ax, grid, title)
            ax.title.set_color(look.color(key.run))
        fig.suptitle(
            f"conv layer {spec['layer']}{shown_part(weights[0].shape, **limits)}",
            fontsize="medium",
        )
    return fig


SIMILARITY = Kind(inputs=similarity_inputs, check=check_similarity, draw=draw_similarity)
FILTERS = Kind(
    inputs=filters_inputs, check=check_filters, draw=draw_filters, resolve=resolve_filters
)
