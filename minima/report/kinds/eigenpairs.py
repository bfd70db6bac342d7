"""E5's negative Hessian eigenvalues in the paper: three figures and the subset-check table.

All read the ``eigenpairs`` analysis of a run (``rules/hessian.smk``), one seed per run (the
entry's ``seed``; null: the run's lowest seed):

- ``eigenvalues``: ``eigenvalues.parquet`` (rule ``eigenpairs_collect``), log10|lambda| of
  every LA/SA pair vs step, the subset loss on a second axis.
- ``line_search``: ``step<N>/line_search.parquet`` (rule ``eigenpairs``) of one checkpoint,
  exact loss along the most negative eigenvector vs its quadratic model, a panel per span
  and one for the step search's log grid with the refined alpha* marked.
- ``line_search_summary``: ``line_search_summary.parquet`` (``eigenpairs_collect``), best
  decrease and 1/alpha* vs lambda over every checkpoint and pair, a column per zoom and one
  for the whole range; alpha* bounded by the search drawn open.
- table ``subset_check``: ``subset_check.parquet`` (rule ``subset_check``), a row per pair.

A skipped (diverged) run has empty tables; its panel says so instead of failing the figure.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps, ticker
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from minima import plan
from minima.plan import ConfigError, RunKey
from minima.report import style
from minima.report.kinds import Inputs, Kind
from minima.report.kinds.paths import analysis_file, check_analysis, drawn_keys, key_of
from minima.report.latex import escape, tabular
from minima.report.tables import Table

ANALYSIS = "eigenpairs"
WHICH = ("LA", "SA")
# Color families (dark = first pair: the largest of LA, the smallest of SA) and their range.
FAMILIES = {"LA": "Blues", "SA": "Reds"}
MARKERS = ("o", "v")  # LA, SA in the line-search summary
SHADES = (0.95, 0.4)
_STEP_FILE = re.compile(r"/step(?P<step>\d+)/line_search\.parquet$")


# ---- which runs and files ----


def shown_runs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> list[RunKey]:
    """The entry's runs covered by the eigenpairs analysis, one seed each (``seed``; null: the
    lowest), in config order."""
    return drawn_keys(config, exp, spec, ANALYSIS)


def line_search_file(key: RunKey, step: int) -> str:
    """One checkpoint's line-search table (an output of rule ``eigenpairs``)."""
    return analysis_file(ANALYSIS, key, f"step{step}/line_search.parquet")


def step_of(path: str) -> int:
    """The checkpoint step of a ``step<N>/line_search.parquet`` path."""
    match = _STEP_FILE.search(str(path).replace("\\", "/"))
    if match is None:
        raise ValueError(f"{path} is not a step<N>/line_search.parquet file")
    return int(match["step"])


def _collected(name: str):
    def inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
        keys = shown_runs(config, exp, spec)
        return {name: [analysis_file(ANALYSIS, k, f"{name}.parquet") for k in keys]}

    return inputs


def _line_search_inputs(config: Mapping[str, Any], exp: str, spec: Mapping[str, Any]) -> Inputs:
    """``step`` given: that checkpoint's line search. Null: every analysed checkpoint's, and the
    collected eigenvalues that pick the one with the most negative eigenvalue. Both: the
    collected summary, whose refined alpha* is marked on the search panel."""
    keys = shown_runs(config, exp, spec)
    summaries = [analysis_file(ANALYSIS, k, "line_search_summary.parquet") for k in keys]
    if spec.get("step") is not None:
        return {
            "line_search": [line_search_file(k, spec["step"]) for k in keys],
            "line_search_summary": summaries,
        }
    return {
        "line_search_summary": summaries,
        "eigenvalues": [analysis_file(ANALYSIS, k, "eigenvalues.parquet") for k in keys],
        "line_search": [
            line_search_file(k, step)
            for k in keys
            for step in plan.eigenpair_steps(config, exp, k.run)
        ],
    }


# ---- checks ----


