"""The fixed data a Hessian is taken over: all samples or a recorded, seeded subset.

A curvature analysis must see the same samples at every Hessian-vector product (eigsh
fails on an operator that changes between calls), so the data is materialised once as a
list of ``(x, y)`` batches on the compute device, and a subset is drawn once from a seed
and its indices returned so they can be written next to the results.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def subset_indices(
    n_total: int, size: int | None = None, *, fraction: float | None = None, seed: int = 0
) -> np.ndarray:
    """Sorted indices of a uniformly drawn subset without replacement, reproducible by seed.

    Give exactly one of ``size`` (a count) or ``fraction`` (of ``n_total``, rounded to the
    nearest count, at least 1).

    Raises:
        ValueError: if the subset is larger than the data (naming both sizes) or empty.
    """
    if (size is None) == (fraction is None):
        raise ValueError("give exactly one of size or fraction")
    if fraction is not None:
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        size = max(1, round(fraction * n_total))
    if size > n_total:
        raise ValueError(
            f"subset of {size} samples requested but the data has only {n_total} samples"
        )
    if size < 1:
        raise ValueError(f"subset size must be at least 1, got {size}")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=size, replace=False))


def make_batches(
    x: Tensor,
    y: Tensor,
    batch_size: int,
    *,
    indices: np.ndarray | Tensor | None = None,
    device: torch.device | str = "cpu",
) -> list[tuple[Tensor, Tensor]]:
    """Split ``(x, y)`` (optionally ``x[indices], y[indices]``) into batches on ``device``.

    Batches keep the data's order; the last one may be smaller (the Hessian engine weights
    batches by size, so this does not bias the mean loss).
    """
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} samples but y has {y.shape[0]}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if indices is not None:
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        if idx.numel() and (int(idx.max()) >= x.shape[0] or int(idx.min()) < 0):
            raise ValueError(f"indices out of range for data of {x.shape[0]} samples")
        x, y = x[idx], y[idx]
    return [
        (x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
        for i in range(0, x.shape[0], batch_size)
    ]
