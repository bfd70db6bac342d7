"""Loss landscapes: filter normalisation (Li et al. 2018), grid values vs direct evaluation."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_hessian_cases import CASES, one_thread, reference_hessian  # noqa: F401
from torch import nn
from torch.nn.utils import vector_to_parameters

from minima.hessian import FunctionalLoss, HessianOperator
from minima.landscape import (
    eigen_directions,
    filter_normalize,
    gradient_eigen_directions,
    landscape_1d,
    landscape_2d,
    random_direction,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _conv():
    model, x, y = CASES["conv_bn"]()
    return (
        model,
        x,
        y,
        FunctionalLoss(
            model, F.cross_entropy, [(x[:5], y[:5]), (x[5:], y[5:])], dtype=torch.float64
        ),
    )


def _direct(model: nn.Module, theta: torch.Tensor, x, y) -> tuple[float, float]:
    """Loss and accuracy of a copy of ``model`` carrying ``theta``, in eval mode."""
    moved = copy.deepcopy(model).eval()
    vector_to_parameters(theta, moved.parameters())
    with torch.no_grad():
        out = moved(x)
    return F.cross_entropy(out, y).item(), (out.argmax(1) == y).double().mean().item()


def test_filter_normalization_matches_weight_filter_norms_and_zeros_bias_and_bn():
    model, _, _, fl = _conv()
    d = fl.unflatten(random_direction(fl, seed=3))
    for name, p in model.named_parameters():
        if p.ndim <= 1:  # conv/fc biases, BN weight and bias
            assert torch.count_nonzero(d[name]) == 0, name
        else:
            per_filter_d = d[name].reshape(p.shape[0], -1).norm(dim=1)
            per_filter_w = p.detach().reshape(p.shape[0], -1).norm(dim=1)
            torch.testing.assert_close(per_filter_d, per_filter_w, rtol=1e-9, atol=0)
    assert {n for n, p in model.named_parameters() if p.ndim <= 1} == {
        "conv.bias",
        "bn.weight",
        "bn.bias",
        "fc.bias",
    }
    # reproducible by seed, different across seeds, invariant to the raw direction's scale
    torch.testing.assert_close(random_direction(fl, seed=3), random_direction(fl, seed=3))
    assert not torch.equal(random_direction(fl, seed=3), random_direction(fl, seed=4))
    raw = random_direction(fl, seed=3, normalize=False)
    torch.testing.assert_close(filter_normalize(7.0 * raw, fl), filter_normalize(raw, fl))


def test_landscape_1d_equals_direct_eval_mode_evaluation():
    model, x, y, fl = _conv()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    d = random_direction(fl, seed=0)
    table = landscape_1d(fl, d, span=(-0.5, 1.0), num=7, chunk_size=3)
    assert list(table.columns) == ["alpha", "beta", "loss", "accuracy"]
    np.testing.assert_allclose(table["alpha"], np.linspace(-0.5, 1.0, 7))
    assert (table["beta"] == 0).all()
    for alpha, loss, acc in table[["alpha", "loss", "accuracy"]].itertuples(index=False):
        ref_loss, ref_acc = _direct(model, fl.theta + alpha * d, x, y)
        assert loss == pytest.approx(ref_loss, rel=1e-10)
        assert acc == pytest.approx(ref_acc, abs=1e-12)
    assert table["loss"].nunique() == 7
    # the model keeps its mode and its BN statistics (eval mode never updates them)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_landscape_2d_grid_is_tidy_and_correct():
    model, x, y, fl = _conv()
    d1, d2 = random_direction(fl, seed=1), random_direction(fl, seed=2)
    table = landscape_2d(fl, d1, d2, span=(-1.0, 1.0), num=3, span_beta=(0.0, 0.5), num_beta=2)
    assert len(table) == 6
    assert list(zip(table["alpha"], table["beta"], strict=True))[:3] == [
        (-1.0, 0.0),
        (-1.0, 0.5),
        (0.0, 0.0),
    ]
    for alpha, beta, loss, acc in table.itertuples(index=False):
        ref_loss, ref_acc = _direct(model, fl.theta + alpha * d1 + beta * d2, x, y)
        assert loss == pytest.approx(ref_loss, rel=1e-10)
        assert acc == pytest.approx(ref_acc, abs=1e-12)


def test_batched_points_equal_point_by_point_evaluation():
    _, _, _, fl = _conv()
    d = random_direction(fl, seed=5)
    batched = landscape_1d(fl, d, num=5, chunk_size=5)
    fl._vmap_ok = False  # the fallback path: one point at a time
    looped = landscape_1d(fl, d, num=5, chunk_size=5)
    np.testing.assert_allclose(batched["loss"], looped["loss"], rtol=1e-12)
    np.testing.assert_allclose(batched["accuracy"], looped["accuracy"])


def test_eigen_and_gradient_directions_are_unit_vectors():
    model, x, y = CASES["mlp"]()
    op = HessianOperator(model, F.cross_entropy, [(x, y)], dtype=torch.float64)
    D = eigen_directions(op, 2, tol=1e-10, max_iter=200)
    torch.testing.assert_close(D @ D.T, torch.eye(2, dtype=torch.float64), rtol=0, atol=1e-8)
    _, U = torch.linalg.eigh(reference_hessian("mlp"))
    assert abs(float(D[0] @ U[:, -1])) > 1 - 1e-8
    G = gradient_eigen_directions(op, tol=1e-10, max_iter=200)
    _, g = op.gradient()
    torch.testing.assert_close(G[0], g / g.norm())
    assert abs(float(G[1] @ D[0])) > 1 - 1e-8


def test_landscape_along_an_eigenvector_of_a_quadratic_loss_is_the_parabola():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    x, y = torch.randn(30, 4, dtype=torch.float64), torch.randn(30, 3, dtype=torch.float64)

    def mse(out, target):
        return ((out - target) ** 2).mean()

    op = HessianOperator(model, mse, [(x, y)], dtype=torch.float64)
    v = eigen_directions(op, 1, tol=1e-12, max_iter=50)[0]
    lam = float(v @ op.matvec(v))
    loss0, g = op.gradient()
    table = landscape_1d(op, v, span=(-2.0, 2.0), num=9)
    a = table["alpha"].to_numpy()
    expected = float(loss0) + a * float(g @ v) + 0.5 * lam * a**2
    np.testing.assert_allclose(table["loss"], expected, rtol=1e-10)
    assert table["accuracy"].isna().all()  # regression: no accuracy
