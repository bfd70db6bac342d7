"""One set of Lanczos runs for the whole spectrum analysis: density, top eigenpairs, trace.

PyHessian (and the separate native calls) spend three budgets: power iteration for the
top eigenvalues, Hutchinson probes for the trace and SLQ runs for the density. But the
SLQ runs already hold the other two:

- density: the SLQ nodes and weights themselves, exactly as ``slq_density`` (same
  probes for the same seed, same smoothing);
- top eigenpairs: each run's tridiagonal gives Ritz pairs; the wanted ones of the run
  with the smallest residual estimates are formed from its Lanczos basis, their true
  residuals ``||H u - theta u||`` computed (``k`` products) and compared with ``tol``
  times the spectral norm (the rule of ``lanczos_eigen``). Only the pairs that fail are
  refined: a Lanczos run on ``P H P`` (``P`` projects out the converged vectors) started
  from the failed Ritz vectors;
- trace: the Krylov space of that same run (its first ``m - 1`` Lanczos vectors ``Q``,
  whose ``H Q`` the Lanczos relation gives without a product) is deflated:
  ``tr(Q H Q^T)`` is exact and Hutchinson samples only the remainder
  (``minima.hessian.trace.deflated_trace``), whose variance lacks the share of the
  outliers at both ends of the spectrum. Probes are drawn until the standard error is
  at most ``TRACE_MARGIN`` times the one plain Hutchinson would have with
  ``trace_probes`` probes, estimated from the SLQ runs' first Lanczos coefficients
  (``n alpha_0 = z^T H z`` for a Rademacher ``z``: plain samples for free) and from each
  deflated probe's plain twin (free too, ``H Q`` being known), and never beyond
  ``trace_probes``.

Memory: like ``slq_density``, ``probe_batch * n_steps`` float64 vectors of ``n_params``
entries, twice that while later probe batches run (the first batch's basis is kept for the
Ritz vectors and the deflation).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from minima.hessian.eigen import EigenResult, _select, true_residuals
from minima.hessian.hvp import HessianOperator
from minima.hessian.lanczos import lanczos
from minima.hessian.slq import DensityResult, smooth_density
from minima.hessian.trace import TraceResult, deflated_trace, rademacher

# The deflated trace stops at this share of the standard error plain Hutchinson would
# have with ``trace_probes`` probes. That standard error is itself estimated (from 10-100
# plain samples, about 7-20% relative error), so stopping right at it left the result above
# a realised plain run's about half the time; at 0.8 the margin is about two of those
# errors, for (1 / 0.8)^2 = 1.56x the deflated probes of a break-even stop.
TRACE_MARGIN = 0.8


@dataclass
class JointSpectrum:
    """The three analyses of one joint run and what each cost.

    Attributes:
        eigen: top-``k`` eigenpairs (``n_hvp``: residual products plus refinement).
        trace: deflated Hutchinson estimate (None when ``trace_probes`` is 0).
        density: SLQ density.
        n_hvp: products per part (``density``, ``eigen``, ``trace``) and ``total``.
        errors: each estimate's error: ``eigen_max_residual``, ``trace_stderr``,
            ``density_l1_stderr`` (the L1 norm of the pointwise standard error of the
            probe mean, a scale for the density's sampling error).
        details: refinement and stop-rule numbers (Ritz pairs converged from SLQ alone,
            the trace's target standard error and its free plain-Hutchinson samples).
    """

    eigen: EigenResult
    trace: TraceResult | None
    density: DensityResult
    n_hvp: dict[str, int]
    errors: dict[str, float]
    details: dict = field(default_factory=dict)


def _ritz_from_runs(runs: list, k: int, which: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Wanted Ritz values and vectors of the run whose residual estimates are smallest,
    and that run's Krylov deflation basis (``_krylov_deflation``)."""
    best = None
    for res, p in runs:
        for i in range(p):
            m = res.lengths[i]
            theta, S = torch.linalg.eigh(res.tridiagonal(i))
            idx = _select(theta, min(k, m), which)
            est = float((res.betas[i, m - 1] * S[-1, idx]).abs().max())
            if best is None or est < best[0]:
                best = (est, theta[idx], S[:, idx], res, i)
    _, values, coeffs, res, i = best
    basis = res.basis[: res.lengths[i], i]
    U = torch.einsum("mi,mn->in", coeffs.to(basis), basis)
    return (values, U / U.norm(dim=1, keepdim=True), *_krylov_deflation(res, i))


def _krylov_deflation(res, i: int) -> tuple[Tensor, Tensor]:
    """The first ``m - 1`` Lanczos vectors ``Q`` of run ``i`` and ``H Q``, free: the
    Lanczos relation gives ``H q_j = beta_{j-1} q_{j-1} + alpha_j q_j + beta_j q_{j+1}``
    for every vector but the last. The Krylov space of a random start holds the outlier
    eigenvectors at both ends of the spectrum (as Chen and Hallman's Krylov-aware trace
    estimator uses), so deflating all of it removes more of Hutchinson's variance than
    the top-k eigenvectors alone."""
    m = res.lengths[i]
    Q = res.basis[:m, i]
    T = res.tridiagonal(i).to(Q)
    return Q[: m - 1].contiguous(), T[: m - 1] @ Q


def _refine(
    op: HessianOperator,
    kept: Tensor,
    start: Tensor,
    n_wanted: int,
    which: str,
    tol: float,
    scale: float,
    max_iter: int,
) -> tuple[Tensor, Tensor, bool]:
    """``n_wanted`` eigenpairs of ``P H P`` (``P = I - kept^T kept``) by Lanczos from the
    sum of the ``start`` rows."""

    kept = kept.double()

    def project(V: Tensor) -> Tensor:
        V = V.double()
        return V - (V @ kept.T) @ kept if kept.shape[0] else V

    def matmat(V: Tensor) -> Tensor:
        return project(op.matmat(project(V)))

    status = {"converged": False}

    def stop(alphas: Tensor, betas: Tensor, j: int) -> bool:
        if j + 1 < n_wanted:
            return False
        a, b = alphas[0], betas[0]
        T = torch.diag(a) + torch.diag(b[:-1], 1) + torch.diag(b[:-1], -1)
        theta, S = torch.linalg.eigh(T)
        resid = (b[-1] * S[-1, _select(theta, n_wanted, which)]).abs()
        status["converged"] = bool((resid <= tol * scale).all()) or float(b[-1]) == 0.0
        return status["converged"]

    v0 = project(start.sum(dim=0, keepdim=True))
    res = lanczos(matmat, v0, max_iter, keep_basis=True, stop=stop)
    m = res.lengths[0]
    theta, S = torch.linalg.eigh(res.tridiagonal(0))
    idx = _select(theta, min(n_wanted, m), which)
    U = torch.einsum("mi,mn->in", S[:, idx].to(res.basis), res.basis[:m, 0])
    U = project(U)
    return theta[idx], U / U.norm(dim=1, keepdim=True), status["converged"]


def joint_spectrum(
    op: HessianOperator,
    top_k: int = 5,
    *,
    which: str = "LA",
    tol: float = 1e-6,
    max_iter: int = 100,
    n_steps: int = 100,
    n_probes: int = 10,
    trace_probes: int = 100,
    probe_batch: int | None = None,
    seed: int = 0,
    num_bins: int = 10000,
    sigma_squared: float = 1e-5,
    margin: float = 0.01,
) -> JointSpectrum:
    """Density, top-``k`` eigenpairs and trace of ``op`` from one set of SLQ runs.

    Args:
        op: the Hessian operator.
        top_k: eigenpairs wanted (``which`` as in ``lanczos_eigen``: LA, SA or LM).
        tol: residual tolerance relative to the spectral norm (as ``lanczos_eigen``).
        max_iter: Lanczos steps of the refinement run, if one is needed.
        n_steps, n_probes: SLQ steps per probe and probes (the density's settings).
        trace_probes: the plain Hutchinson budget whose standard error the trace must
            match, and its most deflated probes (0: no trace).
        probe_batch: SLQ probes run side by side (all by default); also the trace's.
        seed: seed of the probes (the density's probes are ``slq_nodes``' for this seed).
        num_bins, sigma_squared, margin: the density's smoothing (``smooth_density``).
    """
    if top_k < 1 or n_probes < 1 or n_steps < 1:
        raise ValueError(
            f"top_k, n_probes and n_steps must be positive: {top_k, n_probes, n_steps}"
        )
    gen = torch.Generator().manual_seed(seed)
    probe_batch = probe_batch or n_probes
    start_count = op.n_hvp
    nodes, weights, first_alpha, runs = [], [], [], []
    for start in range(0, n_probes, probe_batch):
        p = min(probe_batch, n_probes - start)
        V = rademacher(p, op.n_params, generator=gen).to(op.device, op.dtype)
        res = lanczos(op.matmat, V, n_steps, keep_basis=True)
        for i in range(p):
            theta, S = torch.linalg.eigh(res.tridiagonal(i))
            nodes.append(theta.numpy())
            weights.append((S[0] ** 2).numpy())
        first_alpha.append(res.alphas[:, 0].clone())
        if not runs:  # the first batch's bases give the Ritz vectors; free the others
            runs.append((res, p))
    n_density = op.n_hvp - start_count
    grid, dens, variance = smooth_density(
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
    density = DensityResult(nodes, weights, grid, dens, variance, "native", settings)

    # top eigenpairs: Ritz pairs of the SLQ runs, true residuals, refine the failures
    before = op.n_hvp
    values, U, krylov, H_krylov = _ritz_from_runs(runs, top_k, which)
    del runs
    U, HU, resid = true_residuals(op, values, U)
    scale = max(float(np.abs(np.concatenate(nodes)).max()), float(values.abs().max())) or 1.0
    ok = resid <= tol * scale
    n_from_slq = int(ok.sum())
    steps_left, rounds = max_iter, 0
    # Lanczos' residual estimate can undershoot the true residual: refine the failures
    # again from the improved vectors while steps are left
    while not bool(ok.all()) and steps_left > 0:
        before_round = op.n_hvp
        kept = U[ok]
        new_values, new_U, _ = _refine(
            op, kept, U[~ok], int((~ok).sum()), which, tol, scale, steps_left
        )
        steps_left -= op.n_hvp - before_round
        values = torch.cat([values[ok], new_values])
        U = torch.cat([kept.double(), new_U])
        order = _select(values, values.numel(), which)
        U, HU, resid = true_residuals(op, values[order], U[order])
        values, ok, rounds = values[order], resid <= tol * scale, rounds + 1
    converged = bool(ok.all())
    eigen = EigenResult(
        eigenvalues=values.numpy(),
        eigenvectors=U,
        residuals=resid.numpy(),
        n_hvp=op.n_hvp - before,
        converged=converged,
        which=which,
        backend="native",
    )

    # trace: exact on the eigenvectors, Hutchinson on the remainder, to the plain stderr
    tr, details = (
        None,
        {
            "eigen_from_slq": n_from_slq,
            "eigen_refined": top_k - n_from_slq,
            "refinement_rounds": rounds,
        },
    )
    if trace_probes > 0:
        free = (torch.cat(first_alpha) * op.n_params).numpy()
        tr = deflated_trace(
            op,
            krylov,
            max(trace_probes, 2),
            HU=H_krylov,
            plain_budget=trace_probes,
            plain_prior=free,
            margin=TRACE_MARGIN,
            min_probes=min(10, max(trace_probes, 2)),
            probe_batch=probe_batch,
            seed=seed + 1,
        )
        details.update(
            {
                "trace_deflated_dim": int(krylov.shape[0]),
                "trace_target_stderr": TRACE_MARGIN * tr.plain_stderr,
                "trace_plain_stderr": tr.plain_stderr,
                "trace_free_samples": free.tolist(),
            }
        )
    n_hvp = {
        "density": n_density,
        "eigen": eigen.n_hvp,
        "trace": tr.n_hvp if tr is not None else 0,
    }
    n_hvp["total"] = sum(n_hvp.values())
    pointwise = np.std([_one_probe(density, i) for i in range(n_probes)], axis=0, ddof=1)
    errors = {
        "eigen_max_residual": float(eigen.residuals.max()),
        "trace_stderr": tr.stderr if tr is not None else float("nan"),
        "density_l1_stderr": float(np.trapezoid(pointwise / np.sqrt(n_probes), grid))
        if n_probes > 1
        else float("nan"),
    }
    return JointSpectrum(eigen, tr, density, n_hvp, errors, details)


def _one_probe(density: DensityResult, i: int) -> np.ndarray:
    """Probe ``i``'s own smoothed density on the joint grid (same variance, unnormalised)."""
    diff = density.grid[:, None] - density.nodes[i][None, :]
    var = density.sigma_squared
    kernel = np.exp(-(diff**2) / (2 * var)) / np.sqrt(2 * np.pi * var)
    return kernel @ density.weights[i]


def density_l1(a: DensityResult, b: DensityResult) -> float:
    """L1 distance between two densities, both evaluated on the union of their grids."""
    grid = np.union1d(a.grid, b.grid)
    fa = np.interp(grid, a.grid, a.density, left=0.0, right=0.0)
    fb = np.interp(grid, b.grid, b.density, left=0.0, right=0.0)
    return float(np.trapezoid(np.abs(fa - fb), grid))
