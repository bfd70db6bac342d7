"""The `sharpness` rule's work (E4): sharpness in the rho-ball of a final model.

Per radius ``rho``: SAM's first-order sharpness ``rho ||g||``, the exact increase at SAM's
point, and the largest increase found by a few steps of projected gradient ascent
(``minima.sharpness.ascent``), on fixed, unaugmented training examples in eval mode. E4's top
Hessian eigenvalue comes from the `spectrum` rule (``top_k: 1``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from minima.hessian.functional import FunctionalLoss
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
from minima.sharpness.ascent import ascent_sharpness

SHARPNESS_TABLES = {
    "sharpness": (
        "rho",
        "loss",
        "grad_norm",
        "first_order",
        "sam_point",
        "ascent",
        "steps",
        "step_size",
    ),
    "ascent": ("rho", "step", "increase"),
}


def sharpness_job(
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
    """Sharpness of a trained model at every configured ``rho``.

    Returns:
        ``sharpness``: one row per rho (columns ``SHARPNESS_TABLES["sharpness"]``);
        ``ascent``: the increase ``L(w + e) - L(w)`` at every ascent iterate (step 0 is
        SAM's point).
    """
    status = run_status(final_json)
    meta = {
        **base_meta("sharpness", weights, status),
        "engine": {k: hessian[k] for k in ("dtype", "batch_size")},
        "settings": dict(settings),
    }
    reason = incomplete_reason(status)
    if reason:
        return empty_output(SHARPNESS_TABLES, reason, meta)
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
    fl = FunctionalLoss(model, LOSS, batches, dtype=DTYPES[hessian["dtype"]], device=device)
    rows, ascents = [], []
    for rho in settings["rho"]:
        res = ascent_sharpness(
            fl,
            rho,
            steps=settings["ascent_steps"],
            step_size=settings["step_size"],
            seed=settings["seed"],
        )
        rows.append({name: getattr(res, name) for name in SHARPNESS_TABLES["sharpness"]})
        ascents.append(
            pd.DataFrame(
                {
                    "rho": rho,
                    "step": np.arange(res.ascent_trace.size),
                    "increase": res.ascent_trace,
                }
            )
        )
    meta.update({"status": "computed", "data": data, "norm": "2-norm over all trainable weights"})
    return AnalysisOutput(
        {"sharpness": pd.DataFrame(rows), "ascent": pd.concat(ascents, ignore_index=True)},
        meta,
    )
