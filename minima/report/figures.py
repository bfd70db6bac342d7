"""Figures of the training runs, drawn from the tidy per-epoch table of ``aggregate``.

Two kinds cover every training figure of the paper, each configured by *panels* (a panel
lists the quantities it draws and whether its y axis is logarithmic):

- ``curves``: one line per run (its color), mean over seeds with a +-1 std band, one row of
  panels per model. E1's gradient norm, E2's validation loss/accuracy and spectral norms,
  E3's accuracy/loss and normalization curves, E4's test accuracy and sharpness.
- ``run_grid``: one row per run, so each optimizer's quantities can be read on their own
  (E2's per-optimizer training/validation loss and gradient spectral norms).

Several quantities in one panel are told apart by line style (solid, dashed, ...), since
color always means the run. Figures are built on ``matplotlib.figure.Figure`` (no pyplot
state) and saved as PDF and PNG, each atomically.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from minima.report import style
from minima.report.aggregate import curve_stats
from minima.report.files import atomic_path
from minima.report.metrics import metric

# Lines of at most this many points get markers (a 1-epoch run is otherwise invisible).
MARKER_POINTS = 6


@dataclass(frozen=True)
class Look:
    """How runs and models are named and colored (config ``paper.labels``/``paper.colors``)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    colors: Mapping[str, str] = field(default_factory=dict)

    def name(self, run: str) -> str:
        return style.display_name(run, self.labels)

    def model(self, model: str) -> str:
        return style.model_name(model, self.labels)

    def color(self, run: str) -> str:
        """The run's color: its override, else the fixed map, else its stable fallback."""
        return style.color_for(run, self.colors)


@dataclass(frozen=True)
class Panel:
    """One panel: the quantities it draws (line styles in this order) and its y scale."""

    metrics: tuple[str, ...]
    log_y: bool = False
    ylabel: str | None = None

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> Panel:
        return cls(tuple(spec["metrics"]), bool(spec.get("log_y", False)), spec.get("ylabel"))

    def label(self) -> str:
        """The y-axis label: given, or the quantity's (with unit), or what the quantities share.

        Long labels go onto two lines, the unit on the second, so that they fit a panel's height.
        """
        if self.ylabel:
            return _wrap(self.ylabel)
        infos = [metric(m) for m in self.metrics]
        if len(infos) == 1:
            text = infos[0].label
        else:
            text = _shared_words([i.label for i in infos]) or " / ".join(i.symbol for i in infos)
        units = {i.unit for i in infos}
        return _wrap(text, units.pop() if len(units) == 1 else "")


# Words that do not end a shared label ("spectral norm of the" -> "spectral norm").
_DANGLING = {"of", "the", "a", "an", "per"}


def _shared_words(labels: Sequence[str]) -> str:
    """The leading words all labels share, else their shared last word, else ''."""
    split = [label.split() for label in labels]
    prefix = []
    for words in zip(*split, strict=False):
        if len(set(words)) > 1:
            break
        prefix.append(words[0])
    while prefix and prefix[-1] in _DANGLING:
        prefix.pop()
    if prefix:
        return " ".join(prefix)
    tails = {words[-1] for words in split}
    return tails.pop() if len(tails) == 1 else ""


def _wrap(text: str, unit: str = "", width: int = 28) -> str:
    """``text (unit)`` on one line if short, else the unit (and long text) on new lines."""
    full = f"{text} ({unit})" if unit else text
    if len(full) <= width:
        return full
    lines = textwrap.wrap(text, width, break_on_hyphens=False)
    return "\n".join(lines + ([f"({unit})"] if unit else []))


def panels_from_spec(spec: Mapping[str, Any]) -> list[Panel]:
    """The ``panels`` of a figure's config entry."""
    return [Panel.from_spec(p) for p in spec["panels"]]


def _ordered(values: Sequence[str], order: Sequence[str] | None) -> list[str]:
    """``order`` restricted to the values present (all present values when no order)."""
    present = list(dict.fromkeys(values))
    if not order:
        return present
    return [v for v in order if v in present]


def _draw_line(
    ax: Axes, stats: pd.DataFrame, *, color: str, linestyle: str, scale: float, x: str
) -> None:
    xs = stats[x].to_numpy(dtype=float)
    mean = stats["mean"].to_numpy(dtype=float) * scale
    std = stats["std"].to_numpy(dtype=float) * scale
    marker = "o" if len(xs) <= MARKER_POINTS else None
    ax.plot(xs, mean, color=color, linestyle=linestyle, marker=marker)
    if np.isfinite(std).any():
        band = np.nan_to_num(std)
        ax.fill_between(xs, mean - band, mean + band, color=color, alpha=0.15, linewidth=0)


