"""E5 tools: eigsh LA/SA eigenpairs, the subset check, and the eigenvector line searches."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_hessian_cases import (  # noqa: F401  (one_thread is a fixture)
    CASES,
    dense_hessian,
    one_thread,
    reference_hessian,
)
from torch import nn

from minima.hessian import (
    HessianOperator,
    eigen_line_search,
    eigsh_eigenpairs,
    line_search_summary,
    subset_agreement,
    subset_indices,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _op(case: str, idx=None) -> HessianOperator:
    model, x, y = CASES[case]()
    if idx is not None:
        x, y = x[idx], y[idx]
    return HessianOperator(model, F.cross_entropy, [(x, y)], dtype=torch.float64)


@pytest.mark.parametrize("case", CASES)
def test_eigsh_la_and_sa_match_dense(case):
    evals, evecs = torch.linalg.eigh(reference_hessian(case))
    for which, ref in (("LA", np.arange(-1, -4, -1)), ("SA", np.arange(3))):
        res = eigsh_eigenpairs(_op(case), 3, which)
        assert res.converged and res.message == ""
        np.testing.assert_allclose(res.eigenvalues, evals.numpy()[ref], rtol=1e-9, atol=1e-12)
        cos = np.abs(np.sum(res.eigenvectors * evecs.numpy()[:, ref], axis=0))
        np.testing.assert_allclose(cos, 1.0, atol=1e-8)
        assert (res.residuals < 1e-8).all()


def test_eigsh_no_convergence_returns_converged_pairs_with_a_flag():
    top = torch.linalg.eigvalsh(reference_hessian("mlp"))[-1].item()
    with pytest.warns(RuntimeWarning, match="converged 1 of 3 LA"):
        res = eigsh_eigenpairs(_op("mlp"), 3, "LA", maxiter=3, ncv=9)
    assert not res.converged and "1 of 3" in res.message
    assert res.eigenvalues.shape == (1,) and res.eigenvectors.shape == (67, 1)
    assert res.eigenvalues[0] == pytest.approx(top, rel=1e-9)
    assert res.residuals[0] < 1e-8


def test_eigsh_rejects_bad_requests():
    op = _op("mlp")
    with pytest.raises(ValueError, match="LA"):
        eigsh_eigenpairs(op, 3, "LM")
    with pytest.raises(ValueError, match="k must be"):
        eigsh_eigenpairs(op, 67, "LA")


def test_subset_of_the_whole_set_agrees_exactly():
    table = subset_agreement(_op("mlp"), _op("mlp"), k=4)
    assert list(table["which"]) == ["LA"] * 4 + ["SA"] * 4
    assert table["abs_diff"].max() < 1e-10
    assert table["angle_deg"].max() < 1e-3 and table["principal_angle_deg"].max() < 1e-3
    assert table["converged"].all()


def test_subset_agreement_matches_dense_subset_spectra():
    model, x, y = CASES["mlp"]()
    idx = subset_indices(x.shape[0], 12, seed=0)
    table = subset_agreement(_op("mlp"), _op("mlp", idx), k=3)
    e_full, u_full = torch.linalg.eigh(reference_hessian("mlp"))
    e_sub, u_sub = torch.linalg.eigh(dense_hessian(model, x[idx], y[idx]))
    la = table[table["which"] == "LA"]
    np.testing.assert_allclose(la["eigenvalue_full"], e_full.numpy()[::-1][:3], rtol=1e-9)
    np.testing.assert_allclose(la["eigenvalue_subset"], e_sub.numpy()[::-1][:3], rtol=1e-9)
    sa = table[table["which"] == "SA"]
    np.testing.assert_allclose(sa["eigenvalue_subset"], e_sub.numpy()[:3], rtol=1e-9)
    cos = abs(float(u_full[:, -1] @ u_sub[:, -1]))
    assert la["angle_deg"].iloc[0] == pytest.approx(np.degrees(np.arccos(cos)), abs=1e-5)
    assert (la["abs_diff"] > 0).all()  # half the data: a genuinely different Hessian


def _mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    # written out: F.mse_loss has no working forward-over-reverse rule in current torch
    # (the engine would fall back to double backward, with a warning)
    return ((out - target) ** 2).mean()


def _linear_regression():
    torch.manual_seed(0)
    model = nn.Linear(5, 2).double()
    x, y = torch.randn(40, 5, dtype=torch.float64), torch.randn(40, 2, dtype=torch.float64)
    return model, x, y


def test_line_search_on_a_quadratic_loss_equals_its_quadratic_model():
    model, x, y = _linear_regression()
    op = HessianOperator(model, _mse, [(x[:25], y[:25]), (x[25:], y[25:])], dtype=torch.float64)
    res = eigsh_eigenpairs(op, 3, "LA")
    alphas = np.linspace(-1.0, 1.0, 41)
    table = eigen_line_search(op, res.eigenvalues, res.eigenvectors, alphas)
    assert len(table) == 3 * 41
    np.testing.assert_allclose(table["loss"], table["loss_quadratic"], rtol=1e-10, atol=1e-12)
    at_zero = table[table["alpha"] == 0.0]["loss"]
    np.testing.assert_allclose(at_zero, float(op.loss()), rtol=1e-12)
    # the model's minimiser 1/lambda and decrease (g.v)^2 / (2 lambda), on a fine grid
    lam = res.eigenvalues[0]
    fine = np.sort(np.append(np.linspace(0, 2 / lam, 201), 1 / lam))
    summary = line_search_summary(
        eigen_line_search(op, res.eigenvalues[:1], res.eigenvectors[:, :1], fine)
    )
    row = summary.iloc[0]
    assert row["alpha_star"] == pytest.approx(1 / lam, rel=1e-9)
    assert row["alpha_star_quadratic"] == pytest.approx(1 / lam, rel=1e-12)
    assert row["best_decrease"] == pytest.approx(row["gv"] ** 2 / (2 * lam), rel=1e-8)
    assert row["best_decrease_quadratic"] == pytest.approx(row["best_decrease"], rel=1e-8)


def test_line_search_quadratic_model_error_is_third_order_and_negative_curvature_unbounded():
    op = _op("mlp")
    res = eigsh_eigenpairs(op, 1, "SA")
    assert res.eigenvalues[0] < 0
    small = np.array([0.0, 0.02, 0.04])
    table = eigen_line_search(op, res.eigenvalues, res.eigenvectors, small)
    err = (table["loss"] - table["loss_quadratic"]).abs().to_numpy()
    assert err[0] < 1e-14
    ratio = err[2] / err[1]
    assert 6.0 < ratio < 10.0  # halving the step divides the error by ~8
    summary = line_search_summary(table)
    assert np.isnan(summary["alpha_star_quadratic"].iloc[0])
    assert summary["best_decrease"].iloc[0] > 0
