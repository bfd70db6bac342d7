"""eigsh warm-started from the previous checkpoint's eigenvectors: same eigenpairs, fewer
or equal products, on a float64 tiny-model checkpoint sequence."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_hessian_cases import TinyMLP, one_thread  # noqa: F401

from minima.hessian.eigsh import eigsh_eigenpairs, subset_agreement
from minima.hessian.hvp import HessianOperator

pytestmark = pytest.mark.usefixtures("one_thread")


def checkpoint_sequence(n: int = 6, every: int = 20):
    """Checkpoints every ``every`` SGD steps of a TinyMLP fitting a linear teacher."""
    torch.manual_seed(0)
    model = TinyMLP().double()
    x = torch.randn(96, 4, dtype=torch.float64)
    y = (x @ torch.randn(4, 3, dtype=torch.float64)).argmax(dim=1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    models = []
    for step in range(n * every):
        if step % every == 0:
            models.append(copy.deepcopy(model))
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return models, x, y


@pytest.mark.parametrize("which", ["LA", "SA"])
def test_warm_started_eigsh_agrees_with_cold_and_costs_no_more(which):
    models, x, y = checkpoint_sequence()
    k, previous, cold_total, warm_total = 3, None, 0, 0
    for model in models:
        op = HessianOperator(model, F.cross_entropy, [(x, y)], dtype=torch.float64)
        cold = eigsh_eigenpairs(op, k, which, tol=1e-10, seed=0)
        assert cold.converged and not cold.warm and cold.n_hvp > 0
        if previous is not None:
            warm = eigsh_eigenpairs(op, k, which, tol=1e-10, start=previous)
            assert warm.converged and warm.warm
            rel = np.abs(warm.eigenvalues - cold.eigenvalues) / np.abs(cold.eigenvalues)
            assert (rel <= 1e-8).all(), rel
            cold_total += cold.n_hvp
            warm_total += warm.n_hvp
        previous = cold.eigenvectors
    assert warm_total <= cold_total, (warm_total, cold_total)


def test_subset_check_starts_the_full_set_from_the_subset_and_counts_products():
    models, x, y = checkpoint_sequence(n=2)
    full = HessianOperator(models[-1], F.cross_entropy, [(x, y)], dtype=torch.float64)
    part = HessianOperator(models[-1], F.cross_entropy, [(x[:48], y[:48])], dtype=torch.float64)
    table = subset_agreement(full, part, 3, tol=1e-10)
    assert set(table.attrs["n_hvp"]) == {"LA", "SA"}
    for which in ("LA", "SA"):
        ref = eigsh_eigenpairs(full, 3, which, tol=1e-10, seed=0)
        got = table[table["which"] == which]["eigenvalue_full"].to_numpy()
        np.testing.assert_allclose(got, ref.eigenvalues, rtol=1e-8)
        assert table.attrs["n_hvp"][which]["full"] > 0


def test_start_vectors_of_the_wrong_size_are_refused():
    models, x, y = checkpoint_sequence(n=1)
    op = HessianOperator(models[0], F.cross_entropy, [(x, y)], dtype=torch.float64)
    with pytest.raises(ValueError):
        eigsh_eigenpairs(op, 2, "LA", start=np.ones((op.n_params + 1, 2)))
