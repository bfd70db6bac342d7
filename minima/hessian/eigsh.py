"""E5: the largest (LA) and smallest (SA) Hessian eigenpairs with ARPACK, and a subset check.

``scipy.sparse.linalg.eigsh`` runs on a float64 ``LinearOperator`` whose products are our
HVPs (``HessianOperator.to_scipy``), over a *fixed* dataset: ARPACK needs a deterministic
operator. For E5 build the operator in float64: a float32 operator's rounding noise
(~1e-7 of the spectral norm) is far above the small eigenvalues ARPACK must resolve.

When ARPACK does not converge, the pairs it did converge are returned with their
residuals and ``converged=False`` (and a ``RuntimeWarning``) instead of an exception, so a
long sweep over checkpoints keeps what it has.

Warm starts: consecutive checkpoints of one run have nearby eigenvectors, and the
subset's eigenvectors are near the full set's. ``start`` passes such vectors; ARPACK then
starts from their sum (``v0``) instead of a random vector, so its first Krylov space
already holds most of the wanted directions. The answer is the same (ARPACK's tolerance
decides it), only the number of products changes; ``n_hvp`` reports it.
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
        n_hvp: Hessian-vector products spent by ARPACK (without the residual check).
        warm: whether ARPACK started from given vectors.
    """

    eigenvalues: np.ndarray
    eigenvectors: np.ndarray
    residuals: np.ndarray
    which: str
    k: int
    converged: bool
    message: str = ""
    n_hvp: int = -1
    warm: bool = False


def eigsh_eigenpairs(
    op: HessianOperator,
    k: int,
    which: str = "LA",
    *,
    tol: float | None = None,
    maxiter: int | None = None,
    ncv: int | None = None,
    seed: int = 0,
    start: np.ndarray | None = None,
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
        start: ``(n_params, j)`` vectors to start from (e.g. the previous checkpoint's
            eigenvectors): ``v0`` is the sum of the unit columns; None: the seeded
            Gaussian.

    Returns:
        The (converged) pairs, their residuals and a convergence flag.
    """
    if which not in ("LA", "SA"):
        raise ValueError(f"which must be 'LA' or 'SA', got {which!r}")
    if not 1 <= k < op.n_params:
        raise ValueError(f"k must be in [1, {op.n_params - 1}], got {k}")
    if tol is None:
        tol = 1e-10 if op.dtype == torch.float64 else 1e-4
    v0 = _start_vector(start, op.n_params) if start is not None else None
    warm = v0 is not None
    if v0 is None:
        v0 = np.random.default_rng(seed).standard_normal(op.n_params)
    converged, message = True, ""
    n_before = op.n_hvp
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
    n_hvp = op.n_hvp - n_before
    order = np.argsort(-values) if which == "LA" else np.argsort(values)
    values, vectors = values[order], vectors[:, order]
    residuals = _residuals(op, values, vectors)
    return EigshResult(values, vectors, residuals, which, k, converged, message, n_hvp, warm)


def _start_vector(start: np.ndarray, n: int) -> np.ndarray | None:
    """Sum of the unit columns of ``start`` (None if it has none or sums to ~0)."""
    start = np.asarray(start, dtype=np.float64)
    start = start.reshape(-1, 1) if start.ndim == 1 else start
    if start.shape[0] != n:
        raise ValueError(f"start vectors must have {n} rows (n_params), got {start.shape}")
    if start.shape[1] == 0:
        return None
    cols = start / np.maximum(np.linalg.norm(start, axis=0), 1e-300)
    v0 = cols.sum(axis=1)
    norm = np.linalg.norm(v0)
    return v0 / norm if norm > 1e-8 else None


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
    ``k``-dimensional eigenspaces (robust to near-degenerate pairs swapping order). The
    full set's eigsh starts from the subset's eigenvectors (products on the full set are
    the expensive ones).

    Returns:
        One row per ``(which, index)`` with columns ``which, index, eigenvalue_full,
        eigenvalue_subset, abs_diff, rel_diff, angle_deg, principal_angle_deg,
        converged``; ``table.attrs["n_hvp"]`` holds the products per side and which.
    """
    if full.n_params != subset.n_params:
        raise ValueError(
            f"operators differ in size: full {full.n_params} vs subset {subset.n_params}"
        )
    rows, n_hvp = [], {}
    for which in ("LA", "SA"):
        b = eigsh_eigenpairs(subset, k, which, tol=tol, seed=seed)
        a = eigsh_eigenpairs(full, k, which, tol=tol, seed=seed, start=b.eigenvectors)
        n_hvp[which] = {"full": a.n_hvp, "subset": b.n_hvp}
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
    table = pd.DataFrame(rows)
    table.attrs["n_hvp"] = n_hvp
    return table
