"""Loss and accuracy on 1D lines and 2D planes through the weights (Li et al. 2018).

The point ``theta + alpha d1 (+ beta d2)`` is evaluated for every grid value; points go
through the model ``chunk_size`` at a time with ``torch.func.vmap`` over parameter
vectors (``FunctionalLoss.evaluate``), and only one chunk of parameter vectors exists at
a time. The model is in eval mode: batch norm normalises with the *trained* running
statistics at every grid point (they are buffers, not moved along the directions).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from minima.hessian.functional import FunctionalLoss


def _grid(span: tuple[float, float], num: int) -> np.ndarray:
    lo, hi = span
    if num < 1 or not hi >= lo:
        raise ValueError(f"need num >= 1 and span[1] >= span[0], got span={span}, num={num}")
    return np.linspace(lo, hi, num)


def _evaluate_plane(
    fl: FunctionalLoss, directions: Tensor, coords: np.ndarray, chunk_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy at ``theta + coords @ directions`` for each row of ``coords``."""
    D = directions.to(fl.device, fl.dtype)
    C = torch.as_tensor(coords).to(fl.device, fl.dtype)
    losses, accs = [], []
    for start in range(0, C.shape[0], chunk_size):
        points = fl.theta[None, :] + C[start : start + chunk_size] @ D
        loss, acc = fl.evaluate(points, chunk_size=chunk_size)
        losses.append(loss.double().cpu())
        accs.append(acc.double().cpu())
    return torch.cat(losses).numpy(), torch.cat(accs).numpy()


def _check_direction(fl: FunctionalLoss, d: Tensor) -> Tensor:
    d = torch.as_tensor(d).reshape(-1)
    if d.numel() != fl.n_params:
        raise ValueError(f"direction has {d.numel()} entries, the model has {fl.n_params}")
    return d


def landscape_1d(
    fl: FunctionalLoss,
    direction: Tensor,
    *,
    span: tuple[float, float] = (-1.0, 1.0),
    num: int = 51,
    chunk_size: int = 16,
) -> pd.DataFrame:
    """Loss and accuracy along ``theta + alpha d`` for ``num`` values of alpha in ``span``.

    Returns:
        Columns ``alpha, beta, loss, accuracy`` (``beta`` is 0: the line is the plane's
        ``beta = 0`` slice).
    """
    d = _check_direction(fl, direction)
    alphas = _grid(span, num)
    loss, acc = _evaluate_plane(fl, d[None, :], alphas[:, None], chunk_size)
    table = pd.DataFrame({"alpha": alphas, "beta": 0.0, "loss": loss, "accuracy": acc})
    table.attrs.update({"mode": "eval (batch norm: trained running statistics)"})
    return table


def landscape_2d(
    fl: FunctionalLoss,
    d1: Tensor,
    d2: Tensor,
    *,
    span: tuple[float, float] = (-1.0, 1.0),
    num: int = 21,
    span_beta: tuple[float, float] | None = None,
    num_beta: int | None = None,
    chunk_size: int = 16,
) -> pd.DataFrame:
    """Loss and accuracy on the plane ``theta + alpha d1 + beta d2``.

    Args:
        fl: the loss over the fixed data.
        d1, d2: flat directions (see ``minima.landscape.directions``).
        span, num: range and number of alpha values.
        span_beta, num_beta: the same for beta (default: as for alpha).
        chunk_size: grid points evaluated per vmap call.

    Returns:
        One row per grid point, columns ``alpha, beta, loss, accuracy`` (alpha-major).
    """
    d1, d2 = _check_direction(fl, d1), _check_direction(fl, d2)
    alphas = _grid(span, num)
    betas = _grid(span_beta or span, num_beta or num)
    A, B = np.meshgrid(alphas, betas, indexing="ij")
    coords = np.stack([A.ravel(), B.ravel()], axis=1)
    loss, acc = _evaluate_plane(fl, torch.stack([d1, d2]), coords, chunk_size)
    table = pd.DataFrame(
        {"alpha": coords[:, 0], "beta": coords[:, 1], "loss": loss, "accuracy": acc}
    )
    table.attrs.update({"mode": "eval (batch norm: trained running statistics)"})
    return table
