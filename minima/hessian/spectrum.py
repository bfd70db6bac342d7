"""One function per curvature analysis, run by PyHessian or by the native engine.

``top_eigen``, ``trace`` and ``density`` take a model, a mean-reduced loss and a fixed
list of ``(x, y)`` batches, and ``backend="native" | "pyhessian"``. Both backends compute
the Hessian of the mean loss over those batches with the model in eval mode (batch norm
uses its running statistics) and return the same result types, so the two can be
compared side by side (E1's densities come from PyHessian in the paper).

Where the backends differ by design: PyHessian's eigenvalues come from power iteration
with deflation (largest *magnitude*, stopping on a relative change ``tol`` of the
Rayleigh quotient, ``max_iter`` per eigenvalue); the native ones from Lanczos (largest
*algebraic* by default, stopping on a residual below ``tol`` times the spectral norm,
``max_iter`` steps in all).

``joint`` is the native engine's cheaper way to all three at once: one set of SLQ runs
serves the density, the top eigenpairs and (deflated) the trace.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from minima.hessian.eigen import EigenResult, lanczos_eigen
from minima.hessian.functional import Batches, LossFn
from minima.hessian.hvp import HessianOperator, make_operator
from minima.hessian.joint import JointSpectrum, joint_spectrum
from minima.hessian.pyhessian_backend import PyHessianSession
from minima.hessian.slq import DensityResult, slq_density, smooth_density
from minima.hessian.trace import TraceResult, hutchinson_trace

BACKENDS = ("native", "pyhessian")


def _check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def _native(model, loss_fn, batches, dtype, device, method, cache_graph, mem_mb):
    """The native backend's operator (``cache_graph``, ``mem_mb``: see ``make_operator``)."""
    return make_operator(
        model,
        loss_fn,
        batches,
        dtype=dtype,
        device=device,
        method=method,
        cache_graph=cache_graph,
        mem_mb=mem_mb,
    )


def top_eigen(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    k: int = 1,
    *,
    backend: str = "native",
    which: str | None = None,
    tol: float = 1e-6,
    max_iter: int = 100,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    method: str = "auto",
    cache_graph: bool | str = False,
    mem_mb: float | None = None,
    seed: int = 0,
) -> EigenResult:
    """The top-``k`` Hessian eigenpairs.

    Args:
        model, loss_fn, batches: the network, its mean loss and the fixed data.
        k: number of eigenpairs.
        backend: ``"native"`` (Lanczos) or ``"pyhessian"`` (power iteration).
        which: native: ``"LA"`` (default), ``"SA"`` or ``"LM"``; PyHessian can only do
            ``"LM"`` (its default).
        tol: native: residual tolerance relative to the spectral norm; PyHessian: relative
            change of the eigenvalue between iterations (its own default 1e-3 is too loose).
        max_iter: native: Lanczos steps; PyHessian: power iterations per eigenvalue.
        dtype, device: computation dtype and device.
        method: native HVP method (see ``HessianOperator``).
        cache_graph, mem_mb: whether a double-backward product reuses its graph
            (``"auto"``: when it fits half of ``mem_mb``; ``minima.hessian.hvp.make_operator``).
        seed: seed of the start vectors.

    Returns:
        Eigenvalues, unit eigenvectors (rows, flat) and their residuals ``||Hu - lambda u||``
        (for PyHessian computed afterwards with the native operator, k extra products).
    """
    _check_backend(backend)
    if backend == "native":
        op = _native(model, loss_fn, batches, dtype, device, method, cache_graph, mem_mb)
        return lanczos_eigen(op, k, which=which or "LA", tol=tol, max_iter=max_iter, seed=seed)
    if which not in (None, "LM"):
        raise ValueError(f"the pyhessian backend finds largest-magnitude eigenvalues, not {which}")
    session = PyHessianSession(model, loss_fn, batches, dtype=dtype, device=device, seed=seed)
    with session:
        values, vectors = session.eigenvalues(k, tol=tol, max_iter=max_iter)
    op = HessianOperator(
        session.model, loss_fn, batches, dtype=dtype, device=session.device, method=method
    )
    U = vectors.to(op.device, op.dtype)
    U = U / U.norm(dim=1, keepdim=True)
    resid = (op.matmat(U) - torch.as_tensor(values).to(U)[:, None] * U).norm(dim=1)
    residuals = resid.double().cpu().numpy()
    scale = float(np.abs(values).max()) or 1.0
    return EigenResult(
        eigenvalues=values,
        eigenvectors=U,
        residuals=residuals,
        n_hvp=-1,
        converged=bool((residuals <= np.sqrt(tol) * scale).all()),
        which="LM",
        backend="pyhessian",
    )


