"""Hutchinson's estimator of the Hessian trace, with its standard error.

``tr(H) = E[z^T H z]`` for Rademacher ``z`` (entries +-1 with probability 1/2; Hutchinson
1990, PyHessian, AdaHessian). The estimate is the mean of ``n_probes`` samples and the
standard error is their sample standard deviation over ``sqrt(n_probes)``. The number of
probes is fixed in advance: PyHessian stops when the running mean changes by less than
``tol`` relative to the *signed* running mean, which ends the loop after two samples
whenever the first one is negative; there is no such early stop here. Probes go through
the operator ``probe_batch`` at a time (one vmapped HVP call each).

Two variance-reduced estimators use the few large outlier eigenvalues a trained
network's Hessian has (their squares dominate ``||H||_F^2``, hence Hutchinson's variance
``2 (||H||_F^2 - sum_i H_ii^2)``):

- ``deflated_trace``: for any orthonormal rows ``U`` (e.g. the top Ritz vectors an
  analysis already has), ``tr(H) = tr(U H U^T) + E[z^T P H P z]`` with ``P = I - U^T U``;
  the first term is exact, only the deflated remainder is sampled.
- ``hutchpp_trace``: Hutch++ (Meyer, Musco, Musco & Woodruff 2021), the same split with
  ``U`` an orthonormal basis of ``H S`` for random ``S``: a third of the budget sketches,
  a third computes ``H U``, a third samples the remainder. Its error falls as ``1/m`` in
  the budget ``m`` on spectra with outliers, against Hutchinson's ``1/sqrt(m)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from minima.hessian.hvp import HessianOperator


@dataclass
class TraceResult:
    """A Hutchinson trace estimate.

    Attributes:
        estimate: mean of the samples ``z^T H z``.
        stderr: standard error of that mean (sample std, ddof=1, over ``sqrt(n_probes)``).
        n_probes: number of samples.
        samples: the samples themselves, float64.
        backend: ``"native"`` or ``"pyhessian"``.
        exact_part: the exactly computed part of the estimate (deflated estimators:
            ``tr(U H U^T)``; 0 for plain Hutchinson); ``estimate = exact_part +
            mean(samples)``.
        n_hvp: Hessian-vector products spent (-1 when the backend does not say).
        method: ``"hutchinson"``, ``"deflated"`` or ``"hutch++"``.
        plain_stderr: deflated with ``plain_budget``: the standard error plain Hutchinson
            would have with that budget, from the plain samples seen (else NaN).
    """

    estimate: float
    stderr: float
    n_probes: int
    samples: np.ndarray
    backend: str
    exact_part: float = 0.0
    n_hvp: int = -1
    method: str = "hutchinson"
    plain_stderr: float = float("nan")

    @classmethod
    def from_samples(
        cls,
        samples: np.ndarray,
        backend: str,
        *,
        exact_part: float = 0.0,
        n_hvp: int = -1,
        method: str = "hutchinson",
    ) -> TraceResult:
        """Mean (plus ``exact_part``) and standard error of the given samples."""
        samples = np.asarray(samples, dtype=np.float64)
        n = samples.size
        stderr = float(samples.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        estimate = float(exact_part + samples.mean())
        return cls(estimate, stderr, n, samples, backend, float(exact_part), n_hvp, method)


def rademacher(p: int, n: int, *, generator: torch.Generator) -> Tensor:
    """``(p, n)`` float64 entries +-1, each with probability 1/2, on the CPU."""
    bits = torch.randint(0, 2, (p, n), generator=generator, dtype=torch.int8)
    return bits.to(torch.float64).mul_(2).sub_(1)


def hutchinson_trace(
    op: HessianOperator, n_probes: int = 100, *, probe_batch: int = 10, seed: int = 0
) -> TraceResult:
    """Estimate ``tr(H)`` from ``n_probes`` Rademacher probes.

    Args:
        op: the Hessian operator.
        n_probes: number of probes (all of them are used).
        probe_batch: probes per batched HVP call.
        seed: seed of the probes (drawn on the CPU, so the same on every device).

    Returns:
        The estimate, its standard error and the samples.
    """
    if n_probes < 1:
        raise ValueError(f"n_probes must be positive, got {n_probes}")
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for start in range(0, n_probes, probe_batch):
        p = min(probe_batch, n_probes - start)
        Z = rademacher(p, op.n_params, generator=gen).to(op.device, op.dtype)
        HZ = op.matmat(Z)
        samples.append((Z * HZ).sum(dim=1).double().cpu())
    return TraceResult.from_samples(torch.cat(samples).numpy(), "native", n_hvp=n_probes)


def _orthonormal_rows(U: Tensor) -> Tensor:
    """Orthonormal rows spanning the rows of ``U`` (QR, so any full-rank ``U`` will do)."""
    Q, _ = torch.linalg.qr(U.T)
    return Q.T.contiguous()


def _matmat_chunked(op: HessianOperator, V: Tensor, probe_batch: int) -> Tensor:
    return torch.cat([op.matmat(V[i : i + probe_batch]) for i in range(0, V.shape[0], probe_batch)])


def _deflated_samples(op: HessianOperator, U: Tensor, Z: Tensor, probe_batch: int) -> Tensor:
    """Samples ``(P z)^T H (P z)`` with ``P = I - U^T U`` (``U`` orthonormal rows)."""
    return _deflated_and_plain(op, U, None, Z, probe_batch)[0]


def _twin_terms(U: Tensor, HU: Tensor) -> tuple[Tensor, Tensor]:
    """``H U`` and the symmetrised ``U H U^T`` in float64: once per trace, not per probe."""
    HU64 = HU.double()
    small = U.double() @ HU64.T
    return HU64, (small + small.T) / 2


def _deflated_and_plain(
    op: HessianOperator,
    U: Tensor,
    HU: Tensor | None,
    Z: Tensor,
    probe_batch: int,
    twin_terms: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Deflated samples and, when ``HU`` is given, each probe's plain Hutchinson twin
    ``z^T H z = (Pz)^T H (Pz) + 2 (Uz)^T (HU) (Pz) + (Uz)^T (U H U^T) (Uz)``: free, since
    ``H U`` is known (it tells the deflated estimate what plain Hutchinson would spread).
    ``twin_terms``: ``_twin_terms(U, HU)`` when already computed."""
    C = Z @ U.T
    PZ = Z - C @ U
    deflated = (PZ * _matmat_chunked(op, PZ, probe_batch)).sum(dim=1).double().cpu()
    if HU is None:
        return deflated, None
    HU64, small = twin_terms or _twin_terms(U, HU)
    C64, PZ64 = C.double(), PZ.double()
    cross = ((C64 @ HU64) * PZ64).sum(dim=1)
    inner = ((C64 @ small) * C64).sum(dim=1)
    return deflated, deflated + (2 * cross + inner).cpu()


