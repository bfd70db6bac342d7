"""Input checks and small linear-algebra helpers shared by the similarity measures.

Every measure takes two activation matrices of shape ``(n_examples, n_features)`` whose
rows are the same examples, and works in float64 on the device of its input.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ArrayLike = Tensor | np.ndarray


def as_matrix(A: ArrayLike, name: str = "X") -> Tensor:
    """Return ``A`` as a float64 torch matrix (n_examples, n_features) on its own device."""
    T = torch.from_numpy(np.asarray(A)) if not isinstance(A, Tensor) else A
    if T.ndim != 2:
        raise ValueError(
            f"{name} has shape {tuple(T.shape)}: expected a 2-D (n_examples, n_features) matrix"
        )
    return T.detach().to(torch.float64)


def check_pair(X: ArrayLike, Y: ArrayLike, *, min_examples: int = 2) -> tuple[Tensor, Tensor]:
    """Validate a pair of activation matrices X (n, p) and Y (n, q) and return them in float64.

    Raises:
        ValueError: naming both shapes, if either is not 2-D, the example counts differ, or
            there are fewer than ``min_examples`` examples.
    """
    Xt, Yt = as_matrix(X, "X"), as_matrix(Y, "Y")
    shapes = f"X has shape {tuple(Xt.shape)} and Y has shape {tuple(Yt.shape)}"
    if Xt.shape[0] != Yt.shape[0]:
        raise ValueError(f"{shapes}: both must be (n_examples, n_features) with the same rows")
    if Xt.shape[0] < min_examples:
        raise ValueError(f"{shapes}: this measure needs at least {min_examples} examples")
    if Xt.device != Yt.device:
        raise ValueError(f"{shapes}: X is on {Xt.device} but Y is on {Yt.device}")
    return Xt, Yt


def center(X: Tensor) -> Tensor:
    """Subtract each feature's (column's) mean: X (n, p) -> H X with H = I - 11^T/n."""
    return X - X.mean(dim=0, keepdim=True)


def row_factor(X: Tensor) -> Tensor:
    """Return F (n, min(n, p)) with F F^T = X X^T.

    Measures that are invariant to orthogonal transforms of the features (CKA, Procrustes)
    only see X through X X^T, so when p > n they can work on F instead: same value, and the
    p x p or p x q products shrink to n x n.
    """
    n, p = X.shape
    if p <= n:
        return X
    U, S, _ = torch.linalg.svd(X, full_matrices=False)
    return U * S