def trace(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    *,
    n_probes: int = 100,
    backend: str = "native",
    probe_batch: int = 10,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    method: str = "auto",
    cache_graph: bool | str = False,
    mem_mb: float | None = None,
    seed: int = 0,
) -> TraceResult:
    """Hutchinson estimate of the Hessian trace from exactly ``n_probes`` Rademacher probes.

    Returns the estimate and its standard error (both backends draw every probe; the
    PyHessian backend disables its signed-running-mean early stop).
    """
    _check_backend(backend)
    if backend == "native":
        op = _native(model, loss_fn, batches, dtype, device, method, cache_graph, mem_mb)
        return hutchinson_trace(op, n_probes, probe_batch=probe_batch, seed=seed)
    with PyHessianSession(model, loss_fn, batches, dtype=dtype, device=device, seed=seed) as s:
        samples = s.trace_samples(n_probes)
    return TraceResult.from_samples(samples, "pyhessian")


def density(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    *,
    n_steps: int = 100,
    n_probes: int = 1,
    backend: str = "native",
    probe_batch: int | None = None,
    num_bins: int = 10000,
    sigma_squared: float = 1e-5,
    margin: float = 0.01,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    method: str = "auto",
    cache_graph: bool | str = False,
    mem_mb: float | None = None,
    seed: int = 0,
) -> DensityResult:
    """Hessian eigenvalue density by SLQ: ``n_probes`` runs of ``n_steps`` Lanczos steps.

    The smoothing (Gaussian of variance ``sigma_squared * max(1, grid width)`` on
    ``num_bins`` points) is the same for both backends.
    """
    _check_backend(backend)
    if backend == "native":
        op = _native(model, loss_fn, batches, dtype, device, method, cache_graph, mem_mb)
        return slq_density(
            op,
            n_steps,
            n_probes,
            probe_batch=probe_batch,
            seed=seed,
            num_bins=num_bins,
            sigma_squared=sigma_squared,
            margin=margin,
        )
    with PyHessianSession(model, loss_fn, batches, dtype=dtype, device=device, seed=seed) as s:
        nodes, weights = s.density_nodes(n_steps, n_probes)
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
    return DensityResult(nodes, weights, grid, dens, variance, "pyhessian", settings)


def joint(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    top_k: int = 5,
    *,
    which: str = "LA",
    tol: float = 1e-6,
    max_iter: int = 100,
    n_steps: int = 100,
    n_probes: int = 10,
    trace_probes: int = 100,
    probe_batch: int | None = None,
    num_bins: int = 10000,
    sigma_squared: float = 1e-5,
    margin: float = 0.01,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    method: str = "auto",
    cache_graph: bool | str = False,
    mem_mb: float | None = None,
    seed: int = 0,
) -> JointSpectrum:
    """Native engine only: density, top-``k`` eigenpairs and trace from one set of SLQ
    runs (``minima.hessian.joint``); the three results match ``top_eigen`` (same ``tol``
    rule), ``trace`` (a standard error no larger than ``trace_probes`` plain probes') and
    ``density`` (the same probes for the same seed)."""
    op = _native(model, loss_fn, batches, dtype, device, method, cache_graph, mem_mb)
    return joint_spectrum(
        op,
        top_k,
        which=which,
        tol=tol,
        max_iter=max_iter,
        n_steps=n_steps,
        n_probes=n_probes,
        trace_probes=trace_probes,
        probe_batch=probe_batch,
        seed=seed,
        num_bins=num_bins,
        sigma_squared=sigma_squared,
        margin=margin,
    )
