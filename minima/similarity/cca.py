"""Canonical correlation analysis and the CCA-based similarities SVCCA and PWCCA.

Inputs are activation matrices X (n_examples, p) and Y (n_examples, q), same examples in
the same row order; computed in float64.

CCA here: centre each side, take an orthonormal basis of its column space from an SVD
(directions with singular value below ``rtol`` times the largest are dropped as numerically
zero, so dead or duplicated units do not break it), and read the canonical correlations off
the singular values of U_x^T U_y (Bjorck & Golub 1973). This equals the generalized
eigenproblem Sxy Syy^-1 Syx a = rho^2 Sxx a on the covariance blocks where those are
invertible.

Too few examples: in the (n-1)-dimensional space of centred examples, spans of dimensions
k_x and k_y share at least k_x + k_y - (n-1) directions, whose canonical correlations are 1
whatever the data. Every function here therefore refuses (ValueError naming both shapes)
when the kept dimensions satisfy k_x + k_y >= n, rather than silently report ones. SVCCA
reduces by SVD first, which usually brings k below that bound; otherwise use more examples
or pool/project the features (see :mod:`minima.similarity.activations`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from minima.similarity._matrix import ArrayLike, center, check_pair


@dataclass(frozen=True)
class CCAResult:
    """Canonical correlations and variates of a pair X (n, p), Y (n, q).

    Attributes:
        correlations: (k,) canonical correlations in [0, 1], descending, k = min(k_x, k_y).
        x_variates: (n, k) canonical variates of X: orthonormal, centred columns.
        y_variates: (n, k) canonical variates of Y; x_variates^T y_variates = diag(rho).
    """

    correlations: Tensor
    x_variates: Tensor
    y_variates: Tensor


@dataclass(frozen=True)
class _Basis:
    """Orthonormal basis (n, k) of the centred column space, kept directions only."""

    U: Tensor
    centred: Tensor
    shape: tuple[int, int]


def _basis(X: Tensor, *, variance_kept: float | None, rtol: float) -> _Basis:
    """SVD of centred X (n, p); keep the top directions (numerical rank, then variance share)."""
    if variance_kept is not None and not 0.0 < variance_kept <= 1.0:
        raise ValueError(f"variance_kept must be in (0, 1], got {variance_kept}")
    Xc = center(X)
    U, S, _ = torch.linalg.svd(Xc, full_matrices=False)
    k = int((S / S[0] > rtol).sum()) if S.numel() and S[0] > 0 else 0
    if variance_kept is not None and k > 0:
        share = torch.cumsum(S**2, 0) / (S**2).sum()
        # smallest k whose leading directions explain at least variance_kept of the variance
        k = min(k, int((share < variance_kept - 1e-12).sum()) + 1)
    return _Basis(U=U[:, :k], centred=Xc, shape=(X.shape[0], X.shape[1]))


def _cca_from_bases(bx: _Basis, by: _Basis) -> CCAResult:
    n, kx, ky = bx.U.shape[0], bx.U.shape[1], by.U.shape[1]
    shapes = f"X has shape {bx.shape} and Y has shape {by.shape}"
    if kx == 0 or ky == 0:
        raise ValueError(f"{shapes}: a side has no variance (constant features), CCA undefined")
    if kx + ky >= n:
        raise ValueError(
            f"{shapes}: CCA keeps {kx} + {ky} dimensions but needs their sum below "
            f"n_examples = {n}, else at least {kx + ky - n + 1} canonical correlations are 1 "
            "whatever the data. Use more examples, SVCCA (SVD reduction first), or pool or "
            "project the features."
        )
    P, rho, Qh = torch.linalg.svd(bx.U.T @ by.U, full_matrices=False)
    return CCAResult(rho.clamp(0.0, 1.0), bx.U @ P, by.U @ Qh.T)


def cca(
    X: ArrayLike,
    Y: ArrayLike,
    *,
    variance_kept: float | None = None,
    rtol: float = 1e-8,
) -> CCAResult:
    """Canonical correlation analysis of X (n, p) and Y (n, q).

    Args:
        X: activations (n_examples, p).
        Y: activations (n_examples, q), same examples.
        variance_kept: if set, first keep only the top singular directions of each centred
            side explaining this share of its variance (the SVD step of SVCCA).
        rtol: singular values below rtol * largest count as zero (numerical rank).

    Raises:
        ValueError: shapes mismatch, or kept dimensions k_x + k_y >= n (see module doc).
    """
    Xt, Yt = check_pair(X, Y, min_examples=3)
    bx = _basis(Xt, variance_kept=variance_kept, rtol=rtol)
    by = _basis(Yt, variance_kept=variance_kept, rtol=rtol)
    return _cca_from_bases(bx, by)


def svcca(X: ArrayLike, Y: ArrayLike, *, variance_kept: float = 0.99, rtol: float = 1e-8) -> float:
    """SVCCA similarity (Raghu et al. 2017) of X (n, p) and Y (n, q).

    Centre, keep each side's top singular directions explaining ``variance_kept`` of its
    variance (default 0.99), run CCA on those, return the mean of *all* min(k_x, k_y)
    canonical correlations. (google/svcca can also report a mean truncated at 0.98 of the
    coefficients' sum; not done here.) In [0, 1], higher is more similar.
    """
    return float(cca(X, Y, variance_kept=variance_kept, rtol=rtol).correlations.mean())


Side = Literal["smaller", "x", "y"]


def _pwcca_from_bases(bx: _Basis, by: _Basis, weight_by: Side) -> float:
    res = _cca_from_bases(bx, by)
    use_x = weight_by == "x" or (weight_by == "smaller" and bx.U.shape[1] <= by.U.shape[1])
    H, A = (res.x_variates, bx.centred) if use_x else (res.y_variates, by.centred)
    weights = (H.T @ A).abs().sum(1)  # alpha_i = sum_j |<h_i, a_j>| over the side's units
    weights = weights / weights.sum()
    return float(weights @ res.correlations)


def pwcca(
    X: ArrayLike,
    Y: ArrayLike,
    *,
    variance_kept: float | None = None,
    rtol: float = 1e-8,
    weight_by: Side = "smaller",
) -> float:
    """Projection-weighted CCA similarity (Morcos, Raghu & Bengio 2018) of X (n, p), Y (n, q).

    sum_i alpha_i rho_i with alpha_i proportional to sum_j |<h_i, a_j>|: how much of the
    units a_j (centred columns) of one side the canonical variate h_i accounts for. The
    weighting side is, as in google/svcca's ``compute_pwcca``, the one with fewer kept
    dimensions (ties: X); ``weight_by="x"``/``"y"`` fixes it. No SVD reduction unless
    ``variance_kept`` is set, so it needs p + q < n (refused otherwise). Higher is more
    similar; Morcos et al. report the distance 1 - pwcca.
    """
    if weight_by not in ("smaller", "x", "y"):
        raise ValueError(f"weight_by must be 'smaller', 'x' or 'y', got {weight_by!r}")
    Xt, Yt = check_pair(X, Y, min_examples=3)
    bx = _basis(Xt, variance_kept=variance_kept, rtol=rtol)
    by = _basis(Yt, variance_kept=variance_kept, rtol=rtol)
    return _pwcca_from_bases(bx, by, weight_by)
