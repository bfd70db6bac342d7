"""E5: the largest (LA) and smallest (SA) Hessian eigenpairs with ARPACK, and a subset check.

``scipy.sparse.linalg.eigsh`` runs on a float64 ``LinearOperator`` whose products are our
HVPs (``HessianOperator.to_scipy``), over a *fixed* dataset: ARPACK needs a deterministic
operator. For E5 build the operator in float64: a float32 operator's rounding noise
(~1e-7 of the spectral norm) is far above the small eigenvalues ARPACK must resolve.

When ARPACK does not converge, the pairs it did converge are returned with their
residuals and ``converged=False`` (and a ``RuntimeWarning``) instead of an exception, so a
long sweep over checkpoints keeps what it has.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.sparse.linalg import ArpackNoConvergence, eigsh

from minima.hessian.hvp import HessianOperator


@dataclass
class EigshResult:
    """Eigenpairs from eigsh.

    Attributes:
        eigenvalues: ``(j,)`` float64; LA descending, SA ascending (``j <= k``).
        eigenvectors: ``(n_params, j)`` float64 unit columns.
        residuals: ``(j,)`` ``||H u - lambda u||`` recomputed with the operator.
        which: ``"LA"`` or ``"SA"``.
        k: the number asked for.
        converged: False when ARPACK stopped before all ``k`` pairs converged.
        message: why not, or ``""``.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    which: str
    k: int
    converged: bool
    message: str = ""


def eigsh_eigenpairs(
    op: HessianOperator,
    k: int,
    which: str = "LA",
    *,
    tol: float | None = None,
    maxiter: int | None = None,
    ncv: int | None = None,
    seed: int = 0,
) -> EigshResult:
    """``k`` extreme eigenpairs of ``op`` with ``scipy.sparse.linalg.eigsh``.

    Args:
        op: the Hessian operator over the fixed data.
        k: number of eigenpairs (``k < n_params``).
        which: ``"LA"`` (largest algebraic) or ``"SA"`` (smallest algebraic).
        tol: ARPACK's relative accuracy ``||Hu - lambda u|| <= tol |lambda|``; by default
            1e-10 for a float64 operator and 1e-4 for a float32 one.
        maxiter: ARPACK restarts limit (scipy's default ``10 n`` if None).
        ncv: Lanczos vectors kept by ARPACK (scipy's default if None).
        seed: seed of the Gaussian start vector ``v0`` (ARPACK's own is not reproducible).

    Returns:
        The (converged) pairs, their residuals and a convergence flag.
    """
    if which not in ("LA", "SA"):
        raise ValueError(f"which must be 'LA' or 'SA', got {which!r}")
    if not 1 <= k < op.n_params:
        raise ValueError(f"k must be in [1, {op.n_params - 1}], got {k}")
    if tol is None:
        tol = 1e-10 if op.dtype == torch.float64 else 1e-4
    v0 = np.random.default_rng(seed).standard_normal(op.n_params)
    converged, message = True, ""
    try:
        values, vectors = eigsh(
            op.to_scipy(), k=k, which=which, tol=tol, maxiter=maxiter, ncv=ncv, v0=v0
        )
    except ArpackNoConvergence as err:
        values = np.asarray(err.eigenvalues, dtype=np.float64).reshape(-1)
        vectors = np.asarray(err.eigenvectors, dtype=np.float64).reshape(op.n_params, -1)
        converged = False
        message = (
            f"ARPACK converged {values.size} of {k} {which} eigenpairs "
            f"(tol={tol}, maxiter={maxiter}): {err}"
        )
        warnings.warn(message, RuntimeWarning, stacklevel=2)
    order = np.argsort(-values) if which == "LA" else np.argsort(values)
    values, vectors = values[order], vectors[:, order]
    residuals = _residuals(op, values, vectors)
    return EigshResult(values, vectors, residuals, which, k, converged, message)


def _residuals(op: HessianOperator, values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return np.zeros(0)
    U = torch.from_numpy(np.ascontiguousarray(vectors.T))
    HU = op.matmat(U).to("cpu", torch.float64)
    return (HU - torch.from_numpy(values)[:, None] * U).norm(dim=1).numpy()


def subset_agreement(
    full: HessianOperator,
    subset: HessianOperator,
    k: int = 10,
    *,
    tol: float | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Compare the LA(k) and SA(k) eigenpairs of a subset's Hessian with the full set's.

    E5 takes Hessians on a fixed 5% subset; this checks once that the subset's extreme
    spectrum is the full set's. Per pair ``i`` (both sides sorted the same way) the table
    gives the eigenvalue difference and the angle between the eigenvectors (sign-free:
    ``arccos |u_i . v_i|``), and the ``i``-th principal angle between the two
    ``k``-dimensional eigenspaces (robust to near-degenerate pairs swapping order).

    Returns:
        One row per ``(which, index)`` with columns ``which, index, eigenvalue_full,
        eigenvalue_subset, abs_diff, rel_diff, angle_deg, principal_angle_deg,
        converged``.
    """
    if full.n_params != subset.n_params:
        raise ValueError(
            f"operators differ in size: full {full.n_params} vs subset {subset.n_params}"
        )
    rows = []
    for which in ("LA", "SA"):
        a = eigsh_eigenpairs(full, k, which, tol=tol, seed=seed)
        b = eigsh_eigenpairs(subset, k, which, tol=tol, seed=seed)
        j = min(a.eigenvalues.size, b.eigenvalues.size)
        cos = np.abs(np.sum(a.eigenvectors[:, :j] * b.eigenvectors[:, :j], axis=0))
        principal = np.linalg.svd(a.eigenvectors[:, :j].T @ b.eigenvectors[:, :j], compute_uv=False)
        principal_deg = np.degrees(np.arccos(np.clip(principal, -1.0, 1.0)))
        for i in range(j):
            la, lb = a.eigenvalues[i], b.eigenvalues[i]
            rows.append(
                {
                    "which": which,
                    "index": i,
                    "eigenvalue_full": la,
                    "eigenvalue_subset": lb,
                    "abs_diff": abs(lb - la),
                    "rel_diff": abs(lb - la) / abs(la) if la != 0 else np.inf,
                    "angle_deg": float(np.degrees(np.arccos(np.clip(cos[i], -1.0, 1.0)))),
                    "principal_angle_deg": float(principal_deg[i]),
                    "converged": a.converged and b.converged,
                }
            )
    return pd.DataFrame(rows)