def deflated_trace(
    op: HessianOperator,
    U: Tensor,
    n_probes: int = 100,
    *,
    HU: Tensor | None = None,
    target_stderr: float | None = None,
    plain_budget: int | None = None,
    plain_prior: np.ndarray | None = None,
    margin: float = 1.0,
    min_probes: int = 10,
    probe_batch: int = 10,
    seed: int = 0,
) -> TraceResult:
    """``tr(H)`` as ``tr(U H U^T)`` exactly plus Hutchinson on the deflated remainder.

    Unbiased for any rows ``U`` (they are orthonormalised here); the closer they are to the
    top eigenvectors, the smaller the remainder's variance.

    Args:
        op: the Hessian operator.
        U: ``(k, n_params)`` deflation directions.
        n_probes: most Rademacher probes of the remainder.
        HU: ``H U`` when already computed for these exact (orthonormal) rows, else
            computed here (``k`` products).
        target_stderr: stop drawing probes (in ``probe_batch`` steps, after
            ``min_probes``) once the standard error is at most this; None: all probes.
        plain_budget: instead of a fixed target, stop once the standard error is at most
            ``margin`` times the one plain Hutchinson would have with ``plain_budget``
            probes, its spread estimated from ``plain_prior`` (plain samples drawn
            elsewhere, e.g. free from SLQ runs) and each probe's plain twin (free here).
            The estimate is noisy, so a ``margin`` below 1 keeps the result below a
            realised plain standard error most of the time.
        min_probes: probes drawn before the stop rule is looked at (>= 2).
        probe_batch: probes per batched HVP call.
        seed: seed of the probes (drawn on the CPU).

    Returns:
        Estimate, standard error, the remainder's samples and the products spent.
    """
    if n_probes < 2 or min_probes < 2:
        raise ValueError(f"n_probes and min_probes must be >= 2, got {n_probes}, {min_probes}")
    n_before = op.n_hvp
    U = U.to(op.device, torch.promote_types(U.dtype, op.dtype))  # float64 rows stay float64
    if HU is None:
        U = _orthonormal_rows(U)
        HU = _matmat_chunked(op, U, probe_batch)
    exact = float((U * HU.to(U)).sum().double())
    gen = torch.Generator().manual_seed(seed)
    samples: list[Tensor] = []
    plain = [np.asarray(plain_prior, dtype=float)] if plain_prior is not None else []
    twin_terms = _twin_terms(U, HU) if plain_budget is not None else None
    drawn = 0
    while drawn < n_probes:
        p = min(probe_batch, n_probes - drawn)
        Z = rademacher(p, op.n_params, generator=gen).to(op.device, U.dtype)
        deflated, twins = _deflated_and_plain(
            op, U, HU if plain_budget is not None else None, Z, probe_batch, twin_terms
        )
        samples.append(deflated)
        if twins is not None:
            plain.append(twins.numpy())
        drawn += p
        target = target_stderr
        if plain_budget is not None:
            spread = np.concatenate(plain)
            target = margin * float(spread.std(ddof=1)) / np.sqrt(plain_budget)
        if target is not None and drawn >= min_probes:
            s = torch.cat(samples).numpy()
            if s.std(ddof=1) / np.sqrt(s.size) <= target:
                break
    result = TraceResult.from_samples(
        torch.cat(samples).numpy(),
        "native",
        exact_part=exact,
        n_hvp=op.n_hvp - n_before,
        method="deflated",
    )
    if plain_budget is not None:
        result.plain_stderr = float(np.concatenate(plain).std(ddof=1)) / np.sqrt(plain_budget)
    return result


