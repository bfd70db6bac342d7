"""Sharpness in the rho-ball: first-order SAM value and projected gradient ascent."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.optimize import brentq
from test_hessian_cases import CASES, one_thread, reference_hessian  # noqa: F401
from torch import nn

from minima.hessian import HessianOperator
from minima.sharpness import ascent_sharpness, sharpness

pytestmark = pytest.mark.usefixtures("one_thread")


def _mse(out, target):
    return ((out - target) ** 2).mean()


def _quadratic_case():
    torch.manual_seed(1)
    model = nn.Linear(5, 2).double()
    x, y = torch.randn(30, 5, dtype=torch.float64), torch.randn(30, 2, dtype=torch.float64)
    return model, x, y


def _trust_region_max(g: np.ndarray, H: np.ndarray, rho: float) -> float:
    """max g.e + e^T H e / 2 over ||e|| <= rho (the exact sharpness of a quadratic loss).

    At the maximiser on the sphere, e = (mu I - H)^{-1} g with mu > lambda_max chosen so
    that ||e|| = rho (the trust-region secular equation, here for a maximum).
    """
    lam, U = np.linalg.eigh(H)
    gt = U.T @ g

    def norm_gap(mu):
        return np.linalg.norm(gt / (mu - lam)) - rho

    mu = brentq(norm_gap, lam.max() + 1e-12, lam.max() + 1e8)
    et = gt / (mu - lam)
    return float(gt @ et + 0.5 * np.sum(lam * et**2))


def test_first_order_sharpness_is_rho_times_the_full_gradient_norm():
    model, x, y = CASES["conv_bn"]()
    model.zero_grad()
    model.eval()
    F.cross_entropy(model(x), y).backward()
    g_norm = torch.cat([p.grad.reshape(-1) for p in model.parameters()]).norm().item()
    res = sharpness(
        model, F.cross_entropy, [(x[:4], y[:4]), (x[4:], y[4:])], rho=0.05, dtype=torch.float64
    )
    assert res.grad_norm == pytest.approx(g_norm, rel=1e-10)
    assert res.first_order == pytest.approx(0.05 * g_norm, rel=1e-10)


def test_ascent_reaches_the_exact_maximum_of_a_quadratic_loss():
    model, x, y = _quadratic_case()
    op = HessianOperator(model, _mse, [(x, y)], dtype=torch.float64)
    H = torch.stack([op.matvec(e) for e in torch.eye(op.n_params, dtype=torch.float64)]).numpy()
    _, g = op.gradient()
    for rho in (0.1, 0.5):
        exact = _trust_region_max(g.numpy(), H, rho)
        res = ascent_sharpness(op, rho, steps=40)
        assert res.ascent == pytest.approx(exact, rel=1e-6)
        # SAM's point already gets close; ascent only improves on it; never above the max
        assert res.sam_point <= res.ascent <= exact + 1e-12
        assert res.ascent_trace.size == 41
        few = ascent_sharpness(op, rho, steps=5)
        assert res.sam_point <= few.ascent <= exact + 1e-12


def test_ascent_stays_in_the_ball_and_beats_random_perturbations():
    model, x, y = CASES["mlp"]()
    batches = [(x, y)]
    rho = 0.3
    res = sharpness(model, F.cross_entropy, batches, rho=rho, steps=10, dtype=torch.float64)
    op = HessianOperator(model, F.cross_entropy, batches, dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    E = torch.randn(200, op.n_params, generator=gen, dtype=torch.float64)
    E = rho * E / E.norm(dim=1, keepdim=True)
    random_best = float((op.evaluate(op.theta + E)[0] - op.loss()).max())
    assert res.ascent > random_best
    assert res.ascent >= res.sam_point > 0
    # Taylor: L(w+e) - L(w) <= rho ||g|| + rho^2 ||H|| / 2 + O(rho^3); 2x for the cubic term
    spectral_norm = torch.linalg.eigvalsh(reference_hessian("mlp")).abs().max().item()
    assert res.ascent < res.first_order + 2 * (0.5 * rho**2 * spectral_norm)


def test_zero_radius_has_zero_sharpness_and_negative_radius_is_refused():
    model, x, y = CASES["mlp"]()
    res = sharpness(model, F.cross_entropy, [(x, y)], rho=0.0, dtype=torch.float64)
    assert res.first_order == res.ascent == res.sam_point == 0.0
    with pytest.raises(ValueError, match="rho"):
        sharpness(model, F.cross_entropy, [(x, y)], rho=-1.0)
