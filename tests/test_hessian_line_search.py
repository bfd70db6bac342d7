"""E5's best step alpha* along Hessian eigenvectors: a log grid over orders of magnitude on
both signs, refined by scipy's bounded minimiser, checked on an exactly quadratic loss whose
eigenpairs and optimal steps are known in closed form."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from minima.hessian.functional import FunctionalLoss
from minima.hessian.job import step_search
from minima.hessian.line_search import StepSearch, eigen_step_search, refine_step

# Eigenvalues of the quadratic's Hessian: negative, small and large positive ones (1/2000 is
# below the grid's smallest |alpha|, 1e-3: found inside the bracket between 0 and it).
LAMBDAS = np.array([-2.0, -0.3, 0.05, 1.0, 30.0, 400.0, 2000.0])
GV = np.array([0.7, -1.3, 0.4, 2.0, -0.9, 1.1, 3.0])  # g.v_i: the gradient's components


class _Point(nn.Module):
    """The parameter vector itself as every row's output: the loss below is then a function
    of the weights alone."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(d, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.expand(x.shape[0], -1)


def _quadratic() -> tuple[FunctionalLoss, np.ndarray]:
    """L(w) = w^T A w / 2 + b^T w with A = Q diag(LAMBDAS) Q^T, b = Q GV, at w = 0: so the
    gradient is b, g.v_i = GV_i and L(-alpha (g.v_i) v_i) = -alpha GV_i^2 + alpha^2 GV_i^2
    lambda_i / 2 exactly."""
    d = LAMBDAS.size
    q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((d, d)))
    a = torch.from_numpy(q @ np.diag(LAMBDAS) @ q.T)
    b = torch.from_numpy(q @ GV)

    def loss(out: torch.Tensor, _y: torch.Tensor) -> torch.Tensor:
        return (0.5 * ((out @ a) * out).sum(-1) + out @ b).mean()

    x, y = torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3)
    return FunctionalLoss(_Point(d), loss, [(x, y)], dtype=torch.float64), q


def test_alpha_star_is_one_over_lambda_and_negative_curvature_hits_the_edge():
    fl, q = _quadratic()
    search = StepSearch(min_alpha=1e-3, max_alpha=1e3, per_decade=8, rtol=1e-9)
    curve, summary = eigen_step_search(fl, LAMBDAS, q, search, chunk_size=16)
    grid = search.grid()
    assert grid.size == 2 * 49 + 1 and grid[0] == -1e3 and grid[-1] == 1e3 and 0.0 in grid
    np.testing.assert_allclose(summary["gv"], GV, rtol=1e-12)
    # on the grid the exact loss is the quadratic model (the loss is exactly quadratic)
    np.testing.assert_allclose(curve["loss"], curve["loss_quadratic"], rtol=1e-12, atol=1e-9)
    positive = summary["eigenvalue"] > 0
    pos = summary[positive]
    np.testing.assert_allclose(pos["alpha_star"], 1 / LAMBDAS[LAMBDAS > 0], rtol=1e-6)
    np.testing.assert_allclose(pos["alpha_star"], pos["alpha_star_quadratic"], rtol=1e-6)
    np.testing.assert_allclose(
        pos["best_decrease"], GV[LAMBDAS > 0] ** 2 / (2 * LAMBDAS[LAMBDAS > 0]), rtol=1e-10
    )
    np.testing.assert_allclose(pos["loss_star"], -pos["best_decrease"], rtol=1e-12)
    assert not pos["bounded"].any()
    # lambda < 0: unbounded below along v, so the best step is the search's largest, flagged
    neg = summary[~positive]
    assert neg["bounded"].all()
    np.testing.assert_array_equal(neg["alpha_star"], 1e3)
    expected = 1e3 * GV[LAMBDAS < 0] ** 2 - 1e6 * GV[LAMBDAS < 0] ** 2 * LAMBDAS[LAMBDAS < 0] / 2
    np.testing.assert_allclose(neg["best_decrease"], expected, rtol=1e-12)
    assert neg["alpha_star_quadratic"].isna().all()


def test_a_narrower_search_bounds_what_the_wider_one_finds():
    fl, q = _quadratic()
    narrow = StepSearch(min_alpha=0.1, max_alpha=10.0, per_decade=4)
    _, summary = eigen_step_search(fl, LAMBDAS, q, narrow)
    # 1/0.05 = 20 lies beyond |alpha| = 10: bounded; 1/30 and 1/400 below 0.1: refined in (0, 0.1)
    by_lambda = summary.set_index("eigenvalue")
    assert by_lambda.loc[0.05, "bounded"] and by_lambda.loc[0.05, "alpha_star"] == 10.0
    assert by_lambda.loc[30.0, "alpha_star"] == pytest.approx(1 / 30, rel=1e-6)
    assert by_lambda.loc[2000.0, "alpha_star"] == pytest.approx(1 / 2000, rel=1e-6)
    assert not by_lambda.loc[[1.0, 30.0, 400.0, 2000.0], "bounded"].any()


def test_refinement_is_scipy_bounded_inside_the_best_bracket():
    grid = np.array([-4.0, -1.0, 0.0, 1.0, 4.0])
    f = lambda a: (a - 1.7) ** 2  # noqa: E731
    losses = np.array([f(a) for a in grid])
    alpha, loss, bounded, n = refine_step(f, grid, losses, rtol=1e-10)
    assert alpha == pytest.approx(1.7, rel=1e-7) and not bounded and n > 0
    assert loss == pytest.approx(0.0, abs=1e-12)
    losses[-1] = -1.0  # best at the end: no bracket, kept as it is and flagged
    assert refine_step(f, grid, losses, rtol=1e-10) == (4.0, -1.0, True, 0)
    losses[:] = [np.nan, np.inf, 3.0, 1.0, np.nan]  # overflowed losses count as no decrease
    alpha, _, bounded, _ = refine_step(f, grid, losses, rtol=1e-10)
    assert alpha == pytest.approx(1.7, rel=1e-7) and not bounded


def test_inconsistent_search_bounds_name_the_key():
    with pytest.raises(ValueError, match=r"line_search.search: .*0 < min < max"):
        step_search({"min": 10.0, "max": 1.0, "per_decade": 8, "rtol": 1e-9})
    with pytest.raises(ValueError, match="per_decade >= 1"):
        StepSearch(per_decade=0)
