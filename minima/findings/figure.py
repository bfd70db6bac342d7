"""The curvature-vs-generalization scatter: one point per run, colour = optimizer."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
from matplotlib.figure import Figure

from minima.findings import quantities
from minima.report import style


def scatter(
    points: pd.DataFrame,
    correlation: pd.DataFrame,
    *,
    labels: Mapping[str, str] | None = None,
    colors: Mapping[str, str] | None = None,
) -> Figure:
    """A column per curvature measure, a row per generalization quantity (tau in each title)."""
    measures = [m for m in quantities.CURVATURE_MEASURES if m in points and points[m].notna().any()]
    targets = [t for t in quantities.GENERALIZATION if t in points]
    cols, rows = max(len(measures), 1), max(len(targets), 1)
    fig = Figure(
        figsize=(min(style.TEXT_WIDTH, 2.1 * cols), style.PANEL_HEIGHT * rows), layout="constrained"
    )
    axes = fig.subplots(rows, cols, squeeze=False)
    runs = list(dict.fromkeys(points["run"])) if len(points) else []
    palette = style.colors_for(runs, colors)
    for i, target in enumerate(targets):
        scale, _, unit = quantities.display(target)
        for j, measure in enumerate(measures):
            ax = axes[i][j]
            for run in runs:
                mine = points[points["run"] == run]
                ax.scatter(
                    mine[measure],
                    mine[target] * scale,
                    s=14,
                    color=palette[run],
                    label=style.display_name(run, labels),
                )
            hit = correlation[
                (correlation["measure"] == measure) & (correlation["target"] == target)
            ]
            tau = float(hit["tau"].iloc[0]) if len(hit) else float("nan")
            ax.set_title(f"tau = {tau:.2f}", fontsize=8)
            if i == rows - 1:
                ax.set_xlabel(quantities.label(measure), fontsize=7)
            if j == 0:
                ax.set_ylabel(quantities.label(target) + (f" ({unit})" if unit else ""), fontsize=7)
    if runs:
        handles, names = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside lower center", ncols=min(len(runs), 4), fontsize=7)
    return fig
