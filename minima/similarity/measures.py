"""Registry of similarity measures for layer x layer matrices over gathered activations.

Each measure is split into ``prepare`` (once per layer: centring, SVD basis, ...) and
``compare`` (once per layer pair), so an L_a x L_b matrix costs L_a + L_b preparations
instead of 2 L_a L_b. ``compare(prepare(X), prepare(Y))`` equals the module-level function
of the same measure (tested).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from minima.similarity._matrix import ArrayLike, as_matrix, center, row_factor
from minima.similarity.cca import _Basis, _basis, _cca_from_bases, _pwcca_from_bases
from minima.similarity.cka import cka_from_grams
from minima.similarity.procrustes import _distance, _normalized_factor


@dataclass(frozen=True)
class Measure:
    """A similarity measure split into a per-layer and a per-pair step.

    Attributes:
        name: registry key, also the value column of the tables.
        prepare: X (n, p) float64 -> per-layer state; accepts ``prepare_options``.
        compare: (state_x, state_y) -> float; accepts ``compare_options``.
        prepare_options: keyword options of ``prepare``.
        compare_options: keyword options of ``compare``.
        higher_is_similar: False for distances (OPD).
    """

    name: str
    prepare: Callable[..., Any]
    compare: Callable[..., float]
    prepare_options: frozenset[str] = frozenset()
    compare_options: frozenset[str] = frozenset()
    higher_is_similar: bool = True


def _cka_prepare(X: Tensor) -> tuple[Tensor, float]:
    F = row_factor(center(X))  # (n, min(n, p)) with the same X X^T
    return F, float(torch.linalg.matrix_norm(F.T @ F))


def _cka_compare(sx: tuple[Tensor, float], sy: tuple[Tensor, float]) -> float:
    (Fx, norm_x), (Fy, norm_y) = sx, sy
    denom = norm_x * norm_y
    return float((Fx.T @ Fy).square().sum()) / denom if denom > 0 else math.nan


def _centred_gram(X: Tensor) -> Tensor:
    Xc = center(X)
    return Xc @ Xc.T


def _cka_unbiased_compare(K: Tensor, L: Tensor) -> float:
    return cka_from_grams(K, L, unbiased=True)


def _svcca_prepare(X: Tensor, *, variance_kept: float = 0.99, rtol: float = 1e-8) -> _Basis:
    return _basis(X, variance_kept=variance_kept, rtol=rtol)


def _svcca_compare(bx: _Basis, by: _Basis) -> float:
    return float(_cca_from_bases(bx, by).correlations.mean())


def _pwcca_prepare(X: Tensor, *, variance_kept: float | None = None, rtol: float = 1e-8) -> _Basis:
    return _basis(X, variance_kept=variance_kept, rtol=rtol)


def _pwcca_compare(bx: _Basis, by: _Basis, *, weight_by: str = "smaller") -> float:
    if weight_by not in ("smaller", "x", "y"):
        raise ValueError(f"weight_by must be 'smaller', 'x' or 'y', got {weight_by!r}")
    return _pwcca_from_bases(bx, by, weight_by)  # type: ignore[arg-type]


_CCA_OPTIONS = frozenset({"variance_kept", "rtol"})

MEASURES: dict[str, Measure] = {
    "cka": Measure("cka", _cka_prepare, _cka_compare),
    "cka_unbiased": Measure("cka_unbiased", _centred_gram, _cka_unbiased_compare),
    "svcca": Measure("svcca", _svcca_prepare, _svcca_compare, _CCA_OPTIONS),
    "pwcca": Measure(
        "pwcca", _pwcca_prepare, _pwcca_compare, _CCA_OPTIONS, frozenset({"weight_by"})
    ),
    "opd": Measure("opd", _normalized_factor, _distance, higher_is_similar=False),
}


def get_measure(name: str) -> Measure:
    """Look a measure up by name: ``cka``, ``cka_unbiased``, ``svcca``, ``pwcca`` or ``opd``."""
    try:
        return MEASURES[name]
    except KeyError:
        known = sorted(MEASURES)
        raise ValueError(f"unknown similarity measure {name!r}; known: {known}") from None


def _prepare_all(
    acts: Mapping[str, ArrayLike],
    side: str,
    measure: Measure,
    device: torch.device | str | None,
    options: dict[str, Any],
) -> tuple[dict[str, Any], int]:
    states, n_rows = {}, -1
    for name, A in acts.items():
        X = as_matrix(A, f"{side}[{name!r}]")
        X = X if device is None else X.to(device)
        if n_rows >= 0 and X.shape[0] != n_rows:
            raise ValueError(
                f"{side}[{name!r}] has shape {tuple(X.shape)}: other layers have {n_rows} rows"
            )
        n_rows = X.shape[0]
        states[name] = measure.prepare(X, **options)
    return states, n_rows


def similarity_matrix(
    acts_a: Mapping[str, ArrayLike],
    acts_b: Mapping[str, ArrayLike],
    *,
    measure: str,
    device: torch.device | str | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Layer x layer table of one measure between two sets of activations.

    Args:
        acts_a: layer name -> activations (n_examples, p_layer) of model A, in layer order.
        acts_b: the same for model B, on the same n_examples in the same order.
        measure: a name from :data:`MEASURES`.
        device: where to compute (float64); default: where each matrix already is.
        **options: the measure's keyword options (svcca/pwcca: ``variance_kept``, ``rtol``;
            pwcca: ``weight_by``).

    Returns:
        Tidy DataFrame, one row per layer pair, with columns layer_a, layer_b, index_a,
        index_b (positions in the layer order) and a value column named after the measure.
    """
    m = get_measure(measure)
    unknown = set(options) - m.prepare_options - m.compare_options
    if unknown:
        allowed = sorted(m.prepare_options | m.compare_options)
        raise ValueError(f"measure {measure!r} takes options {allowed}, got {sorted(unknown)}")
    prep = {k: v for k, v in options.items() if k in m.prepare_options}
    comp = {k: v for k, v in options.items() if k in m.compare_options}
    states_a, n_a = _prepare_all(acts_a, "acts_a", m, device, prep)
    states_b, n_b = _prepare_all(acts_b, "acts_b", m, device, prep)
    if n_a != n_b:
        raise ValueError(f"acts_a has {n_a} examples per layer and acts_b has {n_b}")
    rows = [
        (la, lb, ia, ib, m.compare(sa, sb, **comp))
        for ia, (la, sa) in enumerate(states_a.items())
        for ib, (lb, sb) in enumerate(states_b.items())
    ]
    return pd.DataFrame(rows, columns=["layer_a", "layer_b", "index_a", "index_b", measure])
