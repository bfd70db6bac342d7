"""E5: the loss along each Hessian eigenvector, exact vs its quadratic model.

For an eigenpair ``(lambda, v)`` (unit ``v``) and the gradient ``g`` at ``theta``, the step
``theta - alpha (g.v) v`` is gradient descent restricted to ``v`` with learning rate
``alpha``. Its second-order Taylor model is

    L(theta - alpha (g.v) v) ~ L0 - alpha (g.v)^2 + alpha^2 (g.v)^2 lambda / 2,

minimised (for ``lambda > 0``) at ``alpha = 1 / lambda`` with decrease
``(g.v)^2 / (2 lambda)``; for ``lambda <= 0`` the model decreases without bound. The exact
loss is evaluated on a grid of ``alpha`` (all points of one eigenvector in one batched
evaluation); the best decrease and the ``alpha*`` achieving it are read off that grid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from minima.hessian.functional import FunctionalLoss


def eigen_line_search(
    fl: FunctionalLoss,
    eigenvalues: np.ndarray,
    eigenvectors: np.ndarray | torch.Tensor,
    alphas: np.ndarray,
    *,
    chunk_size: int | None = 8,
) -> pd.DataFrame:
    """Exact and quadratic-model loss along ``theta - alpha (g.v) v`` for every eigenpair.

    Args:
        fl: the loss over the fixed data (e.g. the ``HessianOperator`` the pairs came from).
        eigenvalues: ``(k,)``.
        eigenvectors: ``(n_params, k)`` columns (as eigsh returns them).
        alphas: step sizes to evaluate (include 0 to see ``L0`` on the curve).
        chunk_size: parameter points built and evaluated at a time (memory: this many
            parameter vectors).

    Returns:
        A tidy table with columns ``pair, eigenvalue, gv, alpha, loss, loss_quadratic``.
    """
    eigenvalues = np.asarray(eigenvalues, dtype=np.float64).reshape(-1)
    if isinstance(eigenvectors, torch.Tensor):
        V = eigenvectors.detach()
    else:
        V = torch.from_numpy(np.asarray(eigenvectors, dtype=np.float64))
    if V.shape != (fl.n_params, eigenvalues.size):
        raise ValueError(
            f"eigenvectors must have shape ({fl.n_params}, {eigenvalues.size}), "
            f"got {tuple(V.shape)}"
        )
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
    loss0, g = fl.gradient()
    loss0 = float(loss0)
    frames = []
    for i, lam in enumerate(eigenvalues):
        v = V[:, i].to(fl.device, fl.dtype)
        v = v / v.norm()
        gv = float(g @ v)
        parts = []
        for start in range(0, alphas.size, chunk_size or alphas.size):
            a = torch.as_tensor(alphas[start : start + (chunk_size or alphas.size)]).to(v)
            points = fl.theta[None, :] - (a * gv)[:, None] * v[None, :]
            parts.append(fl.evaluate(points, chunk_size=chunk_size)[0].double().cpu())
        losses = torch.cat(parts)
        quad = loss0 - alphas * gv**2 + alphas**2 * gv**2 * lam / 2
        frames.append(
            pd.DataFrame(
                {
                    "pair": i,
                    "eigenvalue": lam,
                    "gv": gv,
                    "alpha": alphas,
                    "loss": losses.double().cpu().numpy(),
                    "loss_quadratic": quad,
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table.attrs["loss0"] = loss0
    return table


def line_search_summary(table: pd.DataFrame, loss0: float | None = None) -> pd.DataFrame:
    """Per eigenpair: best loss decrease on the grid and the ``alpha*`` achieving it.

    Args:
        table: the output of ``eigen_line_search``.
        loss0: the loss at ``theta`` (taken from ``table.attrs`` by default).

    Returns:
        Columns ``pair, eigenvalue, gv, best_decrease, alpha_star, best_decrease_quadratic,
        alpha_star_quadratic`` (the quadratic model's ``1/lambda`` and
        ``(g.v)^2 / (2 lambda)``; NaN where ``lambda <= 0``, the model being unbounded).
    """
    loss0 = table.attrs["loss0"] if loss0 is None else loss0
    rows = []
    for pair, group in table.groupby("pair", sort=True):
        best = group.loc[group["loss"].idxmin()]
        lam, gv = float(group["eigenvalue"].iloc[0]), float(group["gv"].iloc[0])
        rows.append(
            {
                "pair": pair,
                "eigenvalue": lam,
                "gv": gv,
                "best_decrease": loss0 - float(best["loss"]),
                "alpha_star": float(best["alpha"]),
                "best_decrease_quadratic": gv**2 / (2 * lam) if lam > 0 else np.nan,
                "alpha_star_quadratic": 1 / lam if lam > 0 else np.nan,
            }
        )
    return pd.DataFrame(rows)