def _size(rows: int, cols: int, row_height: float) -> tuple[float, float]:
    width = style.TEXT_WIDTH if cols > 1 else 4.6
    height = min(style.MAX_HEIGHT, rows * row_height + 0.6)
    return width, height


def _legend(fig: Figure, runs: Sequence[str], colors: Mapping[str, str], look: Look) -> None:
    """The runs' colors, below the panels, in as many columns as fit the figure's width."""
    handles = [Line2D([], [], color=colors[r], label=look.name(r)) for r in runs]
    longest = max(len(h.get_label()) for h in handles)
    per_entry = 0.5 + 0.06 * longest  # inches: handle and padding, ~8 pt characters
    ncols = max(1, min(len(handles), int(fig.get_figwidth() // per_entry)))
    fig.legend(handles=handles, loc="outside lower center", ncols=ncols)


def _style_key(ax: Axes, panel: Panel) -> None:
    """Inside a panel drawing several quantities: which line style is which (in black)."""
    if len(panel.metrics) < 2:
        return
    handles = [
        Line2D([], [], color="black", linestyle=style.linestyle(i), label=metric(m).symbol)
        for i, m in enumerate(panel.metrics)
    ]
    ax.legend(handles=handles, loc="best", handlelength=2.2)


class _PlainLogFormatter(ticker.LogFormatter):
    """Matplotlib's choice of which log ticks get labels, written as plain numbers (0.1, 2)."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def plot_curves(
    frame: pd.DataFrame,
    panels: Sequence[Panel],
    *,
    runs: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    look: Look | None = None,
    x: str = "epoch",
) -> Figure:
    """One line per run (mean over seeds, +-1 std band) per quantity; a row per model. A run
    that switches optimizer (``hybrid``) gets a dotted vertical line in its color at each
    seed's switch epoch.

    Args:
        frame: tidy per-epoch metrics (``aggregate.load_metrics``).
        panels: the panels of each row, left to right.
        runs: runs to draw, in legend order (default: every run in ``frame``).
        models: models, one row each, top to bottom (default: every model in ``frame``).
        look: names and color overrides.
        x: the x column (``epoch`` or ``step``).
    """
    look = look or Look()
    runs, models = _ordered(frame["run"], runs), _ordered(frame["model"], models)
    if not runs or not models:
        raise ValueError(f"nothing to draw: runs {runs}, models {models} in the metrics")
    colors = style.colors_for(runs, look.colors)
    panels = list(panels)
    with style.styled():
        fig = Figure(
            figsize=_size(len(models), len(panels), style.PANEL_HEIGHT), layout="constrained"
        )
        axes = fig.subplots(len(models), len(panels), squeeze=False, sharex=True)
        for row, model in enumerate(models):
            rows = frame[(frame["model"] == model) & frame["run"].isin(runs)]
            for col, panel in enumerate(panels):
                ax = axes[row, col]
                for i, name in enumerate(panel.metrics):
                    stats = curve_stats(rows, name, by=("run",), x=x)
                    for run in runs:
                        line = stats[stats["run"] == run]
                        if len(line):
                            _draw_line(
                                ax,
                                line,
                                color=colors[run],
                                linestyle=style.linestyle(i),
                                scale=metric(name).scale,
                                x=x,
                            )
                for run in runs if x == "epoch" else []:  # the hybrid's switch, its color
                    for epoch in _switch_epochs(rows[rows["run"] == run]):
                        ax.axvline(
                            epoch, color=colors[run], linestyle=":", linewidth=1.0,
                            gid=f"switch:{run}:{epoch}",
                        )  # fmt: skip
                _finish_axes(ax, panel, x, last_row=row == len(models) - 1)
                if row == 0:
                    _style_key(ax, panel)
                if len(models) > 1:
                    ax.set_title(look.model(model))
        _legend(fig, runs, colors, look)
    return fig


def plot_run_grid(
    frame: pd.DataFrame,
    panels: Sequence[Panel],
    *,
    runs: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    look: Look | None = None,
    x: str = "epoch",
) -> Figure:
    """One row per (model, run), so each optimizer's quantities are read on their own.

    Same arguments as ``plot_curves``. A run that switches optimizer (``hybrid``) gets a
    dotted vertical line at each seed's switch epoch.
    """
    look = look or Look()
    runs, models = _ordered(frame["run"], runs), _ordered(frame["model"], models)
    if not runs or not models:
        raise ValueError(f"nothing to draw: runs {runs}, models {models} in the metrics")
    colors = style.colors_for(runs, look.colors)
    panels = list(panels)
    rows = [(m, r) for m in models for r in runs if ((frame.model == m) & (frame.run == r)).any()]
    row_height = min(1.7, (style.MAX_HEIGHT - 0.6) / max(len(rows), 1))
    with style.styled():
        fig = Figure(figsize=_size(len(rows), len(panels), row_height), layout="constrained")
        axes = fig.subplots(len(rows), len(panels), squeeze=False, sharex=True)
        for r, (model, run) in enumerate(rows):
            data = frame[(frame["model"] == model) & (frame["run"] == run)]
            switches = _switch_epochs(data) if x == "epoch" else []
            for col, panel in enumerate(panels):
                ax = axes[r, col]
                for i, name in enumerate(panel.metrics):
                    stats = curve_stats(data, name, by=("run",), x=x)
                    _draw_line(
                        ax,
                        stats,
                        color=colors[run],
                        linestyle=style.linestyle(i),
                        scale=metric(name).scale,
                        x=x,
                    )
                for epoch in switches:
                    ax.axvline(
                        epoch, color="0.4", linestyle=":", linewidth=1.0,
                        gid=f"switch:{run}:{epoch}",
                    )  # fmt: skip
                _finish_axes(ax, panel, x, last_row=r == len(rows) - 1)
                if r == 0:
                    _style_key(ax, panel)
                title = (
                    look.name(run) if len(models) == 1 else f"{look.model(model)}, {look.name(run)}"
                )
                ax.set_title(title, loc="left", color=colors[run], fontweight="bold")
        _legend(fig, runs, colors, look)
    return fig


def _switch_epochs(data: pd.DataFrame) -> list[int]:
    if "optimizer_switch" not in data.columns:
        return []
    switched = data[data["optimizer_switch"].fillna("").astype(str) != ""]
    return sorted({int(e) for e in switched["epoch"]})


def _finish_axes(ax: Axes, panel: Panel, x: str, *, last_row: bool) -> None:
    if panel.log_y:
        ax.set_yscale("log")
        # plain numbers (0.3, 2, 100) instead of 3 x 10^-1; minor ticks labelled only when
        # the axis spans less than about a decade
        ax.yaxis.set_major_formatter(_PlainLogFormatter())
        ax.yaxis.set_minor_formatter(_PlainLogFormatter(minor_thresholds=(1, 0.4)))
    ax.set_ylabel(panel.label())
    if last_row:
        ax.set_xlabel("epoch" if x == "epoch" else "iteration")
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    lines = [line.get_xdata() for line in ax.get_lines() if len(line.get_xdata())]
    if lines and len({float(v) for xs in lines for v in xs}) == 1:
        only = float(lines[0][0])  # a single epoch: centre it instead of a 0.1-wide axis
        ax.set_xlim(only - 1, only + 1)


FigureKind = Callable[..., Figure]

# Figure kinds drawn from training-run metrics: config `experiments.<exp>.figures.<name>.kind`.
FIGURE_KINDS: dict[str, FigureKind] = {"curves": plot_curves, "run_grid": plot_run_grid}


def training_figure(
    frame: pd.DataFrame, spec: Mapping[str, Any], look: Look | None = None
) -> Figure:
    """Draw a figure config entry (kind, panels, runs, models) from the tidy metrics."""
    kind = spec["kind"]
    if kind not in FIGURE_KINDS:
        raise KeyError(f"unknown figure kind {kind!r}; known: {sorted(FIGURE_KINDS)}")
    return FIGURE_KINDS[kind](
        frame,
        panels_from_spec(spec),
        runs=spec.get("runs"),
        models=spec.get("models"),
        look=look,
        x=spec.get("x", "epoch"),
    )


def save_figure(fig: Figure, pdf: str | Path, png: str | Path, *, dpi: int = 200) -> None:
    """Write ``fig`` as PDF (vector, for the paper) and PNG (for the HTML report), atomically."""
    with style.styled():
        for path, fmt in ((pdf, "pdf"), (png, "png")):
            with atomic_path(path) as tmp:
                fig.savefig(tmp, format=fmt, dpi=dpi)
