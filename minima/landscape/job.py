"""The `landscape` rule's work (E1): 1D and 2D loss surfaces of a final model, as one table.

For every configured direction pair ``(d1, d2)`` that applies to the run:

- ``eigen``: the top-2 Hessian eigenvectors (unit; largest algebraic with the native
  engine, largest magnitude with PyHessian: ``hessian.backend``);
- ``gradient_eigen``: the unit gradient and the top eigenvector (E1's Adam panel; the two
  are not orthogonal, their cosine is recorded);
- ``random``: two filter-normalised Gaussian directions (Li et al. 2018), drawn from
  ``seed`` and ``seed + 1``;

the loss and accuracy on the lines ``theta + alpha d1`` and ``theta + beta d2`` and on the
plane ``theta + alpha d1 + beta d2`` (eval mode: batch norm uses its trained statistics).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from minima.hessian.functional import FunctionalLoss
from minima.hessian.hvp import HessianOperator
from minima.hessian.job import (
    DTYPES,
    LOSS,
    AnalysisOutput,
    base_meta,
    empty_output,
    final_model_and_data,
    incomplete_reason,
    run_status,
)
from minima.hessian.spectrum import top_eigen
from minima.landscape.directions import random_direction
from minima.landscape.surface import landscape_1d, landscape_2d

COLUMNS = ("directions", "slice", "alpha", "beta", "loss", "accuracy")
LANDSCAPE_TABLES = {"landscape": COLUMNS}


def surface_table(
    fl: FunctionalLoss,
    d1: torch.Tensor,
    d2: torch.Tensor,
    *,
    span: tuple[float, float],
    points_1d: int,
    points_2d: int,
    chunk_size: int,
) -> pd.DataFrame:
    """Lines along ``d1`` (``slice`` ``d1``, beta = 0) and ``d2`` (``d2``, alpha = 0) and
    the plane (``plane``, ``points_2d`` x ``points_2d``), columns as ``COLUMNS`` minus
    ``directions``."""
    line1 = landscape_1d(fl, d1, span=span, num=points_1d, chunk_size=chunk_size)
    line2 = landscape_1d(fl, d2, span=span, num=points_1d, chunk_size=chunk_size)
    line2 = line2.assign(beta=line2["alpha"], alpha=0.0)
    plane = landscape_2d(fl, d1, d2, span=span, num=points_2d, chunk_size=chunk_size)
    return pd.concat(
        [line1.assign(slice="d1"), line2.assign(slice="d2"), plane.assign(slice="plane")],
        ignore_index=True,
    )


def landscape_job(
    model_spec: dict[str, Any],
    dataset: str,
    weights: str | Path,
    final_json: str | Path,
    *,
    manifest: str | Path,
    split: str | Path,
    std_scale: float | list[float],
    settings: Mapping[str, Any],
    hessian: Mapping[str, Any],
    device: torch.device,
) -> AnalysisOutput:
    """Loss surfaces of a trained model along the direction pairs in ``settings.directions``
    (already narrowed to this run by ``minima.plan.analysis_settings``).

    Returns:
        One table ``landscape`` with columns ``directions, slice, alpha, beta, loss,
        accuracy`` and the metadata (eigenvalues of the eigenvector directions, spans).
    """
    status = run_status(final_json)
    meta = {
        **base_meta("landscape", weights, status),
        "backend": hessian["backend"],
        "engine": dict(hessian),
        "settings": dict(settings),
    }
    reason = incomplete_reason(status)
    if reason:
        return empty_output(LANDSCAPE_TABLES, reason, meta)
    model, batches, data = final_model_and_data(
        model_spec,
        dataset,
        weights,
        manifest=manifest,
        split=split,
        std_scale=std_scale,
        settings=settings,
        hessian=hessian,
        device=device,
    )
    dtype = DTYPES[hessian["dtype"]]
    fl = HessianOperator(
        model, LOSS, batches, dtype=dtype, device=device, method=hessian["hvp_method"]
    )
    wanted = settings["directions"]
    started = time.perf_counter()
    pairs, notes = {}, {}
    k = 2 if "eigen" in wanted else 1 if "gradient_eigen" in wanted else 0
    if k:
        top = top_eigen(
            model,
            LOSS,
            batches,
            k,
            backend=hessian["backend"],
            tol=hessian["eigen_tol"],
            max_iter=hessian["eigen_max_iter"],
            dtype=dtype,
            device=device,
            method=hessian["hvp_method"],
            seed=settings["seed"],
        )
        vectors = top.eigenvectors.to(fl.device, fl.dtype)
        eigen_note = {
            "eigenvalues": top.eigenvalues.tolist(),
            "residuals": top.residuals.tolist(),
            "which": top.which,
            "converged": top.converged,
            "normalization": "unit vectors",
        }
    if "eigen" in wanted:
        pairs["eigen"] = (vectors[0], vectors[1])
        notes["eigen"] = eigen_note
    if "gradient_eigen" in wanted:
        _, g = fl.gradient()
        if float(g.norm()) == 0.0:
            raise ValueError("the gradient is exactly zero: no gradient direction to draw along")
        pairs["gradient_eigen"] = (g / g.norm(), vectors[0])
        notes["gradient_eigen"] = {
            **eigen_note,
            "eigenvalues": top.eigenvalues[:1].tolist(),
            "grad_norm": float(g.norm()),
            "cosine": float((g / g.norm()) @ vectors[0]),
        }
    if "random" in wanted:
        seed = settings["seed"]
        pairs["random"] = (random_direction(fl, seed=seed), random_direction(fl, seed=seed + 1))
        notes["random"] = {"seeds": [seed, seed + 1], "normalization": "filter (biases/BN: 0)"}
    directions_seconds = time.perf_counter() - started
    frames = []
    for name, (d1, d2) in pairs.items():
        span = tuple(wanted[name]["span"])
        notes[name]["span"] = list(span)
        table = surface_table(
            fl,
            d1,
            d2,
            span=span,
            points_1d=settings["points_1d"],
            points_2d=settings["points_2d"],
            chunk_size=hessian["chunk_size"],
        )
        frames.append(table.assign(directions=name))
    table = pd.concat(frames, ignore_index=True)[list(COLUMNS)]
    meta.update(
        {
            "status": "computed",
            "data": data,
            "loss": float(fl.loss()),
            "directions": notes,
            "seconds_directions": directions_seconds,
        }
    )
    return AnalysisOutput({"landscape": table}, meta)
