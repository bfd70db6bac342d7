"""Hutchinson's estimator of the Hessian trace, with its standard error.

``tr(H) = E[z^T H z]`` for Rademacher ``z`` (entries +-1 with probability 1/2; Hutchinson
1990, PyHessian, AdaHessian). The estimate is the mean of ``n_probes`` samples and the
standard error is their sample standard deviation over ``sqrt(n_probes)``. The number of
probes is fixed in advance: PyHessian stops when the running mean changes by less than
``tol`` relative to the *signed* running mean, which ends the loop after two samples
whenever the first one is negative; there is no such early stop here. Probes go through
the operator ``probe_batch`` at a time (one vmapped HVP call each).
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
    """

    estimate: float
    stderr: float
    n_probes: int
    samples: np.ndarray
    backend: str

    @classmethod
    def from_samples(cls, samples: np.ndarray, backend: str) -> TraceResult:
        """Mean and standard error of the given samples."""
        samples = np.asarray(samples, dtype=np.float64)
        n = samples.size
        stderr = float(samples.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        return cls(float(samples.mean()), stderr, n, samples, backend)


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
    return TraceResult.from_samples(torch.cat(samples).numpy(), "native")
