"""E5: the loss along each Hessian eigenvector, exact vs its quadratic model, and its best step.

For an eigenpair ``(lambda, v)`` (unit ``v``) and the gradient ``g`` at ``theta``, the step
``theta - alpha (g.v) v`` is gradient descent restricted to ``v`` with learning rate
``alpha``. Its second-order Taylor model is

    L(theta - alpha (g.v) v) ~ L0 - alpha (g.v)^2 + alpha^2 (g.v)^2 lambda / 2,

minimised (for ``lambda > 0``) at ``alpha = 1 / lambda`` with decrease
``(g.v)^2 / (2 lambda)``; for ``lambda <= 0`` the model decreases without bound. The exact
loss is evaluated on a grid of ``alpha`` (all points of one eigenvector in one batched
evaluation).

The best step ``alpha*`` is searched over orders of magnitude, because the study's result is
about its scale (``1/alpha* ~ lambda`` up to lambda ~ 100, far larger steps than ``1/|lambda|``
for lambda < 0): a log grid of ``|alpha|`` on both signs (and 0), then a bounded 1-D
minimisation (scipy's ``minimize_scalar``, method ``bounded``) inside the best grid point's
bracket. An ``alpha*`` at the grid's largest ``|alpha|`` has no bracket: it is kept and
flagged ``bounded`` (bounded by the search, the true best step may be larger).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from scipy.optimize import minimize_scalar

from minima.hessian.functional import FunctionalLoss

SUMMARY_COLUMNS = (
    "pair",
    "eigenvalue",
    "gv",
    "best_decrease",
    "alpha_star",
    "loss_star",
    "bounded",
    "best_decrease_quadratic",
    "alpha_star_quadratic",
)


@dataclass(frozen=True)
class StepSearch:
    """The search for ``alpha*``: ``|alpha|`` from ``min_alpha`` to ``max_alpha`` on a log grid
    of ``per_decade`` points per decade, on both signs and at 0, then a bounded refinement to
    a relative tolerance ``rtol`` (scipy adds its own ``sqrt(eps) |alpha|``, ~1.5e-8)."""

    min_alpha: float = 1e-3
    max_alpha: float = 1e3
    per_decade: int = 8
    rtol: float = 1e-9

    def __post_init__(self) -> None:
        if not 0 < self.min_alpha < self.max_alpha:
            raise ValueError(
                f"the step search needs 0 < min < max, got min {self.min_alpha}, "
                f"max {self.max_alpha}"
            )
        if self.per_decade < 1 or self.rtol <= 0:
            raise ValueError(
                f"the step search needs per_decade >= 1 and rtol > 0, got per_decade "
                f"{self.per_decade}, rtol {self.rtol}"
            )

    def grid(self) -> np.ndarray:
        """The sorted grid: ``-max .. -min, 0, min .. max``, geometric in ``|alpha|``."""
        decades = math.log10(self.max_alpha / self.min_alpha)
        n = int(math.ceil(decades * self.per_decade - 1e-9)) + 1
        magnitudes = np.geomspace(self.min_alpha, self.max_alpha, n)
        return np.concatenate([-magnitudes[::-1], [0.0], magnitudes])


def _unit_columns(fl: FunctionalLoss, eigenvalues, eigenvectors) -> tuple[np.ndarray, torch.Tensor]:
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
    return eigenvalues, V


class _Direction:
    """The exact loss along ``theta - alpha (g.v) v`` for one unit eigenvector ``v``."""

    def __init__(self, fl: FunctionalLoss, v: torch.Tensor, g: torch.Tensor, chunk_size):
        self.fl, self.chunk_size = fl, chunk_size
        self.v = (v / v.norm()).to(fl.device, fl.dtype)
        self.gv = float(g @ self.v)

    def losses(self, alphas: np.ndarray) -> np.ndarray:
        alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
        step = self.chunk_size or alphas.size
        parts = []
        for start in range(0, alphas.size, step):
            a = torch.as_tensor(alphas[start : start + step]).to(self.v)
            points = self.fl.theta[None, :] - (a * self.gv)[:, None] * self.v[None, :]
            parts.append(self.fl.evaluate(points, chunk_size=self.chunk_size)[0].double().cpu())
        return torch.cat(parts).numpy()


def _curve(pair: int, lam: float, gv: float, alphas: np.ndarray, losses: np.ndarray, loss0: float):
    return pd.DataFrame(
        {
            "pair": pair,
            "eigenvalue": lam,
            "gv": gv,
            "alpha": alphas,
            "loss": losses,
            "loss_quadratic": loss0 - alphas * gv**2 + alphas**2 * gv**2 * lam / 2,
        }
    )


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
    eigenvalues, V = _unit_columns(fl, eigenvalues, eigenvectors)
    alphas = np.asarray(alphas, dtype=np.float64).reshape(-1)
    loss0, g = fl.gradient()
    loss0 = float(loss0)
    frames = []
    for i, lam in enumerate(eigenvalues):
        line = _Direction(fl, V[:, i], g, chunk_size)
        frames.append(_curve(i, lam, line.gv, alphas, line.losses(alphas), loss0))
    table = pd.concat(frames, ignore_index=True)
    table.attrs["loss0"] = loss0
    return table


def _quadratic_optimum(lam: float, gv: float) -> dict[str, float]:
    return {
        "best_decrease_quadratic": gv**2 / (2 * lam) if lam > 0 else np.nan,
        "alpha_star_quadratic": 1 / lam if lam > 0 else np.nan,
    }


def line_search_summary(table: pd.DataFrame, loss0: float | None = None) -> pd.DataFrame:
    """Per eigenpair: the best point of the table's own grid (no refinement).

    Args:
        table: the output of ``eigen_line_search``.
        loss0: the loss at ``theta`` (taken from ``table.attrs`` by default).

    Returns:
        Columns ``SUMMARY_COLUMNS``: best decrease, ``alpha*`` and ``L(alpha*)`` on the grid,
        ``bounded`` (``alpha*`` at the grid's largest ``|alpha|``), and the quadratic model's
        ``1/lambda`` and ``(g.v)^2 / (2 lambda)`` (NaN where ``lambda <= 0``: unbounded).
        Non-finite losses (a step so large the loss overflows) count as no decrease.
    """
    loss0 = table.attrs["loss0"] if loss0 is None else loss0
    rows = []
    for pair, group in table.groupby("pair", sort=True):
        alphas = group["alpha"].to_numpy(dtype=np.float64)
        losses = group["loss"].to_numpy(dtype=np.float64)
        best = int(np.argmin(np.where(np.isfinite(losses), losses, np.inf)))
        lam, gv = float(group["eigenvalue"].iloc[0]), float(group["gv"].iloc[0])
        rows.append(
            {
                "pair": pair,
                "eigenvalue": lam,
                "gv": gv,
                "best_decrease": loss0 - float(losses[best]),
                "alpha_star": float(alphas[best]),
                "loss_star": float(losses[best]),
                "bounded": bool(abs(alphas[best]) >= np.abs(alphas).max()),
                **_quadratic_optimum(lam, gv),
            }
        )
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def refine_step(
    loss_at, grid: np.ndarray, losses: np.ndarray, rtol: float
) -> tuple[float, float, bool, int]:
    """The best step from a sorted grid and its losses, refined inside its bracket.

    Args:
        loss_at: ``alpha -> loss`` (a float function).
        grid: sorted step sizes.
        losses: ``loss_at`` on ``grid`` (non-finite values count as +inf).
        rtol: relative tolerance of the refinement on ``alpha``.

    Returns:
        ``(alpha*, L(alpha*), bounded, evaluations)``: ``bounded`` where the best grid point is
        an end of the grid (no bracket: it is returned as it is).
    """
    finite = np.where(np.isfinite(losses), losses, np.inf)
    best = int(np.argmin(finite))
    if best in (0, grid.size - 1):
        return float(grid[best]), float(losses[best]), True, 0
    low, high = float(grid[best - 1]), float(grid[best + 1])
    scale = abs(float(grid[best])) or min(abs(low), abs(high))
    result = minimize_scalar(
        loss_at, bounds=(low, high), method="bounded", options={"xatol": rtol * scale}
    )
    if np.isfinite(result.fun) and result.fun <= finite[best]:
        return float(result.x), float(result.fun), False, int(result.nfev)
    return float(grid[best]), float(losses[best]), False, int(result.nfev)


def eigen_step_search(
    fl: FunctionalLoss,
    eigenvalues: np.ndarray,
    eigenvectors: np.ndarray | torch.Tensor,
    search: StepSearch,
    *,
    chunk_size: int | None = 8,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The best step ``alpha*`` along every eigenpair: log grid, then bounded refinement.

    Returns:
        ``(curve, summary)``: the exact and quadratic loss on the search grid (the columns of
        ``eigen_line_search``), and per pair the columns ``SUMMARY_COLUMNS`` with the refined
        ``alpha*``, ``L(alpha*)``, ``best_decrease = L0 - L(alpha*)`` and ``bounded``
        (``alpha*`` at ``+-search.max_alpha``: bounded by the search).
    """
    eigenvalues, V = _unit_columns(fl, eigenvalues, eigenvectors)
    grid = search.grid()
    loss0, g = fl.gradient()
    loss0 = float(loss0)
    curves, rows = [], []
    for i, lam in enumerate(eigenvalues):
        line = _Direction(fl, V[:, i], g, chunk_size)
        losses = line.losses(grid)
        curves.append(_curve(i, lam, line.gv, grid, losses, loss0))
        alpha, loss, bounded, _ = refine_step(
            lambda a, line=line: float(line.losses(np.array([a]))[0]), grid, losses, search.rtol
        )
        rows.append(
            {
                "pair": i,
                "eigenvalue": lam,
                "gv": line.gv,
                "best_decrease": loss0 - loss,
                "alpha_star": alpha,
                "loss_star": loss,
                "bounded": bounded,
                **_quadratic_optimum(lam, line.gv),
            }
        )
    curve = pd.concat(curves, ignore_index=True)
    curve.attrs["loss0"] = loss0
    summary = pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))
    summary.attrs["loss0"] = loss0
    return curve, summary
