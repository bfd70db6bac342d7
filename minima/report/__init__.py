"""The paper stage: figures, tables and LaTeX sections from the runs' metrics and metadata.

``aggregate`` (runs -> tidy tables -> mean +- std over seeds), ``metrics`` (names, units,
rounding), ``style`` (one look, one color per optimizer), ``figures`` and ``tables`` (the kinds
config names), ``runinfo`` and ``sections`` (what was run, the generated LaTeX), ``build``
(latexmk), ``spec`` (the config's paper entries). No torch: the paper jobs start fast.
"""

from minima.report.aggregate import (
    curve_stats,
    load_finals,
    load_metrics,
    run_summaries,
    seed_stats,
)
from minima.report.style import color_for, colors_for, display_name

__all__ = [
    "color_for",
    "colors_for",
    "curve_stats",
    "display_name",
    "load_finals",
    "load_metrics",
    "run_summaries",
    "seed_stats",
]
