"""Variance-reduced trace estimators (Hutch++, deflated Hutchinson) against exact traces.

As curvlinops tests its estimators: dense float64 matrices whose trace is known exactly
(a synthetic spectrum with a few outliers, and the dense Hessians of the tiny models), the
error at a fixed budget of products compared with Hutchinson's at the same budget over
many seeds, and convergence to the exact value as the budget grows.

The comparison is a paired sign test: over ``N_SEEDS`` seeds the new estimator's absolute
error must be below Hutchinson's in at least 80% of them. Were the two errors equally
likely to be the smaller (p = 1/2), 80% of 200 has probability below 1e-17, so the test
cannot pass by chance; a biased or mis-scaled estimator fails the unbiasedness check.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_hessian_cases import CASES, TinyMLP, dense_hessian, one_thread, reference_hessian  # noqa: F401

from minima.hessian.hvp import HessianOperator
from minima.hessian.trace import (
    _deflated_and_plain,
    deflated_trace,
    hutchinson_trace,
    hutchpp_trace,
    rademacher,
)

pytestmark = pytest.mark.usefixtures("one_thread")

N_SEEDS = 200


class DenseOperator:
    """A dense symmetric matrix with ``HessianOperator``'s interface and product count."""

    def __init__(self, A: torch.Tensor) -> None:
        self.A = A
        self.n_params = A.shape[0]
        self.device = A.device
        self.dtype = A.dtype
        self.n_hvp = 0

    def matmat(self, V: torch.Tensor) -> torch.Tensor:
        self.n_hvp += V.shape[0]
        return V @ self.A


def outlier_spectrum(n: int = 150, seed: int = 0) -> torch.Tensor:
    """A random-basis symmetric matrix: 5 outliers (50 .. 10) over a bulk in [-0.5, 1]."""
    gen = torch.Generator().manual_seed(seed)
    bulk = torch.rand(n - 5, generator=gen, dtype=torch.float64) * 1.5 - 0.5
    values = torch.cat([torch.tensor([50.0, 40.0, 30.0, 20.0, 10.0], dtype=torch.float64), bulk])
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return (Q * values) @ Q.T


def trained_mlp() -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """A TinyMLP fitted (150 Adam steps, loss ~0.03) to 96 points labelled by a linear
    teacher: near a minimum its Hessian has the outliers of a trained network's."""
    torch.manual_seed(0)
    model = TinyMLP().double()
    x = torch.randn(96, 4, dtype=torch.float64)
    y = (x @ torch.randn(4, 3, dtype=torch.float64)).argmax(dim=1)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(150):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


def matrices() -> dict[str, torch.Tensor]:
    """Synthetic outliers, a trained tiny model's Hessian, and the untrained tiny models'
    (flat spectra without outliers: only unbiasedness and convergence are asked there)."""
    return {
        "synthetic": outlier_spectrum(),
        "trained_mlp": dense_hessian(*trained_mlp()),
        **{c: reference_hessian(c) for c in CASES},
    }


def _errors(estimate, A: torch.Tensor) -> np.ndarray:
    exact = float(torch.trace(A))
    return np.array([estimate(DenseOperator(A), seed) - exact for seed in range(N_SEEDS)])


@pytest.mark.parametrize("name", ["synthetic", "trained_mlp"])
def test_hutchpp_beats_hutchinson_at_the_same_budget(name):
    A = matrices()[name]
    budget = 30
    hpp = _errors(lambda op, s: hutchpp_trace(op, budget, seed=s).estimate, A)
    hut = _errors(lambda op, s: hutchinson_trace(op, budget, seed=s).estimate, A)
    wins = np.mean(np.abs(hpp) < np.abs(hut))
    assert wins >= 0.8, (name, wins)
    assert np.sqrt(np.mean(hpp**2)) < 0.5 * np.sqrt(np.mean(hut**2))
    # unbiased: the mean error is within 4 standard errors of 0
    assert abs(hpp.mean()) <= 4 * hpp.std(ddof=1) / np.sqrt(N_SEEDS)


@pytest.mark.parametrize("name", ["synthetic", "trained_mlp"])
def test_deflated_trace_beats_hutchinson_at_the_same_budget(name):
    A = matrices()[name]
    values, vectors = torch.linalg.eigh(A)
    k = 5
    top = vectors[:, torch.argsort(values.abs(), descending=True)[:k]].T
    n_probes = 25
    defl = _errors(lambda op, s: deflated_trace(op, top, n_probes, seed=s).estimate, A)
    hut = _errors(lambda op, s: hutchinson_trace(op, k + n_probes, seed=s).estimate, A)
    wins = np.mean(np.abs(defl) < np.abs(hut))
    assert wins >= 0.8, (name, wins)
    assert abs(defl.mean()) <= 4 * defl.std(ddof=1) / np.sqrt(N_SEEDS)
    op = DenseOperator(A)
    res = deflated_trace(op, top, n_probes, seed=0)
    # the exact part is the deflated eigenvalues' sum, and the count is k + n_probes
    assert res.exact_part == pytest.approx(float(values[values.abs().argsort()[-k:]].sum()))
    assert res.n_hvp == op.n_hvp == k + n_probes and res.method == "deflated"


