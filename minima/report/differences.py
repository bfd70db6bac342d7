"""Where the workflow still measures differently from the studies, per experiment, in words.

A reproduction's verdicts mean something only about the quantities the studies measured; where
the method still differs (a setting the study does not state, a size we cannot afford, a
choice between two readings of the study) the paper says so in its "What was run" section.
The sentences are built from the config, so they state the values that were actually used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _analysis(config: Mapping[str, Any], exp: str, name: str) -> Mapping[str, Any] | None:
    return ((config["experiments"].get(exp) or {}).get("analyses") or {}).get(name)


def _e2(config: Mapping[str, Any]) -> list[str]:
    grid = ((config["experiments"]["e2"].get("sweeps") or {}).get("grid")) or None
    if grid is None:
        return [
            "The study's grid search (5 values per hyper-parameter, 5 repeats) is not configured."
        ]
    points = {run: 1 for run in grid["grid"]}
    for run, values in grid["grid"].items():
        for options in values.values():
            points[run] *= len(options)
    runs = sum(points.values()) * len(grid["seeds"])
    text = (
        f"E2's grid search covers {sum(points.values())} points x {len(grid['seeds'])} seeds "
        f"= {runs:,} runs; its grid values are ours (the study gives only the winners), and "
        "Adam's betas are not searched (the study's best are the defaults)."
    )
    if not grid["build"]:
        text += " It is not built by default: the main runs use the study's reported best values."
    elif not grid["feed"]:
        text += " The main runs use the study's reported best values, not its winners."
    return [text]


def _e3(config: Mapping[str, Any]) -> list[str]:
    out = []
    sim = _analysis(config, "e3", "similarity")
    if sim:
        out.append(
            f"E3's SVCCA and Procrustes distance use the first {sim['examples']:,} test images "
            f"(conv maps pooled to at most {sim['spatial_pool']}x{sim['spatial_pool']}); the "
            "study used only the first 20, with which CCA-type scores are nearly degenerate. "
            f"Filter images show {sim['filter_layer']}, the layer the study's text names (its "
            'figures say "layer3.1 Conv2d").'
        )
    out.append(
        "E3's normalization run: the study does not state its epochs or learning rate; we "
        "give it the AdaHessian run's."
    )
    return out


def _e5(config: Mapping[str, Any], exp: str) -> list[str]:
    pairs = _analysis(config, exp, "eigenpairs")
    if not pairs:
        return []
    search = pairs["line_search"]["search"]
    return [
        f"{exp.upper()}: the study does not state its alpha grid; alpha* is searched over "
        f"|alpha| in [{search['min']:g}, {search['max']:g}] on both signs ({search['per_decade']} "
        "points per decade, then a bounded 1-D refinement), and an alpha* at the edge is "
        'flagged as bounded by the search (its 1/alpha* is then an upper bound). "Best loss '
        "decrease\" is L0 - L(alpha*) (the study's axis is named both ways). Steps t count "
        "optimizer steps (minibatches)."
    ]


def study_differences(
    config: Mapping[str, Any], experiments: Sequence[str]
) -> dict[str, list[str]]:
    """Per experiment of ``experiments``: sentences saying where we still differ from its study."""
    found = {}
    for exp in experiments:
        if exp == "e2":
            found[exp] = _e2(config)
        elif exp == "e3":
            found[exp] = _e3(config)
        elif exp.startswith("e5"):
            found[exp] = _e5(config, exp)
    return {exp: lines for exp, lines in found.items() if lines}