def analysed_steps(config: Mapping[str, Any], exp: str, entry: Mapping[str, Any]) -> list[int]:
    """Checkpoint steps analysed for every run the entry shows (the steps ``step`` may name)."""
    covered = plan.analysis_runs(config, exp, ANALYSIS)
    runs = [r for r in (entry.get("runs") or config["experiments"][exp]["runs"]) if r in covered]
    steps = [set(plan.eigenpair_steps(config, exp, run)) for run in runs]
    return sorted(set.intersection(*steps)) if steps else []


def _check_line_search(
    config: Mapping[str, Any], exp: str, entry: Mapping[str, Any], where: str
) -> None:
    check_analysis(config, exp, entry, where, ANALYSIS)
    step = entry.get("step")
    allowed = analysed_steps(config, exp, entry)
    if step is not None and step not in allowed:
        raise ConfigError(
            f"{where}.step is {step}, not an analysed checkpoint; allowed: {allowed} "
            f"(experiments.{exp}.analyses.{ANALYSIS}.steps), or null (the checkpoint with the "
            "most negative eigenvalue)"
        )


def _check_every_step(
    config: Mapping[str, Any], exp: str, entry: Mapping[str, Any], where: str
) -> None:
    check_analysis(config, exp, entry, where, ANALYSIS)
    if entry.get("step") is not None:
        raise ConfigError(
            f"{where}.step is {entry['step']}, but kind {entry['kind']} draws every analysed "
            f"checkpoint ({analysed_steps(config, exp, entry)}); remove step (only kind "
            "line_search takes one)"
        )


def _check_summary(
    config: Mapping[str, Any], exp: str, entry: Mapping[str, Any], where: str
) -> None:
    _check_every_step(config, exp, entry, where)
    if entry.get("zoom") is None or entry.get("zoom") == []:
        raise ConfigError(
            f"{where}: a line_search_summary figure needs `zoom`, a number or a list (a "
            "column of panels per zoom shows lambda in [-zoom, zoom])"
        )


def _check_table(config: Mapping[str, Any], exp: str, entry: Mapping[str, Any], where: str) -> None:
    check_analysis(config, exp, entry, where, ANALYSIS)


# ---- figure helpers ----


def _by_run(paths: list[str]) -> dict[RunKey, list[str]]:
    grouped: dict[RunKey, list[str]] = {}
    for path in paths:
        grouped.setdefault(key_of(path, ANALYSIS), []).append(path)
    return grouped


def _title(key: RunKey, keys: list[RunKey], look: Any) -> str:
    if len({k.model for k in keys}) > 1:
        return f"{look.model(key.model)}, {look.name(key.run)}"
    return look.name(key.run)


def _empty(ax: Axes, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} (run skipped)", ha="center", va="center", transform=ax.transAxes)


def _shades(which: str, n: int) -> list[tuple[float, ...]]:
    """``n`` colors of ``which``'s family, darkest first."""
    return list(colormaps[FAMILIES[which]](np.linspace(*SHADES, max(n, 1))))


def _symlog_steps(ax: Axes, steps: np.ndarray) -> None:
    """Log step axis that keeps step 0: linear up to the first positive step, log beyond."""
    positive = steps[steps > 0]
    if positive.size:
        ax.set_xscale("symlog", linthresh=float(positive.min()))


# ---- figure: eigenvalues ----


