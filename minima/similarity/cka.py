"""Centred kernel alignment with linear kernels (Kornblith et al. 2019).

All inputs are activation matrices X (n_examples, p) and Y (n_examples, q) with the same
examples in the same row order, or Gram matrices K, L (n_examples, n_examples). Results are
computed in float64.

Two estimators live here, and each function says which it computes:

- biased (Kornblith et al. 2019, eq. 4): HSIC_0(K, L) = tr(K H L H) / (n - 1)^2 with
  H = I - 11^T / n; for linear kernels CKA = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)
  on column-centred Xc, Yc. This is "linear CKA" as usually reported.
- unbiased (Song et al. 2012, eq. 5; used by Nguyen, Raghu & Kornblith 2021): HSIC_1, a
  U-statistic on Gram matrices with zeroed diagonals. It differs from the biased value on
  finite n and can be slightly negative for unrelated representations.
"""

from __future__ import annotations

import math

from torch import Tensor

from minima.similarity._matrix import ArrayLike, as_matrix, center, check_pair


def gram_linear(X: ArrayLike) -> Tensor:
    """Linear-kernel Gram matrix K = X X^T (n, n) of activations X (n, p), float64."""
    Xt = as_matrix(X, "X")
    return Xt @ Xt.T


def _check_grams(K: ArrayLike, L: ArrayLike) -> tuple[Tensor, Tensor]:
    Kt, Lt = as_matrix(K, "K"), as_matrix(L, "L")
    n = Kt.shape[0]
    if Kt.shape != (n, n) or Lt.shape != (n, n):
        raise ValueError(
            f"K has shape {tuple(Kt.shape)} and L has shape {tuple(Lt.shape)}: "
            "both must be square (n_examples, n_examples) Gram matrices of the same examples"
        )
    return Kt, Lt


def _center_gram(K: Tensor) -> Tensor:
    """H K H for H = I - 11^T / n (double centring of a Gram matrix)."""
    return K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()


def hsic_biased(K: ArrayLike, L: ArrayLike) -> float:
    """Biased HSIC_0 = tr(K H L H) / (n - 1)^2 of two Gram matrices K, L (n, n)."""
    Kt, Lt = _check_grams(K, L)
    n = Kt.shape[0]
    return float((_center_gram(Kt) * _center_gram(Lt)).sum()) / (n - 1) ** 2


def hsic_unbiased(K: ArrayLike, L: ArrayLike) -> float:
    """Unbiased HSIC_1 of Song et al. (2012, eq. 5) of two Gram matrices K, L (n, n), n >= 4.

    With K~, L~ the Gram matrices with zeroed diagonals:
    [tr(K~L~) + 1^T K~ 1 1^T L~ 1 / ((n-1)(n-2)) - 2/(n-2) 1^T K~ L~ 1] / (n (n-3)).
    """
    Kt, Lt = _check_grams(K, L)
    n = Kt.shape[0]
    if n < 4:
        raise ValueError(f"K has shape {tuple(Kt.shape)}: unbiased HSIC needs n_examples >= 4")
    Kt = Kt - Kt.diag().diag()
    Lt = Lt - Lt.diag().diag()
    k_rows, l_rows = Kt.sum(1), Lt.sum(1)
    value = (
        (Kt * Lt).sum()
        + k_rows.sum() * l_rows.sum() / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (k_rows @ l_rows)
    )
    return float(value) / (n * (n - 3))


def _ratio(cross: float, self_x: float, self_y: float) -> float:
    denom = self_x * self_y
    return cross / math.sqrt(denom) if denom > 0 else math.nan


def cka_from_grams(K: ArrayLike, L: ArrayLike, *, unbiased: bool = False) -> float:
    """CKA of two Gram matrices K, L (n_examples, n_examples).

    Computes HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with the biased HSIC_0 (default) or the
    unbiased HSIC_1 (``unbiased=True``). NaN if a representation has no variance.
    """
    hsic = hsic_unbiased if unbiased else hsic_biased
    return _ratio(hsic(K, L), hsic(K, K), hsic(L, L))


def _cross_sq(A: Tensor, B: Tensor) -> float:
    """||A^T B||_F^2 for A (n, p), B (n, q): p x q product, or n x n Grams when smaller.

    Both branches are exact: ||A^T B||_F^2 = tr(A A^T B B^T).
    """
    n = A.shape[0]
    if A.shape[1] * B.shape[1] <= n * n:
        return float((A.T @ B).square().sum())
    return float(((A @ A.T) * (B @ B.T)).sum())


def linear_cka(X: ArrayLike, Y: ArrayLike) -> float:
    """Linear CKA (biased HSIC_0 form, Kornblith et al. 2019) of X (n, p) and Y (n, q).

    ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) on column-centred activations, exact over
    all n rows (feature or Gram form, whichever is smaller). In [0, 1]; 1 for X = Y; invariant
    to orthogonal transforms and isotropic scaling of either side. NaN if either side is
    constant.
    """
    Xt, Yt = check_pair(X, Y)
    Xc, Yc = center(Xt), center(Yt)
    return _ratio(_cross_sq(Xc, Yc), _cross_sq(Xc, Xc), _cross_sq(Yc, Yc))


def linear_cka_unbiased(X: ArrayLike, Y: ArrayLike) -> float:
    """Linear CKA with the unbiased HSIC_1 estimator (Song et al. 2012) of X (n, p), Y (n, q).

    The estimator Nguyen, Raghu & Kornblith (2021) average over minibatches, here on all n
    rows at once (n >= 4). Not equal to :func:`linear_cka` on finite n.
    """
    Xt, Yt = check_pair(X, Y, min_examples=4)
    Xc, Yc = center(Xt), center(Yt)  # HSIC_1 is shift invariant; centring helps rounding
    return cka_from_grams(Xc @ Xc.T, Yc @ Yc.T, unbiased=True)
