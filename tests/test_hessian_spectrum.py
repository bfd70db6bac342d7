"""Native eigenpairs, trace and density against the dense float64 Hessian of tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_hessian_cases import CASES, one_thread, reference_hessian  # noqa: F401

from minima.hessian import (
    HessianOperator,
    density,
    hutchinson_trace,
    lanczos,
    lanczos_eigen,
    slq_nodes,
    smooth_density,
    top_eigen,
    trace,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _op(case: str, **kw) -> HessianOperator:
    model, x, y = CASES[case]()
    return HessianOperator(
        model, F.cross_entropy, [(x[:5], y[:5]), (x[5:], y[5:])], dtype=torch.float64, **kw
    )


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_lanczos_eigenpairs_match_dense(case, which):
    H = reference_hessian(case)
    evals, evecs = torch.linalg.eigh(H)
    order = {
        "LA": torch.argsort(evals, descending=True),
        "SA": torch.argsort(evals),
        "LM": torch.argsort(evals.abs(), descending=True),
    }[which][:3]
    res = lanczos_eigen(_op(case), 3, which=which, tol=1e-10, max_iter=200)
    assert res.converged and res.which == which
    np.testing.assert_allclose(res.eigenvalues, evals[order].numpy(), rtol=1e-8, atol=1e-10)
    overlap = (res.eigenvectors @ evecs[:, order]).diagonal().abs()
    assert (overlap > 1 - 1e-6).all(), overlap
    assert (res.residuals < 1e-7 * evals.abs().max().item()).all()
    # the indefinite Hessians of these untrained nets make LA and SA differ
    assert evals.min() < 0 < evals.max()


def test_lanczos_tolerance_controls_accuracy_and_cost():
    H = reference_hessian("mlp")
    top = torch.linalg.eigvalsh(H)[-1].item()
    loose = lanczos_eigen(_op("mlp"), 1, tol=1e-2, max_iter=200)
    tight = lanczos_eigen(_op("mlp"), 1, tol=1e-10, max_iter=200)
    assert loose.n_hvp < tight.n_hvp
    assert abs(tight.eigenvalues[0] - top) <= 1e-9 * abs(top)
    # the residual bound: |theta - lambda| <= residual for the nearest eigenvalue
    assert abs(loose.eigenvalues[0] - top) <= loose.residuals[0] + 1e-12


def test_lanczos_is_exact_after_n_steps_and_reports_breakdown():
    H = reference_hessian("mlp")
    n = H.shape[0]
    res = lanczos(lambda V: V @ H, torch.ones(1, n, dtype=torch.float64), n + 5, keep_basis=True)
    assert res.lengths[0] <= n
    Q = res.basis[:, 0]
    torch.testing.assert_close(
        Q @ Q.T, torch.eye(res.lengths[0], dtype=torch.float64), rtol=0, atol=1e-10
    )
    T = res.tridiagonal(0)
    torch.testing.assert_close(Q @ H @ Q.T, T, rtol=0, atol=1e-10)


def test_hutchinson_converges_to_the_dense_trace_within_its_standard_error():
    H = reference_hessian("conv_bn")
    exact = H.trace().item()
    res = hutchinson_trace(_op("conv_bn"), 600, probe_batch=200, seed=1)
    assert res.n_probes == 600 and res.samples.shape == (600,)
    assert abs(res.estimate - exact) < 4 * res.stderr
    # Rademacher variance of z^T H z is 2 * sum_{i != j} H_ij^2: the reported error matches
    off = H - torch.diag(H.diagonal())
    expected_se = np.sqrt(2 * (off**2).sum().item() / 600)
    assert 0.8 < res.stderr / expected_se < 1.2
    # the same seed gives the same probes, another seed other probes
    again = hutchinson_trace(_op("conv_bn"), 600, probe_batch=50, seed=1)
    np.testing.assert_allclose(again.samples, res.samples, rtol=1e-12)
    assert hutchinson_trace(_op("conv_bn"), 10, seed=2).samples[0] != res.samples[0]


def test_slq_quadrature_reproduces_probe_moments_exactly():
    """Gauss quadrature with m nodes is exact for v^T H^k v, k < 2m, per probe."""
    H = reference_hessian("mlp")
    m = 6
    gen = torch.Generator().manual_seed(5)
    v = (torch.randint(0, 2, (1, H.shape[0]), generator=gen) * 2 - 1).double()
    res = lanczos(lambda V: V @ H, v, m)
    theta, S = torch.linalg.eigh(res.tridiagonal(0))
    w = S[0] ** 2
    u = v[0] / v[0].norm()
    for k in range(2 * m):
        exact = u @ torch.linalg.matrix_power(H, k) @ u
        torch.testing.assert_close((w * theta**k).sum(), exact, rtol=1e-8, atol=1e-12)


def test_slq_density_moments_converge_to_dense_spectrum_moments():
    H = reference_hessian("conv_bn")
    n = H.shape[0]
    evals = torch.linalg.eigvalsh(H).numpy()
    nodes, weights = slq_nodes(_op("conv_bn"), 12, 300, probe_batch=100, seed=0)
    assert len(nodes) == 300 and all(np.isclose(w.sum(), 1.0) for w in weights)
    for k in (1, 2, 3):
        per_probe = np.array([np.sum(w * t**k) for t, w in zip(nodes, weights, strict=True)])
        se = per_probe.std(ddof=1) / np.sqrt(per_probe.size)
        assert abs(per_probe.mean() - np.sum(evals**k) / n) < 4 * se + 1e-12, k
    # Ritz values lie inside the spectrum, and Lanczos finds its edges first
    all_nodes = np.concatenate(nodes)
    assert evals.min() - 1e-10 <= all_nodes.min() <= all_nodes.max() <= evals.max() + 1e-10
    assert all_nodes.max() == pytest.approx(evals.max(), rel=1e-4)
    assert all_nodes.min() == pytest.approx(evals.min(), rel=1e-4)


def test_smoothed_density_is_a_normalised_gaussian_mixture():
    nodes = [np.array([-1.0, 2.0]), np.array([0.5])]
    weights = [np.array([0.25, 0.75]), np.array([1.0])]
    grid, dens, var = smooth_density(nodes, weights, num_bins=20001, sigma_squared=1e-3)
    assert var == pytest.approx(1e-3 * (3.0 + 2 * 0.01))  # node span plus the margins
    assert grid[0] < -1.0 - 4 * np.sqrt(var) + 1e-9 and grid[-1] > 2.0 + 4 * np.sqrt(var) - 1e-9
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-9)
    # normalisation changed nothing: the grid holds (almost) all of every Gaussian's mass
    kernel = np.exp(-((grid - 0.5) ** 2) / (2 * var)) / np.sqrt(2 * np.pi * var)
    assert np.trapezoid(kernel, grid) == pytest.approx(1.0, abs=1e-4)
    mean = 0.5 * (0.25 * -1 + 0.75 * 2.0) + 0.5 * 0.5
    assert np.trapezoid(dens * grid, grid) == pytest.approx(mean, abs=1e-4)
    second = 0.5 * (0.25 * 1 + 0.75 * 4) + 0.5 * 0.25 + var
    assert np.trapezoid(dens * grid**2, grid) == pytest.approx(second, abs=5e-4)


def test_native_entry_points_agree_with_dense():
    model, x, y = CASES["mlp"]()
    H = reference_hessian("mlp")
    evals = torch.linalg.eigvalsh(H).numpy()
    batches = [(x, y)]
    top = top_eigen(
        model, F.cross_entropy, batches, 2, dtype=torch.float64, tol=1e-10, max_iter=200
    )
    np.testing.assert_allclose(top.eigenvalues, evals[::-1][:2], rtol=1e-8)
    tr = trace(model, F.cross_entropy, batches, n_probes=400, dtype=torch.float64)
    assert abs(tr.estimate - evals.sum()) < 4 * tr.stderr
    dens = density(
        model,
        F.cross_entropy,
        batches,
        n_steps=10,
        n_probes=100,
        dtype=torch.float64,
        num_bins=2000,
    )
    assert dens.backend == "native" and dens.density.shape == dens.grid.shape == (2000,)
    assert abs(dens.moment(1) - evals.mean()) < 0.2 * np.abs(evals).mean()