def hutchpp_trace(
    op: HessianOperator, budget: int = 99, *, probe_batch: int = 10, seed: int = 0
) -> TraceResult:
    """Hutch++ estimate of ``tr(H)`` from ``budget`` Hessian-vector products.

    ``budget // 3`` Rademacher sketch vectors ``S``, ``U = orth(H S)``, ``tr(U H U^T)``
    exactly, and the remaining ``budget - 2 (budget // 3)`` products sample the deflated
    remainder (the standard error is that of those samples).
    """
    if budget < 6:
        raise ValueError(f"budget must be at least 6 products, got {budget}")
    gen = torch.Generator().manual_seed(seed)
    n_before = op.n_hvp
    k = min(budget // 3, op.n_params)
    S = rademacher(k, op.n_params, generator=gen).to(op.device, op.dtype)
    U = _orthonormal_rows(_matmat_chunked(op, S, probe_batch))
    HU = _matmat_chunked(op, U, probe_batch)
    exact = float((U * HU).sum().double())
    n_rest = budget - 2 * k
    Z = rademacher(n_rest, op.n_params, generator=gen).to(op.device, op.dtype)
    samples = _deflated_samples(op, U, Z, probe_batch).numpy()
    return TraceResult.from_samples(
        samples, "native", exact_part=exact, n_hvp=op.n_hvp - n_before, method="hutch++"
    )
