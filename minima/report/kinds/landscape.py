"""E1's loss landscapes in the paper: one figure per direction pair (kind ``landscape``).

Drawn from the ``landscape`` analysis of each final model (``rules/hessian.smk``):
``landscape.parquet`` (columns ``directions, slice, alpha, beta, loss, accuracy``; slices
``d1``, ``d2`` and ``plane``) and ``landscape.json`` (per pair: eigenvalues, gradient
norm and cosine, span; ``status``/``reason`` where the run diverged). A row per (model, run)
that has the entry's pair (``directions``): the two 1D lines, the plane as a contour with
log-spaced levels, and the plane as a 3D surface. One seed's model is drawn (``seed``; null:
the experiment's lowest), so only that seed's landscapes are planned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colors as mcolors
from matplotlib import ticker
from matplotlib.figure import Figure

from minima import plan
from minima.io import read_json
from minima.plan import ConfigError, RunKey
from minima.report import style
from minima.report.kinds import Inputs, Kind
from minima.report.kinds.paths import analysis_file, check_analysis, drawn_keys, key_of

# What d1 and d2 are, per direction pair (axis labels and the 1D legend).
DIRECTION_NAMES: dict[str, tuple[str, str]] = {
    "eigen": ("top eigenvector", "2nd eigenvector"),
    "gradient_eigen": ("gradient", "top eigenvector"),
    "random": ("random 1 (filter-normalised)", "random 2 (filter-normalised)"),
}

# Plot cosmetics: contour levels, a loss axis goes logarithmic once max/min reaches this
# ratio (a decade), row height (inches), colormap.
N_LEVELS = 12
LOG_RATIO = 10.0
ROW_HEIGHT = 2.0
CMAP = "viridis"


def direction_runs(config: Mapping[str, Any], exp: str, directions: str) -> list[str]:
    """Runs whose landscape has the pair ``directions`` (its ``runs``; null: every analysed)."""
    section = plan.analysis_section(config, exp, "landscape")
    pair = (section or {}).get("directions", {}).get(directions)
    if pair is None:
        return []
    chosen = pair.get("runs")
    return [r for r in plan.analysis_runs(config, exp, "landscape") if not chosen or r in chosen]


def shown_landscapes(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> list[RunKey]:
    """The runs drawn: shown by the entry, covered by its pair, at its seed (null: lowest)."""
    covered = set(direction_runs(config, exp, spec["directions"]))
    return [key for key in drawn_keys(config, exp, spec, "landscape") if key.run in covered]


def landscape_inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
    keys = shown_landscapes(config, exp, spec)
    return {
        "landscape": [analysis_file("landscape", k, "landscape.parquet") for k in keys],
        "meta": [analysis_file("landscape", k, "landscape.json") for k in keys],
    }


def check_landscape(
    config: Mapping[str, Any], exp: str, entry: Mapping[str, Any], where: str
) -> None:
    """The experiment computes landscapes, along the entry's pair, for a run it shows."""
    check_analysis(config, exp, entry, where, "landscape")
    allowed = list(plan.analysis_section(config, exp, "landscape")["directions"])
    source = f"experiments.{exp}.analyses.landscape.directions"
    directions = entry.get("directions")
    if directions is None:
        raise ConfigError(
            f"{where}.directions is required for a landscape figure; allowed: {allowed} "
            f"(the pairs of {source})"
        )
    if directions not in allowed:
        raise ConfigError(
            f"{where}.directions is {directions!r}; allowed: {allowed} (the pairs of {source})"
        )
    shown = list(entry.get("runs") or config["experiments"][exp]["runs"])
    covered = direction_runs(config, exp, directions)
    if not set(shown) & set(covered):
        raise ConfigError(
            f"{where}: {source}.{directions} covers runs {covered}, none of the shown runs {shown}"
        )


def loss_levels(loss: np.ndarray) -> tuple[np.ndarray, mcolors.Normalize]:
    """Contour levels spanning the finite losses: log-spaced (and a log color scale) when all
    are positive, else linear."""
    finite = loss[np.isfinite(loss)]
    lo, hi = float(finite.min()), float(finite.max())
    if hi <= lo:  # a flat plane: one band around the value
        hi = lo + max(abs(lo), 1.0) * 1e-9
    if lo > 0:
        return np.geomspace(lo, hi, N_LEVELS), mcolors.LogNorm(lo, hi)
    return np.linspace(lo, hi, N_LEVELS), mcolors.Normalize(lo, hi)


def spans_decades(loss: np.ndarray) -> bool:
    """Whether a loss axis should be logarithmic: positive and max/min of a decade or more."""
    finite = loss[np.isfinite(loss)]
    return finite.size > 0 and finite.min() > 0 and finite.max() / finite.min() >= LOG_RATIO


