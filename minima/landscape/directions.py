"""Directions to draw a loss landscape along (Li et al. 2018; E1).

Vectors are flat, in the parameter order of ``FunctionalLoss`` (trainable parameters in
``named_parameters()`` order).

- Filter-normalised random directions (Li et al. 2018, "Visualizing the loss landscape
  of neural nets"): a Gaussian direction in which every filter ``d_i`` (each output slice
  of a conv or linear weight, i.e. index ``i`` of dim 0) is rescaled to the norm of the
  matching filter of the weights, ``d_i <- d_i / ||d_i|| * ||w_i||``, and every bias and
  batch-norm parameter (any tensor with at most one dimension) gets ``d = 0`` (their
  "ignore biasbn" option). This removes the scale invariance of ReLU/BN networks from
  the picture.
- Hessian eigenvectors and the gradient: unit vectors, no filter normalisation.
"""

from __future__ import annotations

import torch
from torch import Tensor

from minima.hessian.eigen import lanczos_eigen
from minima.hessian.functional import FunctionalLoss
from minima.hessian.hvp import HessianOperator


def filter_normalize(direction: Tensor, fl: FunctionalLoss) -> Tensor:
    """Rescale each filter of ``direction`` to the norm of the weights' filter; zero biases/BN.

    Args:
        direction: flat vector of length ``fl.n_params``.
        fl: gives the parameter layout and the weights ``fl.theta``.

    Returns:
        A new flat vector.
    """
    if direction.shape != fl.theta.shape:
        raise ValueError(
            f"direction has shape {tuple(direction.shape)}, expected {tuple(fl.theta.shape)}"
        )
    direction = direction.to(fl.theta)
    weights = fl.unflatten(fl.theta)
    parts = fl.unflatten(direction)
    out = []
    for name in fl.names:
        d, w = parts[name], weights[name]
        if d.ndim <= 1:
            out.append(torch.zeros_like(d).reshape(-1))
            continue
        d2, w2 = d.reshape(d.shape[0], -1), w.reshape(w.shape[0], -1)
        scale = w2.norm(dim=1, keepdim=True) / (d2.norm(dim=1, keepdim=True) + 1e-10)
        out.append((d2 * scale).reshape(-1))
    return torch.cat(out)


def random_direction(fl: FunctionalLoss, *, seed: int = 0, normalize: bool = True) -> Tensor:
    """A Gaussian direction (drawn on the CPU from ``seed``), filter-normalised by default."""
    gen = torch.Generator().manual_seed(seed)
    d = torch.randn(fl.n_params, generator=gen, dtype=torch.float64).to(fl.device, fl.dtype)
    return filter_normalize(d, fl) if normalize else d


def eigen_directions(
    op: HessianOperator, k: int = 2, *, tol: float = 1e-6, max_iter: int = 100, seed: int = 0
) -> Tensor:
    """The top-``k`` (largest algebraic) Hessian eigenvectors as unit rows ``(k, n_params)``."""
    return lanczos_eigen(op, k, which="LA", tol=tol, max_iter=max_iter, seed=seed).eigenvectors


def gradient_eigen_directions(
    op: HessianOperator, *, tol: float = 1e-6, max_iter: int = 100, seed: int = 0
) -> Tensor:
    """(unit gradient, top Hessian eigenvector) as rows ``(2, n_params)`` (E1's Adam panel)."""
    _, g = op.gradient()
    top = eigen_directions(op, 1, tol=tol, max_iter=max_iter, seed=seed)[0]
    return torch.stack([g / g.norm(), top])
