"""Sharpness of a trained model in the rho-ball (E4): first order and by gradient ascent.

SAM (Foret et al. 2021) defines the sharpness ``max_{||e|| <= rho} L(w + e) - L(w)``. Its
first-order approximation is ``rho ||g||`` (the linearised maximum, attained at
``e = rho g / ||g||``), the quantity E4 logs per batch during training. Here, per model on
fixed data, we report it together with a better estimate of the true maximum: a few steps
of projected, normalised gradient ascent from SAM's point,

    e <- P(e + eta * grad L(w + e) / ||grad L(w + e)||),   P = projection on the rho-ball,

keeping the largest increase seen (including SAM's point itself, so the result is never
below ``L(w + rho g/||g||) - L(w)``). The loss is the mean over the given batches with the
model in eval mode (batch norm uses its running statistics), unlike training-time SAM.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from minima.hessian.functional import Batches, FunctionalLoss, LossFn


@dataclass
class SharpnessResult:
    """Sharpness of one model.

    Attributes:
        rho: radius of the ball.
        loss: ``L(w)``.
        grad_norm: ``||grad L(w)||``.
        first_order: ``rho * ||grad L(w)||`` (SAM's first-order sharpness).
        sam_point: ``L(w + rho g/||g||) - L(w)``, the exact increase at SAM's point.
        ascent: the largest ``L(w + e) - L(w)`` found by projected gradient ascent.
        ascent_trace: the increase at every iterate (SAM's point first).
        steps: ascent steps taken.
        step_size: the normalised step length used.
    """

    rho: float
    loss: float
    grad_norm: float
    first_order: float
    sam_point: float
    ascent: float
    ascent_trace: np.ndarray
    steps: int
    step_size: float


def _project(e: Tensor, rho: float) -> Tensor:
    norm = e.norm()
    return e * (rho / norm) if norm > rho else e


def ascent_sharpness(
    fl: FunctionalLoss,
    rho: float = 0.05,
    *,
    steps: int = 5,
    step_size: float | None = None,
    seed: int = 0,
) -> SharpnessResult:
    """First-order and gradient-ascent sharpness of ``fl`` in the ball of radius ``rho``.

    Args:
        fl: the loss over fixed data at the trained weights.
        rho: radius (2-norm over all trainable parameters together, as in SAM).
        steps: projected gradient ascent steps after SAM's point.
        step_size: length of each normalised step (``rho / 2`` by default).
        seed: start direction if the gradient is exactly zero.
    """
    if rho < 0:
        raise ValueError(f"rho must be non-negative, got {rho}")
    step_size = rho / 2 if step_size is None else step_size
    loss0, g = fl.gradient()
    loss0 = float(loss0)
    g_norm = float(g.norm())
    if rho == 0:
        return SharpnessResult(rho, loss0, g_norm, 0.0, 0.0, 0.0, np.zeros(1), 0, step_size)
    if g_norm > 0:
        e = rho * g / g_norm
    else:
        gen = torch.Generator().manual_seed(seed)
        e = torch.randn(fl.n_params, generator=gen, dtype=torch.float64).to(g)
        e = rho * e / e.norm()
    increases = []
    for step in range(steps + 1):
        if step == steps:
            increases.append(float(fl.loss(fl.theta + e)) - loss0)
            break
        loss, grad = fl.gradient(fl.theta + e)
        increases.append(float(loss) - loss0)
        grad_norm = grad.norm()
        if grad_norm == 0:
            break
        e = _project(e + step_size * grad / grad_norm, rho)
    trace = np.asarray(increases)
    return SharpnessResult(
        rho=rho,
        loss=loss0,
        grad_norm=g_norm,
        first_order=rho * g_norm,
        sam_point=float(trace[0]),
        ascent=float(trace.max()),
        ascent_trace=trace,
        steps=len(trace) - 1,
        step_size=step_size,
    )


def sharpness(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    rho: float = 0.05,
    *,
    steps: int = 5,
    step_size: float | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> SharpnessResult:
    """Sharpness of ``model`` on the fixed ``batches`` (see ``ascent_sharpness``)."""
    fl = FunctionalLoss(model, loss_fn, batches, dtype=dtype, device=device)
    return ascent_sharpness(fl, rho, steps=steps, step_size=step_size, seed=seed)
