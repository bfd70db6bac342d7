"""The `similarity` and `filters` rules' work: compare two trained runs layer by layer."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from minima.train.job import load_splits, load_trained

from .filters import conv_weight, filter_grid
from .layerwise import layerwise_cka, layerwise_similarity

log = logging.getLogger("minima.similarity")


def test_batches(
    dataset: str,
    manifest: str | Path,
    split: str | Path,
    device: torch.device,
    batch_size: int,
    max_examples: int | None,
) -> list[torch.Tensor]:
    """The experiment's test images (first ``max_examples``), normalized, as fixed batches.

    Both models see the same inputs, normalized with the train split's statistics and
    std_scale 1 (runs of the normalization study are not among the compared runs).
    """
    parts, _ = load_splits(dataset, manifest, split, device, parts=("test",))
    x = parts["test"].x
    if max_examples is not None:
        x = x[:max_examples]
    return list(x.split(batch_size))


def compare_runs(
    measure: str,
    model_spec: dict[str, Any],
    dataset: str,
    weights_a: str | Path,
    weights_b: str | Path,
    *,
    manifest: str | Path,
    split: str | Path,
    settings: dict[str, Any],
    device: torch.device,
) -> pd.DataFrame:
    """Layer x layer ``measure`` of two trained runs on the test images (or of one run with
    itself, when both weights are the same file: one network, compared layer by layer).

    ``cka`` is exact linear CKA streamed over ``cka_examples`` images (all by default);
    the other measures hold the activations of ``examples`` images, spatially pooled.
    """
    model_a = load_trained(model_spec, dataset, weights_a, device)
    same = Path(weights_a).resolve() == Path(weights_b).resolve()  # a network with itself
    model_b = model_a if same else load_trained(model_spec, dataset, weights_b, device)
    if measure == "cka":
        batches = test_batches(
            dataset, manifest, split, device, settings["batch_size"], settings["cka_examples"]
        )
        table = layerwise_cka(model_a, model_b, batches, device=device)
    else:
        batches = test_batches(
            dataset, manifest, split, device, settings["batch_size"], settings["examples"]
        )
        options = {"variance_kept": settings["svcca_variance"]} if measure == "svcca" else {}
        table = layerwise_similarity(
            model_a,
            model_b,
            batches,
            measure=measure,
            device=device,
            spatial_pool=settings["spatial_pool"],
            **options,
        )
        table = table.rename(columns={measure: "value"})
    if "cka" in table.columns:
        table = table.rename(columns={"cka": "value"})
    table.insert(0, "measure", measure)
    table.attrs = {}  # attrs do not survive Parquet reliably; the sidecar JSON records them
    n = sum(len(b) for b in batches)
    log.info("%s over %d test images: %d layer pairs", measure, n, len(table))
    return table


def filter_image(
    model_spec: dict[str, Any], dataset: str, weights: str | Path, layer: str
) -> np.ndarray:
    """Tiled filters of one conv layer of a trained run (each filter scaled to [0, 1])."""
    model = load_trained(model_spec, dataset, weights, torch.device("cpu"))
    return filter_grid(conv_weight(model, layer).detach())
