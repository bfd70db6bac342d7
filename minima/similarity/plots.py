"""Matplotlib figures for the similarity analysis: layer x layer heatmaps and filter grids.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state, no backend
needed); the caller saves them with ``fig.savefig(path)``. The drawing of one heatmap
(:func:`draw_heatmap`) and one filter grid (:func:`draw_filter_grid`) on a given axes is shared
by the per-pair figures of ``rules/similarity.smk`` and the paper's figure kinds
(``minima.report.kinds.similarity``), so both show the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

# Colour limits of each measure where it has natural bounds (None: the data's).
MEASURE_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "cka": (0.0, 1.0),
    "cka_unbiased": (None, 1.0),
    "svcca": (0.0, 1.0),
    "pwcca": (0.0, 1.0),
    "opd": (0.0, None),
}
HEATMAP_CMAP = "magma"
_NOT_VALUES = {"measure", "layer_a", "layer_b", "index_a", "index_b", "form"}


def value_column(table: pd.DataFrame, value: str | None = None) -> str:
    """The similarity column of a table: ``value``, or the one column that is not a
    layer/index/form/measure column."""
    if value is not None:
        return value
    candidates = [c for c in table.columns if c not in _NOT_VALUES]
    if len(candidates) != 1:
        raise ValueError(f"pass value=; candidate value columns: {candidates}")
    return candidates[0]


def layer_matrix(table: pd.DataFrame, value: str) -> tuple[np.ndarray, list[str], list[str]]:
    """A tidy layer x layer table as a matrix (rows: model A's layers in ``index_a`` order,
    columns: model B's) and the two lists of layer names."""
    grid = (
        table.pivot(index="index_a", columns="index_b", values=value)
        .sort_index()
        .sort_index(axis=1)
    )
    names_a = table.drop_duplicates("index_a").set_index("index_a")["layer_a"].sort_index()
    names_b = table.drop_duplicates("index_b").set_index("index_b")["layer_b"].sort_index()
    return grid.to_numpy(dtype=float), list(names_a), list(names_b)


def tick_step(count: int, max_ticks: int | None) -> int:
    """Label every ``step``-th layer so at most ``max_ticks`` labels share an axis."""
    return 1 if not max_ticks or count <= max_ticks else math.ceil(count / max_ticks)


def draw_heatmap(
    ax: Axes,
    matrix: np.ndarray,
    *,
    vmin: float | None,
    vmax: float | None,
    labels_a: Sequence[str] | None = None,
    labels_b: Sequence[str] | None = None,
    max_ticks: int | None = None,
    fontsize: float | None = None,
) -> AxesImage:
    """One layer x layer heatmap on ``ax`` (rows: model A, bottom up), ticks thinned to at most
    ``max_ticks`` labelled layers per axis; returns the image (for a colorbar)."""
    image = ax.imshow(matrix, origin="lower", cmap=HEATMAP_CMAP, vmin=vmin, vmax=vmax)
    ax.grid(False)
    for labels, set_ticks, axis in (
        (labels_b, ax.set_xticks, "x"),
        (labels_a, ax.set_yticks, "y"),
    ):
        if labels is None:
            continue
        shown = np.arange(0, len(labels), tick_step(len(labels), max_ticks))
        long = axis == "x" and max(len(str(label)) for label in labels) > 3
        set_ticks(
            shown,
            [labels[i] for i in shown],
            rotation=90 if long else 0,
            fontsize=fontsize,
        )
    return image


def similarity_heatmap(
    table: pd.DataFrame,
    *,
    value: str | None = None,
    title: str | None = None,
    label_a: str = "model A",
    label_b: str = "model B",
    tick_labels: bool = True,
) -> Figure:
    """Heatmap of a layer x layer table (as written by ``layerwise_cka``/``similarity_matrix``).

    Args:
        table: tidy DataFrame with layer_a, layer_b, index_a, index_b and a value column.
        value: the value column (default: the one column that is not a layer/index/form).
        title: figure title.
        label_a: axis label for model A's layers (rows, y axis).
        label_b: axis label for model B's layers (columns, x axis).
        tick_labels: write the layer names on the axes.
    """
    value = value_column(table, value)
    matrix, names_a, names_b = layer_matrix(table, value)
    vmin, vmax = MEASURE_LIMITS.get(value, (None, None))

    size = 2.5 + 0.18 * max(len(names_a), len(names_b))
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    image = draw_heatmap(
        ax,
        matrix,
        vmin=vmin,
        vmax=vmax,
        labels_a=names_a if tick_labels else None,
        labels_b=names_b if tick_labels else None,
        fontsize=6,
    )
    fig.colorbar(image, ax=ax, label=value)
    ax.set_xlabel(label_b)
    ax.set_ylabel(label_a)
    if title:
        ax.set_title(title)
    return fig


def draw_filter_grid(ax: Axes, grid: np.ndarray, title: str | None = None) -> AxesImage:
    """One filter grid (from :func:`~minima.similarity.filters.filter_grid`) on ``ax``, pixel
    for pixel, grey or RGB in [0, 1], without axes."""
    image = ax.imshow(
        grid,
        cmap="gray" if grid.ndim == 2 else None,
        vmin=0.0,
        vmax=1.0,
        interpolation="nearest",
    )
    if title:
        ax.set_title(title)
    ax.set_axis_off()
    return image


def filter_figure(grids: dict[str, np.ndarray], *, title: str | None = None) -> Figure:
    """Side-by-side filter grids (from :func:`~minima.similarity.filters.filter_grid`).

    Args:
        grids: panel title -> grid image ((H, W) grey or (H, W, 3) RGB, values in [0, 1]).
        title: figure title.
    """
    fig = Figure(figsize=(3.2 * len(grids), 3.4), layout="constrained")
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    for ax, (name, grid) in zip(axes, grids.items(), strict=True):
        draw_filter_grid(ax, grid, name)
    if title:
        fig.suptitle(title)
    return fig
