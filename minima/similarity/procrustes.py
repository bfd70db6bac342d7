"""Orthogonal Procrustes distance between representations (Ding, Denain & Steinhardt 2021)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from minima.similarity._matrix import ArrayLike, center, check_pair, row_factor


def _normalized_factor(X: Tensor) -> Tensor | None:
    """Centre X (n, p), scale to unit Frobenius norm, shrink to n columns if p > n."""
    Xc = center(X)
    norm = torch.linalg.matrix_norm(Xc)
    return row_factor(Xc / norm) if norm > 0 else None


def _distance(Fx: Tensor | None, Fy: Tensor | None) -> float:
    if Fx is None or Fy is None:
        return math.nan
    nuclear = float(torch.linalg.svdvals(Fx.T @ Fy).sum())
    return max(0.0, 2.0 - 2.0 * nuclear)


def procrustes_distance(X: ArrayLike, Y: ArrayLike) -> float:
    """Orthogonal Procrustes distance of X (n, p) and Y (n, q), Ding et al. (2021) scaling.

    Centre each feature, scale each matrix to unit Frobenius norm, then
    d = ||X||_F^2 + ||Y||_F^2 - 2 ||X^T Y||_* = 2 - 2 ||X^T Y||_*, the squared Frobenius
    distance after the best orthogonal alignment (p != q is allowed: the smaller side is
    zero-padded). In [0, 2]; 0 iff Y = X Q for an orthogonal Q up to shift and scale.
    Rounding below 0 is clipped to 0. (anatome reports half of this value.) NaN if a side
    is constant. When p > n the matrices are first reduced to n columns without changing d.
    """
    Xt, Yt = check_pair(X, Y)
    return _distance(_normalized_factor(Xt), _normalized_factor(Yt))