def draw_eigenvalues(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Figure:
    """log10|lambda| of every LA/SA pair vs step, one line per pair, a panel per (model, run).

    LA pairs are blue, SA pairs red (darkest: lambda_1, the largest of LA, the smallest of SA);
    a filled marker is lambda > 0, an open one lambda < 0 (the log hides the sign). The black
    dashed line is the loss on the fixed subset (right axis). With ``log_x`` (default true)
    the step axis is symlog with its linear stretch up to the first positive step, so step 0
    is drawn. Each pair's line has gid ``"<which>:<index>"``, the loss line gid ``"loss"``.
    """
    files = {key_of(p, ANALYSIS): p for p in inputs["eigenvalues"]}
    keys = list(files)
    if not keys:
        raise ValueError("no eigenvalues file to draw")
    with style.styled():
        fig = Figure(
            figsize=(style.TEXT_WIDTH, min(style.MAX_HEIGHT, 1.0 + style.PANEL_HEIGHT * len(keys))),
            layout="constrained",
        )
        axes = fig.subplots(len(keys), 1, squeeze=False)[:, 0]
        legend: list[Line2D] = []
        for ax, key in zip(axes, keys, strict=True):
            ax.set_title(_title(key, keys, look), loc="left", fontweight="bold")
            frame = pd.read_parquet(files[key])
            if frame.empty:
                _empty(ax, "eigenpairs")
                continue
            handles = _draw_pairs(ax, frame)
            loss = frame.groupby("step", sort=True)["loss"].first()
            right = ax.twinx()
            right.spines["right"].set_visible(True)
            right.grid(False)
            right.plot(loss.index, loss.to_numpy(), "k--", lw=1.0, gid="loss")
            right.set_ylabel("loss (subset)")
            handles.append(Line2D([], [], color="k", ls="--", lw=1.0, label="loss (right axis)"))
            if spec.get("log_x", True):
                _symlog_steps(ax, frame["step"].to_numpy())
            ax.set_xlabel("step")
            ax.set_ylabel(r"$\log_{10}|\lambda|$")
            legend = legend or handles
        if legend:  # below the panels: the lines of both axes would cross it inside
            fig.legend(handles=legend, loc="outside lower center", ncols=3)
    return fig


def _draw_pairs(ax: Axes, frame: pd.DataFrame) -> list[Line2D]:
    handles = []
    for which in WHICH:
        pairs = frame[frame["which"] == which]
        indices = sorted(pairs["index"].unique())
        colors = _shades(which, len(indices))
        for index, color in zip(indices, colors, strict=True):
            pair = pairs[pairs["index"] == index].sort_values("step")
            x = pair["step"].to_numpy()
            lam = pair["eigenvalue"].to_numpy(dtype=float)
            with np.errstate(divide="ignore"):
                y = np.log10(np.abs(lam))
            ax.plot(x, y, color=color, lw=1.0, gid=f"{which}:{index}")
            ax.plot(x[lam > 0], y[lam > 0], "o", color=color, ms=3)
            ax.plot(x[lam < 0], y[lam < 0], "o", mfc="none", mec=color, ms=4)
        if indices:
            label = "largest" if which == "LA" else "smallest"
            handles.append(
                Line2D(
                    [],
                    [],
                    color=colors[0],
                    label=f"{which}({len(indices)}): {label}, " + r"$\lambda_1$ darkest",
                )
            )
    handles.append(Line2D([], [], ls="", marker="o", color="0.3", ms=3, label=r"$\lambda > 0$"))
    handles.append(
        Line2D([], [], ls="", marker="o", mfc="none", mec="0.3", ms=4, label=r"$\lambda < 0$")
    )
    return handles


# ---- figure: line_search ----


def most_negative_step(eigenvalues: pd.DataFrame) -> int:
    """The checkpoint whose smallest eigenvalue is the smallest (the earliest on ties)."""
    if eigenvalues.empty:
        raise ValueError("no eigenvalues to choose a checkpoint from")
    ordered = eigenvalues.sort_values(["eigenvalue", "step"], kind="stable")
    return int(ordered["step"].iloc[0])


def most_negative_pair(curve: pd.DataFrame) -> pd.DataFrame:
    """The line search of the pair with the smallest eigenvalue at one checkpoint."""
    pair = curve.sort_values(["eigenvalue", "which", "index"], kind="stable").iloc[0]
    chosen = (curve["which"] == pair["which"]) & (curve["index"] == pair["index"])
    return curve[chosen]


def draw_line_search(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Figure:
    """Loss along the most negative eigenvector, L(theta - alpha (g.v) v), exact (solid, the
    run's color, gid ``"exact"``) vs its quadratic model L0 - alpha (g.v)^2 + alpha^2 (g.v)^2
    lambda / 2 (dashed, gid ``"quadratic"``): a row per (model, run), a panel per span of
    ``analyses.eigenpairs.line_search.spans`` and a last panel for the step search's log grid
    (symlog alpha axis, the refined alpha* marked, gid ``"alpha_star"``, when the summary is
    given). The checkpoint is ``step`` (the study's t = 50 by default in config.yaml; null:
    the one whose most negative eigenvalue is the most negative). The y range follows the
    exact loss (with a margin of its own height), so a quadratic model that leaves it is
    clipped."""
    curves = _chosen_curves(spec, inputs)
    keys = list(curves)
    if not keys:
        raise ValueError("no line search file to draw")
    panels = sorted(
        {(str(g), float(s)) for c in curves.values() if c is not None
         for g, s in zip(_grid_of(c), c["span"], strict=True)},
        key=lambda gs: (gs[0] == "log", gs[1]),
    )  # fmt: skip
    cols = max(len(panels), 1)
    stars = _summaries(inputs)
    with style.styled():
        fig = Figure(
            figsize=(style.TEXT_WIDTH, min(style.MAX_HEIGHT, 0.6 + style.PANEL_HEIGHT * len(keys))),
            layout="constrained",
        )
        axes = fig.subplots(len(keys), cols, squeeze=False)
        for row, key in zip(axes, keys, strict=True):
            curve = curves[key]
            if curve is None or curve.empty:
                _empty(row[0], "line search")
                for ax in row[1:]:
                    ax.set_visible(False)
                continue
            pair = most_negative_pair(curve)
            lam, step = float(pair["eigenvalue"].iloc[0]), int(pair["step"].iloc[0])
            grids = _grid_of(pair)
            for i, (ax, (grid, span)) in enumerate(zip(row, panels, strict=False)):
                chosen = (grids == grid) & np.isclose(pair["span"], span)
                part = pair[chosen].sort_values("alpha")
                _draw_curve(ax, part, look.color(key.run))
                title = f"{_title(key, keys, look)}: step {step}, " + rf"$\lambda = {lam:.3g}$"
                title += "\n"
                if grid == "log":
                    _symlog_alpha(ax, part)
                    title += rf"search, $|\alpha| \leq {span:g}$"
                    star = _star_of(stars.get(key), pair)
                    if star is not None:
                        ax.plot(
                            [star["alpha_star"]], [star["loss_star"]], "kx", ms=6,
                            gid="alpha_star", label=_star_label(star),
                        )  # fmt: skip
                        ax.legend(loc="best")
                else:
                    title += rf"$|\alpha| \leq {span:g}$"
                ax.set_title(title, loc="left")
                ax.set_xlabel(r"$\alpha$")
                if i == 0:
                    ax.set_ylabel(r"$L(\theta - \alpha\,(g\cdot v)\,v)$")
                    ax.legend(loc="best")
    return fig


def _symlog_alpha(ax: Axes, part: pd.DataFrame) -> None:
    """A symlog alpha axis over the search grid, a few decades labelled; the y range kept
    near L0, where the decreases are (a huge step's loss may be astronomically large)."""
    size = part["alpha"].abs()
    low, high = float(size[size > 0].min()), float(size.max())
    ax.set_xscale("symlog", linthresh=low)
    decades = np.arange(np.ceil(np.log10(low)), np.floor(np.log10(high)) + 1)
    step = max(1, int(np.ceil(decades.size / 2)))
    shown = 10.0 ** decades[::-1][::step]
    ax.set_xticks(np.concatenate([-shown, [0.0], shown[::-1]]))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    exact = part["loss"].to_numpy(dtype=float)
    at_zero = part.loc[part["alpha"] == 0, "loss"]
    loss0 = float(at_zero.iloc[0]) if len(at_zero) else float(np.nanmin(exact))
    finite = exact[np.isfinite(exact)]
    if finite.size:
        bottom = float(finite.min())
        height = max(loss0 - bottom, 0.05 * abs(loss0), 1e-12)
        ax.set_ylim(bottom - 0.2 * height, loss0 + height)


def _grid_of(curve: pd.DataFrame) -> np.ndarray:
    """Each row's grid (linear span or the step search's log grid)."""
    if "grid" in curve.columns:
        return curve["grid"].astype(str).to_numpy()
    return np.full(len(curve), "linear")


def _summaries(inputs: Inputs) -> dict[RunKey, pd.DataFrame]:
    return {key_of(p, ANALYSIS): pd.read_parquet(p) for p in inputs.get("line_search_summary", [])}


def _star_of(summary: pd.DataFrame | None, pair: pd.DataFrame) -> pd.Series | None:
    """The summary row (refined alpha*) of the pair drawn, if the summary has it."""
    if summary is None or summary.empty:
        return None
    first = pair.iloc[0]
    match = summary[
        (summary["step"] == first["step"])
        & (summary["which"] == first["which"])
        & (summary["index"] == first["index"])
    ]
    return None if match.empty else match.iloc[0]


def _star_label(star: pd.Series) -> str:
    label = rf"$\alpha^* = {float(star['alpha_star']):.3g}$"
    return label + " (bounded by the search)" if bool(star["bounded"]) else label


def _chosen_curves(spec: Mapping[str, Any], inputs: Inputs) -> dict[RunKey, pd.DataFrame | None]:
    files = _by_run(inputs["line_search"])
    if spec.get("step") is not None:
        return {key: pd.read_parquet(paths[0]) for key, paths in files.items()}
    chosen: dict[RunKey, pd.DataFrame | None] = {}
    for path in inputs["eigenvalues"]:
        key = key_of(path, ANALYSIS)
        eig = pd.read_parquet(path)
        if eig.empty:
            chosen[key] = None
            continue
        step = most_negative_step(eig)
        by_step = {step_of(p): p for p in files.get(key, [])}
        chosen[key] = pd.read_parquet(by_step[step])
    return chosen


def _draw_curve(ax: Axes, part: pd.DataFrame, color: str) -> None:
    alpha = part["alpha"].to_numpy()
    exact = part["loss"].to_numpy(dtype=float)
    ax.plot(alpha, exact, color=color, label="exact", gid="exact")
    ax.plot(
        alpha,
        part["loss_quadratic"].to_numpy(dtype=float),
        color="k",
        ls="--",
        lw=1.0,
        label="quadratic model",
        gid="quadratic",
    )
    low, high = float(np.nanmin(exact)), float(np.nanmax(exact))
    if high > low:
        ax.set_ylim(low - (high - low), high + (high - low))


# ---- figure: line_search_summary ----


def summary_zooms(spec: Mapping[str, Any]) -> list[float]:
    """The entry's ``zoom`` as a sorted list (a number or a list in config)."""
    zoom = spec["zoom"]
    return sorted(float(z) for z in (zoom if isinstance(zoom, list | tuple) else [zoom]))


def draw_line_search_summary(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Figure:
    """Over every checkpoint and pair: the best loss decrease L0 - L(alpha*) vs lambda (top)
    and 1/alpha* vs lambda (bottom), a column per ``zoom`` (lambda in [-zoom, zoom]; the study
    shows [-1, 1] and [-5, 5]) and a last column over the whole range (symlog x, and y for
    1/alpha*: linear within +-the largest zoom). Points are colored by step (colorbar), LA as
    circles and SA as triangles, filled where alpha* was refined inside the search and open
    where it sits at the search's edge (``bounded``: the true best step may be larger, so
    1/alpha* is an upper bound). The dashed line is the quadratic model's 1/alpha* = lambda
    (lambda > 0). A pair whose best step is alpha* = 0 has no finite 1/alpha* and is left out
    of the bottom panels. Scatter gids ``"<decrease|inverse_alpha>:<zoom<z>|all>:<LA|SA>"``
    (``:bounded`` appended for the open markers); a row pair per (model, run)."""
    files = {key_of(p, ANALYSIS): p for p in inputs["line_search_summary"]}
    keys = list(files)
    if not keys:
        raise ValueError("no line search summary file to draw")
    zooms = summary_zooms(spec)
    with style.styled():
        fig = Figure(
            figsize=(
                style.TEXT_WIDTH,
                min(style.MAX_HEIGHT, 0.6 + 2 * style.PANEL_HEIGHT * len(keys)),
            ),
            layout="constrained",
        )
        axes = fig.subplots(2 * len(keys), len(zooms) + 1, squeeze=False)
        for r, key in enumerate(keys):
            frame = pd.read_parquet(files[key])
            block = axes[2 * r : 2 * r + 2]
            block[0, 0].set_title(_title(key, keys, look), loc="left", fontweight="bold")
            if frame.empty:
                _empty(block[0, 0], "line search")
                for ax in block.flat[1:]:
                    ax.set_visible(False)
                continue
            mappable = _draw_summary(block, frame, zooms)
            colorbar = fig.colorbar(mappable, ax=list(block.flat), label="step")
            steps = np.sort(frame["step"].unique())
            colorbar.set_ticks(np.arange(steps.size), labels=[str(s) for s in steps])
        fig.legend(handles=_summary_legend(), loc="outside lower center", ncols=3)
    return fig


def _draw_summary(block: np.ndarray, frame: pd.DataFrame, zooms: list[float]) -> Any:
    steps = np.sort(frame["step"].unique())
    rank = np.searchsorted(steps, frame["step"].to_numpy())
    cmap = ListedColormap(colormaps["viridis"](np.linspace(0, 1, steps.size)))
    norm = BoundaryNorm(np.arange(steps.size + 1) - 0.5, steps.size)
    lam = frame["eigenvalue"].to_numpy(dtype=float)
    bounded = (
        frame["bounded"].to_numpy(dtype=bool)
        if "bounded" in frame.columns
        else np.zeros(len(frame), dtype=bool)
    )
    which_of = frame["which"].to_numpy()
    with np.errstate(divide="ignore"):
        inverse = 1.0 / frame["alpha_star"].to_numpy(dtype=float)
    quantities = (
        ("decrease", frame["best_decrease"].to_numpy(dtype=float), "best loss decrease"),
        ("inverse_alpha", inverse, r"$1/\alpha^*$"),
    )
    columns = [(f"zoom{z:g}", z) for z in zooms] + [("all", None)]
    widest = zooms[-1]
    mappable = None
    for row, (name, y, label) in zip(block, quantities, strict=True):
        for ax, (part, zoom) in zip(row, columns, strict=True):
            keep = np.isfinite(y) & (np.abs(lam) <= zoom if zoom is not None else True)
            for which, marker in zip(WHICH, MARKERS, strict=True):
                for edge in (False, True):
                    chosen = keep & (which_of == which) & (bounded == edge)
                    if edge and not chosen.any():
                        continue
                    points = ax.scatter(
                        lam[chosen],
                        y[chosen],
                        c=rank[chosen] if not edge else None,
                        cmap=cmap if not edge else None,
                        norm=norm if not edge else None,
                        marker=marker,
                        s=10 if not edge else 14,
                        gid=f"{name}:{part}:{which}" + (":bounded" if edge else ""),
                    )
                    if edge:  # open markers, edge colored by step
                        points.set_facecolor("none")
                        points.set_edgecolors(cmap(norm(rank[chosen])))
                    else:
                        mappable = points
            if name == "inverse_alpha":
                top = zoom if zoom is not None else max(float(np.nanmax(lam)), widest)
                x = np.unique(np.concatenate([np.linspace(0, min(widest, top)), [top]]))
                if zoom is None and top > widest:
                    x = np.unique(np.concatenate([x, np.geomspace(widest, top)]))
                ax.plot(x, x, "k--", lw=0.8, gid=f"model:{part}")
            if zoom is not None:
                ax.set_xlim(-zoom, zoom)
                ax.set_title(rf"$|\lambda| \leq {zoom:g}$", loc="right")
            else:  # symlog only where the data leave the widest zoom (else it is linear)
                if np.nanmax(np.abs(lam)) > widest:
                    ax.set_xscale("symlog", linthresh=widest)
                if (
                    name == "inverse_alpha"
                    and np.nanmax(np.abs(y[np.isfinite(y)]), initial=0) > widest
                ):
                    ax.set_yscale("symlog", linthresh=widest)
                ax.set_title("all", loc="right")
            if ax is row[0]:
                ax.set_ylabel(label)
            ax.set_xlabel(r"$\lambda$")
    return mappable


def _summary_legend() -> list[Line2D]:
    handles = [
        Line2D([], [], ls="", marker=marker, color="0.3", ms=4, label=f"{which} pairs")
        for which, marker in zip(WHICH, MARKERS, strict=True)
    ]
    handles.append(
        Line2D(
            [], [], ls="", marker="o", mfc="none", mec="0.3", ms=4,
            label=r"$\alpha^*$ at the search's edge (bounded by the search)",
        )
    )  # fmt: skip
    handles.append(
        Line2D([], [], color="k", ls="--", lw=0.8, label=r"quadratic model: $1/\alpha^* = \lambda$")
    )
    return handles


# ---- table: subset_check ----


def subset_check_numbers(inputs: Inputs) -> pd.DataFrame:
    """Every shown run's subset-check rows with its model, run and seed."""
    frames = []
    for path in inputs["subset_check"]:
        key = key_of(path, ANALYSIS)
        frame = pd.read_parquet(path)
        frames.append(frame.assign(model=key.model, run=key.run, seed=key.seed))
    if not frames:
        raise ValueError("no subset check file to tabulate")
    numbers = pd.concat(frames, ignore_index=True)
    first = ["model", "run", "seed"]
    return numbers[first + [c for c in numbers.columns if c not in first]]


def build_subset_check_table(spec: Mapping[str, Any], inputs: Inputs, look: Any) -> Table:
    """A row per eigenpair (LA then SA, lambda_1 first; the first ``top`` of each, default all):
    the whole training split's and the subset's eigenvalue, their relative difference, the
    angle between the eigenvectors and the principal angle between the two eigenspaces. A
    pair where eigsh did not converge is marked with a dagger."""
    numbers = subset_check_numbers(inputs)
    top = spec.get("top")
    if top is not None:
        numbers = numbers[numbers["index"] < top]
    groups = list(dict.fromkeys(zip(numbers["model"], numbers["run"], strict=True)))
    show_run = len(groups) > 1
    show_model = len({m for m, _ in groups}) > 1
    header = (["Model"] if show_model else []) + (["Optimizer"] if show_run else [])
    header += [
        "",
        "$i$",
        r"$\lambda_i$ (all)",
        r"$\lambda_i$ (subset)",
        r"$|\Delta\lambda_i| / |\lambda_i|$",
        r"angle ($^\circ$)",
        r"principal angle ($^\circ$)",
    ]
    rows, unconverged = [], False
    for model in spec["models"]:
        for run in spec["runs"]:
            mine = numbers[(numbers["model"] == model) & (numbers["run"] == run)]
            for which in WHICH:
                for _, pair in mine[mine["which"] == which].sort_values("index").iterrows():
                    mark = "" if bool(pair["converged"]) else r"$^\dagger$"
                    unconverged |= bool(mark)
                    row = [escape(look.model(model))] if show_model else []
                    row += [escape(look.name(run))] if show_run else []
                    row += [
                        which,
                        str(int(pair["index"]) + 1) + mark,
                        _sci(pair["eigenvalue_full"]),
                        _sci(pair["eigenvalue_subset"]),
                        _sci(pair["rel_diff"]),
                        _fixed(pair["angle_deg"]),
                        _fixed(pair["principal_angle_deg"]),
                    ]
                    rows.append(row)
    notes = [r"$^\dagger$ eigsh did not converge for this pair."] if unconverged else []
    align = "l" * (len(header) - 5) + "r" * 5
    return Table(tabular(header, rows, align=align, notes=notes), numbers.reset_index(drop=True))


def _sci(value: float) -> str:
    """Three significant digits in math mode; powers of ten outside [1e-3, 1e4)."""
    if not math.isfinite(value):
        return "--"
    if value == 0 or 1e-3 <= abs(value) < 1e4:
        return f"${value:.3g}$"
    exponent = math.floor(math.log10(abs(value)))
    return rf"${value / 10**exponent:.2f} \times 10^{{{exponent}}}$"


def _fixed(value: float) -> str:
    return f"{value:.1f}" if math.isfinite(value) else "--"


EIGENVALUES = Kind(inputs=_collected("eigenvalues"), check=_check_every_step, draw=draw_eigenvalues)
LINE_SEARCH = Kind(inputs=_line_search_inputs, check=_check_line_search, draw=draw_line_search)
LINE_SEARCH_SUMMARY = Kind(
    inputs=_collected("line_search_summary"),
    check=_check_summary,
    draw=draw_line_search_summary,
)
SUBSET_CHECK_TABLE = Kind(
    inputs=_collected("subset_check"), check=_check_table, draw=build_subset_check_table
)