def test_deflated_trace_is_unbiased_for_any_directions():
    """Random (not eigen-) directions: still the right trace on average, stderr calibrated."""
    A = outlier_spectrum()
    U = torch.randn(4, A.shape[0], dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    runs = [deflated_trace(DenseOperator(A), U, 20, seed=s) for s in range(N_SEEDS)]
    est = np.array([r.estimate for r in runs])
    err = est - float(torch.trace(A))
    assert abs(err.mean()) <= 4 * err.std(ddof=1) / np.sqrt(N_SEEDS)
    # the reported standard error matches the spread over seeds (sd of sd ~ 5% here)
    ratio = np.mean([r.stderr for r in runs]) / est.std(ddof=1)
    assert 0.8 < ratio < 1.2, ratio


@pytest.mark.parametrize("name", ["synthetic", "trained_mlp", "mlp", "conv_bn"])
def test_hutchpp_converges_to_the_exact_trace(name):
    A = matrices()[name]
    exact = float(torch.trace(A))
    n = A.shape[0]
    rmse = []
    for budget in (12, 48, n):
        err = _errors(lambda op, s, b=budget: hutchpp_trace(op, b, seed=s).estimate, A)[:50]
        rmse.append(np.sqrt(np.mean(err**2)))
    assert rmse[0] > rmse[1] > rmse[2], rmse
    # once the sketch spans the whole space the estimate is exact
    res = hutchpp_trace(DenseOperator(A), 3 * n + 3, seed=0)
    assert res.estimate == pytest.approx(exact, rel=1e-10, abs=1e-10)


def test_deflated_trace_stops_at_the_target_stderr():
    A = outlier_spectrum()
    values, vectors = torch.linalg.eigh(A)
    top = vectors[:, -5:].T
    full = deflated_trace(DenseOperator(A), top, 100, seed=0)
    target = 2 * full.stderr
    op = DenseOperator(A)
    early = deflated_trace(op, top, 100, target_stderr=target, min_probes=10, seed=0)
    assert early.stderr <= target and early.n_probes < 100 and early.n_probes % 10 == 0
    assert op.n_hvp == 5 + early.n_probes


def test_hutchpp_on_a_model_hessian_operator_matches_the_dense_trace():
    """Through the HVP operator (not the dense matrix): same estimate as the dense one."""
    model, x, y = CASES["mlp"]()
    op = HessianOperator(model, F.cross_entropy, [(x, y)], dtype=torch.float64)
    A = reference_hessian("mlp")
    via_op = hutchpp_trace(op, 30, seed=3)
    via_dense = hutchpp_trace(DenseOperator(A), 30, seed=3)
    assert via_op.estimate == pytest.approx(via_dense.estimate, rel=1e-9)
    assert via_op.n_hvp == 30


def test_each_deflated_probe_has_its_plain_hutchinson_twin():
    """The twin ``z^T A z`` from the deflated product and the known ``A U``: equal to the
    plain sample computed directly, for any orthonormal ``U``."""
    A = outlier_spectrum()
    gen = torch.Generator().manual_seed(3)
    U = torch.linalg.qr(torch.randn(150, 7, generator=gen, dtype=torch.float64))[0].T
    Z = rademacher(9, 150, generator=gen).double()
    deflated, plain = _deflated_and_plain(DenseOperator(A), U, U @ A, Z, 4)
    np.testing.assert_allclose(plain.numpy(), ((Z @ A) * Z).sum(dim=1).numpy(), rtol=1e-12)
    PZ = Z - (Z @ U.T) @ U
    np.testing.assert_allclose(deflated.numpy(), ((PZ @ A) * PZ).sum(dim=1).numpy(), rtol=1e-12)


def test_deflated_trace_stops_at_a_margin_of_plain_hutchinsons_stderr():
    """With ``plain_budget``: stop once the stderr is at most ``margin`` times what plain
    Hutchinson with that budget would have; that estimate agrees with plain Hutchinson's
    spread over many probes (the sampled distribution is the same)."""
    A = outlier_spectrum()
    top = torch.linalg.eigh(A).eigenvectors[:, -5:].T.contiguous()
    res = deflated_trace(
        DenseOperator(A), top, 100, HU=top @ A, plain_budget=100, margin=0.8, seed=0
    )
    assert res.stderr <= 0.8 * res.plain_stderr and res.n_probes < 100
    plain = hutchinson_trace(DenseOperator(A), 2000, seed=5)
    expected = plain.stderr * np.sqrt(2000 / 100)
    assert res.plain_stderr == pytest.approx(expected, rel=0.35)