def plane_grid(plane: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The plane slice as ``(alpha, beta, loss)`` grids, shape ``(n_beta, n_alpha)``."""
    grid = plane.pivot_table(index="beta", columns="alpha", values="loss", aggfunc="first")
    alpha, beta = np.meshgrid(grid.columns.to_numpy(float), grid.index.to_numpy(float))
    return alpha, beta, grid.to_numpy(float)


def _chosen(inputs: Inputs) -> dict[tuple[str, str], tuple[str, str]]:
    """(model, run) -> (table, metadata) of its lowest seed among the inputs."""
    chosen: dict[tuple[str, str], tuple[int, str, str]] = {}
    for table, meta in zip(inputs["landscape"], inputs["meta"], strict=True):
        key = key_of(table, "landscape")
        current = chosen.get((key.model, key.run))
        if current is None or key.seed < current[0]:
            chosen[(key.model, key.run)] = (key.seed, table, meta)
    return {group: (table, meta) for group, (_, table, meta) in chosen.items()}


def _note(directions: str, meta: Mapping[str, Any]) -> str:
    """What the pair's metadata says about the directions (eigenvalues, gradient)."""
    info = meta.get("directions", {}).get(directions, {})
    values = info.get("eigenvalues") or []
    if directions == "eigen" and len(values) >= 2:
        return rf"$\lambda_1$ = {values[0]:.3g}, $\lambda_2$ = {values[1]:.3g}"
    if directions == "gradient_eigen" and "cosine" in info:
        return rf"$\|g\|$ = {info['grad_norm']:.3g}, cos(g, $v_1$) = {info['cosine']:.2f}"
    return ""


def _draw_lines(ax: Any, table: pd.DataFrame, names: tuple[str, str], color: str) -> None:
    for i, (part, coordinate) in enumerate((("d1", "alpha"), ("d2", "beta"))):
        line = table[table["slice"] == part].sort_values(coordinate)
        ax.plot(
            line[coordinate],
            line["loss"],
            color=color,
            linestyle=style.LINESTYLES[i],
            label=names[i],
            gid=part,
        )
    lines = table[table["slice"].isin(["d1", "d2"])]["loss"].to_numpy(float)
    if spans_decades(lines):
        ax.set_yscale("log")
        finite = lines[np.isfinite(lines)]
        few = np.log10(finite.max() / finite.min()) < 2  # label 1-2-5 within two decades
        ax.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0) if few else (1.0,)))
        ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
        ax.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel(r"$\alpha$ (along d$_1$), $\beta$ (along d$_2$)")
    ax.set_ylabel("loss")


def _draw_contour(ax: Any, fig: Figure, plane: pd.DataFrame, names: tuple[str, str]) -> None:
    alpha, beta, loss = plane_grid(plane)
    levels, norm = loss_levels(loss)
    masked = np.ma.masked_invalid(loss)
    filled = ax.contourf(alpha, beta, masked, levels=levels, norm=norm, cmap=CMAP)
    ax.contour(alpha, beta, masked, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
    ax.plot([0], [0], marker="+", color="w", markersize=6)
    ax.set_xlabel(rf"$\alpha$: {names[0]}", fontsize=7)
    ax.set_ylabel(rf"$\beta$: {names[1]}", fontsize=7)
    ax.grid(False)
    bar = fig.colorbar(filled, ax=ax, pad=0.02, fraction=0.08)
    bar.set_ticks(levels[np.unique(np.linspace(0, len(levels) - 1, 4).round().astype(int))])
    bar.ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:.3g}"))
    bar.ax.yaxis.set_minor_locator(ticker.NullLocator())
    bar.ax.tick_params(labelsize=6)


def _draw_surface(ax: Any, plane: pd.DataFrame) -> None:
    alpha, beta, loss = plane_grid(plane)
    log = spans_decades(loss)
    height = np.log10(np.where(loss > 0, loss, np.nan)) if log else loss
    ax.plot_surface(alpha, beta, height, cmap=CMAP, linewidth=0, antialiased=True)
    ax.set_title(r"$\log_{10}$ loss" if log else "loss", fontsize=7)
    ax.set_xlabel(r"$\alpha$", fontsize=7, labelpad=-6)
    ax.set_ylabel(r"$\beta$", fontsize=7, labelpad=-6)
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(ticker.MaxNLocator(3))
    ax.tick_params(labelsize=6, pad=-2)
    ax.view_init(elev=30, azim=-60)
    ax.set_box_aspect(None, zoom=1.25)


def draw_landscape(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Figure:
    """A row per (model, run): 1D lines along d1 and d2, contour of the plane, 3D surface."""
    directions = spec["directions"]
    names = DIRECTION_NAMES[directions]
    files = _chosen(inputs)
    groups = [(m, r) for m in spec["models"] for r in spec["runs"] if (m, r) in files]
    if not groups:
        raise ValueError(f"no landscape file to draw along {directions}")
    models = {m for m, _ in groups}
    with style.styled():
        fig = Figure(
            figsize=(style.TEXT_WIDTH, min(style.MAX_HEIGHT, 0.3 + ROW_HEIGHT * len(groups))),
            layout="constrained",
        )
        grid = fig.add_gridspec(len(groups), 3, width_ratios=(1.0, 1.15, 1.0))
        for row, (model, run) in enumerate(groups):
            path, meta_path = files[(model, run)]
            meta = read_json(meta_path)
            table = pd.read_parquet(path)
            table = table[table["directions"] == directions]
            color = look.color(run)
            title = look.name(run) if len(models) == 1 else f"{look.model(model)}, {look.name(run)}"
            lines = fig.add_subplot(grid[row, 0])
            lines.set_title(title, color=color, fontweight="bold", loc="left")
            if table.empty:
                reason = meta.get("reason", f"no {directions} landscape in the table")
                lines.text(
                    0.5,
                    0.5,
                    f"not computed:\n{reason}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    wrap=True,
                    transform=lines.transAxes,
                )
                lines.set_axis_off()
                continue
            _draw_lines(lines, table, names, color)
            if row == 0:
                fig.legend(loc="outside upper center", ncols=2, fontsize=7, title="1D lines:")
            plane = table[table["slice"] == "plane"]
            contour = fig.add_subplot(grid[row, 1])
            contour.set_title(_note(directions, meta), fontsize=7)
            _draw_contour(contour, fig, plane, names)
            surface = fig.add_subplot(grid[row, 2], projection="3d")
            _draw_surface(surface, plane)
    return fig


LANDSCAPE = Kind(inputs=landscape_inputs, check=check_landscape, draw=draw_landscape)
