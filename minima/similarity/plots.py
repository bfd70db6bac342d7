"""Matplotlib figures for the similarity analysis: layer x layer heatmaps and filter grids.

Figures are built on ``matplotlib.figure.Figure`` directly (no pyplot state, no backend
needed); the caller saves them with ``fig.savefig(path)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_LIMITS = {
    "cka": (0.0, 1.0),
    "cka_unbiased": (None, 1.0),
    "svcca": (0.0, 1.0),
    "pwcca": (0.0, 1.0),
    "opd": (0.0, None),
}


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
    if value is None:
        candidates = [
            c
            for c in table.columns
            if c not in {"layer_a", "layer_b", "index_a", "index_b", "form"}
        ]
        if len(candidates) != 1:
            raise ValueError(f"pass value=; candidate value columns: {candidates}")
        value = candidates[0]
    grid = (
        table.pivot(index="index_a", columns="index_b", values=value)
        .sort_index()
        .sort_index(axis=1)
    )
    names_a = table.drop_duplicates("index_a").set_index("index_a")["layer_a"].sort_index()
    names_b = table.drop_duplicates("index_b").set_index("index_b")["layer_b"].sort_index()
    vmin, vmax = _LIMITS.get(value, (None, None))

    size = 2.5 + 0.18 * max(len(names_a), len(names_b))
    fig = Figure(figsize=(size + 1.0, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(
        grid.to_numpy(dtype=float), origin="lower", cmap="magma", vmin=vmin, vmax=vmax
    )
    fig.colorbar(image, ax=ax, label=value)
    ax.set_xlabel(label_b)
    ax.set_ylabel(label_a)
    if tick_labels:
        ax.set_xticks(np.arange(len(names_b)), list(names_b), rotation=90, fontsize=6)
        ax.set_yticks(np.arange(len(names_a)), list(names_a), fontsize=6)
    if title:
        ax.set_title(title)
    return fig


def filter_figure(grids: dict[str, np.ndarray], *, title: str | None = None) -> Figure:
    """Side-by-side filter grids (from :func:`~minima.similarity.filters.filter_grid`).

    Args:
        grids: panel title -> grid image ((H, W) grey or (H, W, 3) RGB, values in [0, 1]).
        title: figure title.
    """
    fig = Figure(figsize=(3.2 * len(grids), 3.4), layout="constrained")
    axes = fig.subplots(1, len(grids), squeeze=False)[0]
    for ax, (name, grid) in zip(axes, grids.items(), strict=True):
        ax.imshow(
            grid,
            cmap="gray" if grid.ndim == 2 else None,
            vmin=0.0,
            vmax=1.0,
            interpolation="nearest",
        )
        ax.set_title(name)
        ax.set_axis_off()
    if title:
        fig.suptitle(title)
    return fig
