"""Eigenvalue density of the Hessian by stochastic Lanczos quadrature (SLQ).

Ghorbani, Krishnan & Xiao 2019 (and PyHessian's ``density``): for a unit probe ``v``,
``m`` Lanczos steps give a tridiagonal ``T_m = S diag(theta) S^T``; the Gauss quadrature
with nodes ``theta_i`` (Ritz values) and weights ``w_i = S[0, i]^2`` matches
``v^T f(H) v`` exactly for polynomials ``f`` of degree below ``2m``. Averaging over random
probes (normalised Rademacher here, as in PyHessian) estimates the spectral density
``(1/n) sum_j delta(x - lambda_j)``; each node is then widened into a Gaussian of
variance ``sigma^2`` and the sum evaluated on a grid. Lanczos uses full
reorthogonalisation, and the probes run side by side through batched HVPs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from minima.hessian.hvp import HessianOperator
from minima.hessian.lanczos import lanczos
from minima.hessian.trace import rademacher


@dataclass
class DensityResult:
    """SLQ nodes and weights per probe, and the smoothed density on a grid.

    Attributes:
        nodes: one array of Ritz values per probe (length = that probe's Lanczos steps).
        weights: the matching quadrature weights (each probe's weights sum to 1).
        grid: points where the density is evaluated.
        density: smoothed density on ``grid``, normalised to integrate to 1 over it.
        sigma_squared: the Gaussian variance actually used.
        backend: ``"native"`` or ``"pyhessian"``.
        settings: the numbers that produced it (steps, probes, smoothing).
    """

    nodes: list[np.ndarray]
    weights: list[np.ndarray]
    grid: np.ndarray
    density: np.ndarray
    sigma_squared: float
    backend: str
    settings: dict = field(default_factory=dict)

    def moment(self, k: int) -> float:
        """Quadrature estimate of ``tr(H^k) / n``: the probe mean of ``sum_i w_i theta_i^k``."""
        return float(
            np.mean([np.sum(w * t**k) for t, w in zip(self.nodes, self.weights, strict=True)])
        )


def smooth_density(
    nodes: list[np.ndarray],
    weights: list[np.ndarray],
    *,
    num_bins: int = 10000,
    sigma_squared: float = 1e-5,
    margin: float = 0.01,
    grid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Gaussian-smoothed SLQ density on a grid, averaged over probes.

    As in PyHessian's density plot the variance is ``sigma_squared * max(1, width)``, with
    ``width`` the span of the nodes plus ``margin`` on each side, and the result is
    normalised to integrate to 1 over the grid. Unlike PyHessian (which averages the
    probes' extreme nodes and pads by ``margin`` only, cutting off the outer Gaussians)
    the default grid covers every node and pads by ``max(margin, 4 sigma)``.

    Returns:
        ``(grid, density, variance)``.
    """
    all_nodes = np.concatenate([np.asarray(t, dtype=np.float64) for t in nodes])
    lo, hi = all_nodes.min() - margin, all_nodes.max() + margin
    variance = sigma_squared * max(1.0, float(hi - lo))
    if grid is None:
        pad = max(0.0, 4 * np.sqrt(variance) - margin)
        grid = np.linspace(lo - pad, hi + pad, num_bins)
    grid = np.asarray(grid, dtype=np.float64)
    density = np.zeros_like(grid)
    for t, w in zip(nodes, weights, strict=True):
        diff = grid[:, None] - np.asarray(t, dtype=np.float64)[None, :]
        kernel = np.exp(-(diff**2) / (2 * variance)) / np.sqrt(2 * np.pi * variance)
        density += kernel @ np.asarray(w, dtype=np.float64)
    density /= len(nodes)
    area = np.trapezoid(density, grid) if grid.size > 1 else 0.0
    if area > 0:
        density /= area
    return grid, density, variance


def slq_nodes(
    op: HessianOperator,
    n_steps: int = 100,
    n_probes: int = 1,
    *,
    probe_batch: int | None = None,
    seed: int = 0,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """SLQ nodes and weights of ``n_probes`` normalised Rademacher probes.

    Args:
        op: the Hessian operator.
        n_steps: Lanczos steps per probe (``m``; capped at ``n_params``).
        n_probes: number of probes.
        probe_batch: probes run side by side (memory: ``probe_batch * n_steps`` vectors);
            all at once by default.
        seed: seed of the probes (drawn on the CPU).
    """
    gen = torch.Generator().manual_seed(seed)
    probe_batch = probe_batch or n_probes
    nodes, weights = [], []
    for start in range(0, n_probes, probe_batch):
        p = min(probe_batch, n_probes - start)
        V = rademacher(p, op.n_params, generator=gen).to(op.device, op.dtype)
        res = lanczos(op.matmat, V, n_steps)
        for i in range(p):
            theta, S = torch.linalg.eigh(res.tridiagonal(i))
            nodes.append(theta.numpy())
            weights.append((S[0] ** 2).numpy())
    return nodes, weights


def slq_density(
    op: HessianOperator,
    n_steps: int = 100,
    n_probes: int = 1,
    *,
    probe_batch: int | None = None,
    seed: int = 0,
    num_bins: int = 10000,
    sigma_squared: float = 1e-5,
    margin: float = 0.01,
) -> DensityResult:
    """Eigenvalue density of ``op`` by SLQ (see the module docstring)."""
    nodes, weights = slq_nodes(op, n_steps, n_probes, probe_batch=probe_batch, seed=seed)
    grid, density, variance = smooth_density(
        nodes, weights, num_bins=num_bins, sigma_squared=sigma_squared, margin=margin
    )
    settings = {
        "n_steps": n_steps,
        "n_probes": n_probes,
        "seed": seed,
        "num_bins": num_bins,
        "sigma_squared": sigma_squared,
        "margin": margin,
        "probes": "rademacher",
    }
    return DensityResult(nodes, weights, grid, density, variance, "native", settings)
