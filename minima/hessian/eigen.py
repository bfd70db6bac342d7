"""Extreme eigenpairs of the Hessian by Lanczos (the native engine's top-k eigenvalues).

One Lanczos run with full reorthogonalisation from a seeded Gaussian start vector; after
every step the tridiagonal's Ritz pairs are computed and the run stops when each wanted
pair's residual estimate ``|beta_j s_{j,i}|`` (exact in exact arithmetic for
``||H u_i - theta_i u_i||``) is at most ``tol * max_i |theta_i|``, i.e. the tolerance is
relative to the spectral norm. The true residuals of the returned pairs are then computed
with one batched HVP and reported. Unlike PyHessian's power iteration (which finds the
eigenvalues of largest *magnitude*, stops on a relative change of the Rayleigh quotient
and converges at the rate of the eigenvalue gap), Lanczos converges to the largest
*algebraic* eigenvalues in far fewer products. Memory: ``max_iter`` vectors of
``n_params`` entries.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from minima.hessian.hvp import HessianOperator
from minima.hessian.lanczos import lanczos

WHICH = ("LA", "SA", "LM")


@dataclass
class EigenResult:
    """Eigenpairs of the Hessian.

    Attributes:
        eigenvalues: ``(k,)`` float64, ordered as ``which`` asks (LA: descending, SA:
            ascending, LM: by descending magnitude).
        eigenvectors: ``(k, n_params)`` unit vectors (rows), in the operator's dtype.
        residuals: ``(k,)`` ``||H u - lambda u||`` computed afresh (NaN if not computed).
        n_hvp: Hessian-vector products spent (-1 when the backend does not say).
        converged: whether every pair met the tolerance (PyHessian backend: residual at
            most ``sqrt(tol)`` times the largest ``|lambda|``, since its ``tol`` bounds the
            change of a Rayleigh quotient, whose error is quadratic in the vector's).
        which: ``"LA"``, ``"SA"`` or ``"LM"``.
        backend: ``"native"`` or ``"pyhessian"``.
    """

    eigenvalues: np.ndarray
    eigenvectors: Tensor
    residuals: np.ndarray
    n_hvp: int
    converged: bool
    which: str
    backend: str


def _select(theta: Tensor, k: int, which: str) -> Tensor:
    if which == "LA":
        return torch.argsort(theta, descending=True)[:k]
    if which == "SA":
        return torch.argsort(theta)[:k]
    return torch.argsort(theta.abs(), descending=True)[:k]


def true_residuals(op: HessianOperator, values: Tensor, U: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``U`` rounded to the operator's dtype (what is returned), ``H U`` and the float64
    true residuals ``||H u - theta u||`` of those rounded vectors (on the CPU)."""
    U = U.to(op.device, op.dtype)
    HU = op.matmat(U)
    resid = (HU.double() - values.to(HU.device)[:, None] * U.double()).norm(dim=1).cpu()
    return U, HU, resid


def lanczos_eigen(
    op: HessianOperator,
    k: int = 1,
    *,
    which: str = "LA",
    tol: float = 1e-6,
    max_iter: int = 100,
    seed: int = 0,
) -> EigenResult:
    """The ``k`` extreme eigenpairs of ``op`` by Lanczos with full reorthogonalisation.

    Args:
        op: the Hessian operator.
        k: number of eigenpairs.
        which: ``"LA"`` largest algebraic (default), ``"SA"`` smallest algebraic,
            ``"LM"`` largest magnitude (PyHessian's power-iteration target).
        tol: stop when every wanted residual estimate is below ``tol * max|theta|``.
        max_iter: maximum Lanczos steps (= HVPs) and basis vectors kept.
        seed: seed of the Gaussian start vector.

    Returns:
        The eigenpairs with their true residuals.
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    if not 1 <= k <= op.n_params:
        raise ValueError(f"k must be in [1, {op.n_params}], got {k}")
    gen = torch.Generator().manual_seed(seed)
    start = torch.randn(1, op.n_params, generator=gen, dtype=torch.float64).to(op.device, op.dtype)
    status = {"converged": False}

    def stop(alphas: Tensor, betas: Tensor, j: int) -> bool:
        if j + 1 < k:
            return False
        a, b = alphas[0], betas[0]
        T = torch.diag(a) + torch.diag(b[:-1], 1) + torch.diag(b[:-1], -1)
        theta, S = torch.linalg.eigh(T)
        idx = _select(theta, k, which)
        resid = (b[-1] * S[-1, idx]).abs()
        scale = float(theta.abs().max()) or 1.0
        status["converged"] = bool((resid <= tol * scale).all()) or float(b[-1]) == 0.0
        return status["converged"]

    n_before = op.n_hvp
    res = lanczos(op.matmat, start, max_iter, keep_basis=True, stop=stop)
    m = res.lengths[0]
    T = res.tridiagonal(0)
    theta, S = torch.linalg.eigh(T)
    if m == op.n_params or float(res.betas[0, m - 1]) == 0.0:
        status["converged"] = True
    idx = _select(theta, min(k, m), which)
    coeffs = S[:, idx].to(res.basis)
    U = torch.einsum("mi,mn->in", coeffs, res.basis[:m, 0])
    values = theta[idx]
    U, HU, residuals = true_residuals(op, values, U / U.norm(dim=1, keepdim=True))
    return EigenResult(
        eigenvalues=values.numpy(),
        eigenvectors=U,
        residuals=residuals.double().cpu().numpy(),
        n_hvp=op.n_hvp - n_before,
        converged=status["converged"],
        which=which,
        backend="native",
    )
