"""The PyHessian backend: agreement with the native engine and the dense Hessian, and one
test per PyHessian 0.1 pitfall on current torch (each shown to exist, then shown handled)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pyhessian import hessian
from test_hessian_cases import CASES, one_thread, reference_hessian  # noqa: F401

from minima.hessian import PyHessianSession, density, top_eigen, torch_eig_shim, trace

pytestmark = [
    pytest.mark.usefixtures("one_thread"),
    # raw PyHessian calls below: its create_graph backward warns of a reference cycle
    pytest.mark.filterwarnings("ignore:Using backward\\(\\) with create_graph=True"),
]
LOSS = F.cross_entropy


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("n_batches", [1, 2])
def test_backends_agree_on_top_eigenvalue_and_with_dense(case, n_batches):
    model, x, y = CASES[case]()
    batches = [(x, y)] if n_batches == 1 else [(x[:5], y[:5]), (x[5:], y[5:])]
    evals = torch.linalg.eigvalsh(reference_hessian(case)).numpy()
    top_lm = evals[np.argmax(np.abs(evals))]
    ours = top_eigen(
        model,
        LOSS,
        batches,
        backend="native",
        which="LM",
        dtype=torch.float64,
        tol=1e-10,
        max_iter=200,
    )
    theirs = top_eigen(
        model, LOSS, batches, backend="pyhessian", dtype=torch.float64, tol=1e-10, max_iter=1000
    )
    assert ours.backend == "native" and theirs.backend == "pyhessian"
    assert ours.eigenvalues[0] == pytest.approx(top_lm, rel=1e-8)
    # PyHessian normalises by ||v|| + 1e-6: its Rayleigh quotients are ~2e-6 (relative) low
    assert theirs.eigenvalues[0] == pytest.approx(top_lm, rel=1e-5)
    overlap = abs(float(ours.eigenvectors[0] @ theirs.eigenvectors[0]))
    assert overlap > 1 - 1e-4


def test_backends_agree_on_trace_and_density_moments():
    model, x, y = CASES["conv_bn"]()
    batches = [(x, y)]
    H = reference_hessian("conv_bn")
    exact = H.trace().item()
    evals = torch.linalg.eigvalsh(H).numpy()
    results = {
        b: trace(
            model,
            LOSS,
            batches,
            n_probes=300,
            backend=b,
            dtype=torch.float64,
            probe_batch=100,
            seed=0,
        )
        for b in ("native", "pyhessian")
    }
    for res in results.values():
        assert res.n_probes == 300
        assert abs(res.estimate - exact) < 4 * res.stderr
    diff = results["native"].estimate - results["pyhessian"].estimate
    assert abs(diff) < 4 * np.hypot(results["native"].stderr, results["pyhessian"].stderr)
    dens = {
        b: density(
            model,
            LOSS,
            batches,
            n_steps=10,
            n_probes=40,
            backend=b,
            dtype=torch.float64,
            num_bins=500,
            seed=0,
        )
        for b in ("native", "pyhessian")
    }
    for k in (1, 2):
        exact_k = np.mean(evals**k)
        scale = np.mean(np.abs(evals) ** k)
        for b, d in dens.items():
            assert abs(d.moment(k) - exact_k) < 0.25 * scale, (b, k)
        assert dens["native"].grid.shape == dens["pyhessian"].grid.shape == (500,)


# --- pitfall 1: density() calls the removed torch.eig ------------------------------------


def test_pitfall_density_calls_removed_torch_eig():
    model, x, y = CASES["mlp"]()
    model.zero_grad(set_to_none=True)
    raw = hessian(model, LOSS, data=(x, y), cuda=False)
    with pytest.raises(RuntimeError, match="removed"):
        raw.density(iter=5, n_v=1)
    with torch_eig_shim():
        nodes, weights = raw.density(iter=5, n_v=1)
    model.zero_grad(set_to_none=True)
    assert len(nodes[0]) == 5 and np.sum(weights[0]) == pytest.approx(1.0, abs=1e-5)
    # the shim is gone afterwards: torch.eig raises again
    with pytest.raises(RuntimeError):
        torch.eig(torch.eye(2), eigenvectors=True)


def test_shimmed_eig_matches_symmetric_eigendecomposition():
    A = torch.tensor([[2.0, 1.0, 0.0], [1.0, 3.0, 0.5], [0.0, 0.5, 1.0]], dtype=torch.float64)
    with torch_eig_shim():
        packed, V = torch.eig(A, eigenvectors=True)
    assert packed.shape == (3, 2) and (packed[:, 1] == 0).all()
    torch.testing.assert_close(A @ V, V * packed[:, 0], rtol=0, atol=1e-12)


# --- pitfall 2: trace() stops on the signed running mean ---------------------------------


def test_pitfall_trace_stops_after_two_samples_when_the_first_is_negative():
    model, x, y = CASES["mlp"]()
    seed = 3  # with this seed PyHessian's first Rademacher sample z^T H z is negative
    torch.manual_seed(seed)
    model.zero_grad(set_to_none=True)
    raw = hessian(model, LOSS, data=(x, y), cuda=False).trace(maxIter=50, tol=0.0)
    model.zero_grad(set_to_none=True)
    assert raw[0] < 0 and len(raw) == 2  # the fault: tol=0 should never stop early

    res = trace(
        model, LOSS, [(x, y)], n_probes=50, backend="pyhessian", dtype=torch.float64, seed=seed
    )
    assert res.n_probes == 50 and res.samples.size == 50
    np.testing.assert_allclose(res.samples[:2], raw, rtol=1e-12)  # same probes, not cut short
    assert res.estimate == pytest.approx(res.samples.mean(), rel=1e-12)
    assert res.stderr == pytest.approx(res.samples.std(ddof=1) / np.sqrt(50), rel=1e-12)
    exact = reference_hessian("mlp").trace().item()
    assert abs(res.estimate - exact) < 4 * res.stderr


# --- pitfall 3 and 4: gradient accumulation in the constructor, eval mode left on ---------


def test_pitfall_second_hessian_object_doubles_and_session_does_not():
    model, x, y = CASES["mlp"]()
    top = torch.linalg.eigvalsh(reference_hessian("mlp")).abs().max().item()
    model.zero_grad(set_to_none=True)
    hessian(model, LOSS, data=(x, y), cuda=False)
    second = hessian(model, LOSS, data=(x, y), cuda=False)
    torch.manual_seed(0)
    doubled = second.eigenvalues(maxIter=500, tol=1e-10)[0][0]
    assert doubled == pytest.approx(2 * top, rel=1e-5)  # the fault

    # a raw constructor leaves a graph-carrying gradient in .grad: the session must neither
    # add to it nor lose it
    model.zero_grad(set_to_none=True)
    hessian(model, LOSS, data=(x, y), cuda=False)
    kept = [p.grad.detach().clone() for p in model.parameters()]
    for _ in range(2):
        res = top_eigen(
            model, LOSS, [(x, y)], backend="pyhessian", dtype=torch.float64, tol=1e-10, max_iter=500
        )
        assert res.eigenvalues[0] == pytest.approx(top, rel=1e-5)
    for p, g in zip(model.parameters(), kept, strict=True):
        torch.testing.assert_close(p.grad.detach(), g, rtol=0, atol=0)


def test_pitfall_eval_mode_is_left_on_and_session_restores_modes():
    model, x, y = CASES["conv_bn"]()
    model.train()
    model.zero_grad(set_to_none=True)
    hessian(model, LOSS, data=(x, y), cuda=False)
    assert not model.training  # the fault
    model.zero_grad(set_to_none=True)

    model.train()
    model.bn.eval()  # a mixed state must come back exactly as it was
    with PyHessianSession(model, LOSS, [(x, y)], dtype=torch.float64) as session:
        assert not model.training
        session.trace_samples(2)
    assert model.training and model.fc.training and not model.bn.training
    assert all(p.grad is None for p in model.parameters())


# --- pitfall 5: eigenvalues() default tol stops short ------------------------------------


def test_pitfall_default_eigenvalue_tolerance_stops_short():
    model, x, y = CASES["mlp"]()
    top = torch.linalg.eigvalsh(reference_hessian("mlp")).abs().max().item()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    default = hessian(model, LOSS, data=(x, y), cuda=False).eigenvalues()[0][0]
    model.zero_grad(set_to_none=True)
    assert abs(default - top) / top > 1e-4  # the fault: ~3e-3 short on this model
    ours = top_eigen(
        model, LOSS, [(x, y)], backend="pyhessian", dtype=torch.float64, max_iter=1000
    )  # the wrapper's default tol is 1e-6
    assert abs(ours.eigenvalues[0] - top) / top < 1e-5
    assert ours.residuals[0] < 1e-2 * top


def test_pyhessian_backend_rejects_other_orderings_and_backends():
    model, x, y = CASES["mlp"]()
    with pytest.raises(ValueError, match="largest-magnitude"):
        top_eigen(model, LOSS, [(x, y)], backend="pyhessian", which="SA")
    with pytest.raises(ValueError, match="backend"):
        trace(model, LOSS, [(x, y)], backend="scipy")


def test_float32_model_with_float64_request_is_not_modified():
    model, x, y = CASES["mlp"]()
    model = model.float()
    top = torch.linalg.eigvalsh(reference_hessian("mlp")).abs().max().item()
    res = top_eigen(
        model,
        LOSS,
        [(x.float(), y)],
        backend="pyhessian",
        dtype=torch.float64,
        tol=1e-10,
        max_iter=1000,
    )
    assert next(model.parameters()).dtype == torch.float32
    assert res.eigenvalues[0] == pytest.approx(top, rel=1e-5)
