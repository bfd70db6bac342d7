"""Similarity measures on random matrices: invariances, known values, and agreement with
independent float64 formulations (Gram-matrix HSIC, U-statistic HSIC, the generalized
eigenproblem of CCA, scipy's orthogonal Procrustes)."""

import itertools

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.stats import ortho_group

from minima.similarity import (
    MinibatchCKA,
    StreamingLinearCKA,
    cca,
    hsic_unbiased,
    linear_cka,
    linear_cka_unbiased,
    procrustes_distance,
    pwcca,
    similarity_matrix,
    svcca,
)


def correlated_pair(n, p, q, *, seed, noise=0.5, rank=None):
    """X (n, p) and Y (n, q) sharing a latent signal, with nonzero means."""
    rng = np.random.default_rng(seed)
    r = rank or min(p, q)
    Z = rng.normal(size=(n, r))
    X = Z @ rng.normal(size=(r, p)) + noise * rng.normal(size=(n, p)) + rng.normal(size=p)
    Y = Z @ rng.normal(size=(r, q)) + noise * rng.normal(size=(n, q)) + 3.0
    return X, Y


def cka_gram_definition(X, Y):
    """CKA = HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)), HSIC = tr(K H L H), linear Grams."""
    n = X.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A, B):
        return np.trace(A @ H @ B @ H)

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


def hsic_u_statistic(K, L):
    """Unbiased HSIC as the U-statistic of Song et al. (2012), Theorem 2: the mean over all
    ordered quadruples of distinct indices of k_ij l_ij + k_ij l_qr - 2 k_ij l_iq."""
    n = K.shape[0]
    total, count = 0.0, 0
    for i, j, q, r in itertools.permutations(range(n), 4):
        total += K[i, j] * L[i, j] + K[i, j] * L[q, r] - 2 * K[i, j] * L[i, q]
        count += 1
    return total / count


def cca_eigen_reference(X, Y):
    """Canonical correlations from Sxy Syy^-1 Syx a = rho^2 Sxx a (scipy generalized eigh)."""
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Sxx, Syy, Sxy = Xc.T @ Xc, Yc.T @ Yc, Xc.T @ Yc
    M = Sxy @ np.linalg.solve(Syy, Sxy.T)
    rho2, A = scipy.linalg.eigh(M, Sxx)
    order = np.argsort(rho2)[::-1][: min(X.shape[1], Y.shape[1])]
    return np.sqrt(np.clip(rho2[order], 0, None)), A[:, order]


# ---------------------------------------------------------------- CKA


@pytest.mark.parametrize("p", [5, 80])  # p < n (feature form) and p > n (Gram form)
def test_cka_of_a_matrix_with_itself_is_one(p):
    X, _ = correlated_pair(40, p, 3, seed=0)
    assert linear_cka(X, X) == pytest.approx(1.0, abs=1e-12)
    assert linear_cka_unbiased(X, X) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("p", "q"), [(6, 4), (60, 90)])
def test_cka_matches_gram_matrix_definition(p, q):
    X, Y = correlated_pair(30, p, q, seed=1)
    expected = cka_gram_definition(X, Y)
    assert 0.05 < expected < 0.95  # a non-trivial case
    assert linear_cka(X, Y) == pytest.approx(expected, rel=1e-10)
    assert linear_cka(torch.tensor(X), torch.tensor(Y)) == pytest.approx(expected, rel=1e-10)


def test_unbiased_hsic_matches_u_statistic_definition():
    X, Y = correlated_pair(7, 3, 2, seed=2)
    K, L = X @ X.T, Y @ Y.T
    assert hsic_unbiased(K, L) == pytest.approx(hsic_u_statistic(K, L), rel=1e-10)
    assert hsic_unbiased(K, K) == pytest.approx(hsic_u_statistic(K, K), rel=1e-10)
    expected = hsic_u_statistic(K, L) / np.sqrt(hsic_u_statistic(K, K) * hsic_u_statistic(L, L))
    assert linear_cka_unbiased(X, Y) == pytest.approx(expected, rel=1e-10)
    assert linear_cka_unbiased(X, Y) != pytest.approx(linear_cka(X, Y), rel=1e-3)


@pytest.mark.parametrize(
    "measure", [linear_cka, linear_cka_unbiased, procrustes_distance], ids=lambda f: f.__name__
)
@pytest.mark.parametrize("p", [6, 50])
def test_invariant_to_orthogonal_transforms_and_isotropic_scaling(measure, p):
    X, Y = correlated_pair(25, p, p, seed=3)
    Q1 = ortho_group.rvs(p, random_state=4)
    Q2 = ortho_group.rvs(p, random_state=5)
    base = measure(X, Y)
    assert measure(X @ Q1, Y) == pytest.approx(base, rel=1e-9, abs=1e-12)
    assert measure(7.5 * X @ Q1, 0.01 * Y @ Q2) == pytest.approx(base, rel=1e-9, abs=1e-12)
    assert measure(X + 100.0, Y - 3.0) == pytest.approx(base, rel=1e-9, abs=1e-12)


def test_cka_is_not_invariant_to_anisotropic_scaling():
    X, Y = correlated_pair(40, 5, 5, seed=6)
    D = np.diag([1.0, 10.0, 0.1, 1.0, 5.0])
    assert abs(linear_cka(X @ D, Y) - linear_cka(X, Y)) > 1e-3


# ---------------------------------------------------------------- streaming


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_streaming_cka_equals_full_data_cka(dtype):
    X, Y = correlated_pair(103, 12, 7, seed=7)
    X = (X + 1e3).astype(dtype)  # a large mean: the accumulators must centre correctly
    Y = Y.astype(dtype)
    acc = StreamingLinearCKA()
    for start, stop in [(0, 1), (1, 33), (33, 64), (64, 100), (100, 103)]:
        acc.update(X[start:stop], Y[start:stop])
    assert acc.n == 103
    assert acc.compute() == pytest.approx(
        cka_gram_definition(X.astype(float), Y.astype(float)), rel=1e-9
    )


def test_streaming_cka_rejects_changing_feature_count():
    acc = StreamingLinearCKA()
    acc.update(np.ones((3, 4)), np.ones((3, 2)))
    with pytest.raises(ValueError, match=r"\(2, 5\).*4 and 2 features"):
        acc.update(np.ones((2, 5)), np.ones((2, 2)))


def test_minibatch_cka_is_the_mean_of_unbiased_hsic_over_batches():
    X, Y = correlated_pair(60, 6, 4, seed=8)
    single = MinibatchCKA()
    single.update(X, Y)  # one batch holding every example: the full-data unbiased CKA
    assert single.compute() == pytest.approx(linear_cka_unbiased(X, Y), rel=1e-10)

    acc = MinibatchCKA()
    batches = [slice(0, 20), slice(20, 40), slice(40, 60)]
    for s in batches:
        acc.update(X[s], Y[s])
    sums = np.zeros(3)
    for s in batches:
        K, L = X[s] @ X[s].T, Y[s] @ Y[s].T
        sums += [hsic_u_statistic(K, L), hsic_u_statistic(K, K), hsic_u_statistic(L, L)]
    assert acc.batches == 3
    assert acc.compute() == pytest.approx(sums[0] / np.sqrt(sums[1] * sums[2]), rel=1e-12)
    assert acc.compute() != pytest.approx(single.compute(), rel=1e-4)  # batch-dependent


# ---------------------------------------------------------------- Procrustes


def test_procrustes_distance_is_zero_for_rotated_copy():
    X, _ = correlated_pair(30, 8, 8, seed=9)
    Q = ortho_group.rvs(8, random_state=10)
    assert procrustes_distance(X, X @ Q) == pytest.approx(0.0, abs=1e-10)
    assert procrustes_distance(X, 3.0 * X @ Q + 2.0) == pytest.approx(0.0, abs=1e-10)


@pytest.mark.parametrize("p", [6, 45])
def test_procrustes_distance_matches_scipy_alignment(p):
    X, Y = correlated_pair(30, p, p, seed=11)

    def normalized(A):
        A = A - A.mean(0)
        return A / np.linalg.norm(A)

    Xn, Yn = normalized(X), normalized(Y)
    R, _ = scipy.linalg.orthogonal_procrustes(Yn, Xn)  # argmin_R ||Yn R - Xn||_F
    expected = np.linalg.norm(Yn @ R - Xn) ** 2
    assert 0.1 < expected < 1.9
    assert procrustes_distance(X, Y) == pytest.approx(expected, rel=1e-9)


def test_procrustes_distance_is_two_for_orthogonal_column_spaces():
    # Orthonormal, zero-mean columns split in two: X^T Y = 0, so d = 2 - 0.
    G = np.random.default_rng(12).normal(size=(12, 6))
    Q, _ = np.linalg.qr(G - G.mean(0))
    assert procrustes_distance(Q[:, :3], Q[:, 3:]) == pytest.approx(2.0, abs=1e-10)


# ---------------------------------------------------------------- CCA family


def test_cca_matches_generalized_eigenproblem():
    X, Y = correlated_pair(200, 5, 4, seed=13, noise=1.0)
    expected, _ = cca_eigen_reference(X, Y)
    result = cca(X, Y)
    np.testing.assert_allclose(result.correlations.numpy(), expected, rtol=1e-8, atol=1e-10)
    assert 0.1 < expected[-1] < expected[0] < 0.99
    Hx, Hy = result.x_variates.numpy(), result.y_variates.numpy()
    np.testing.assert_allclose(Hx.T @ Hx, np.eye(4), atol=1e-10)
    np.testing.assert_allclose(Hx.T @ Hy, np.diag(expected), atol=1e-8)
    np.testing.assert_allclose(Hx.sum(0), 0.0, atol=1e-10)  # centred


def test_cca_of_invertible_linear_map_gives_ones():
    X, _ = correlated_pair(50, 6, 6, seed=14)
    A = np.random.default_rng(15).normal(size=(6, 6))
    np.testing.assert_allclose(cca(X, X @ A + 1.0).correlations.numpy(), 1.0, atol=1e-10)
    assert svcca(X, X @ A, variance_kept=1.0) == pytest.approx(1.0, abs=1e-10)
    assert pwcca(X, X @ A) == pytest.approx(1.0, abs=1e-10)


def test_cca_refuses_too_few_examples_and_names_both_shapes():
    rng = np.random.default_rng(16)
    X, Y = rng.normal(size=(10, 20)), rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match=r"\(10, 20\).*\(10, 3\).*n_examples = 10"):
        cca(X, Y)
    with pytest.raises(ValueError, match="canonical correlations are 1"):
        pwcca(X, Y)
    # p + q >= n also refused, even with each side below n
    with pytest.raises(ValueError, match=r"6 \+ 5 dimensions"):
        cca(rng.normal(size=(11, 6)), rng.normal(size=(11, 5)))


def test_svcca_reduces_by_svd_so_wide_low_rank_layers_work():
    # 100 features but rank 3 (+ tiny noise) on 30 examples: 99% variance keeps 3 directions.
    rng = np.random.default_rng(17)
    Z = rng.normal(size=(30, 3))
    X = Z @ rng.normal(size=(3, 100)) + 1e-4 * rng.normal(size=(30, 100))
    Y = Z @ rng.normal(size=(3, 80)) + 1e-4 * rng.normal(size=(30, 80))
    assert svcca(X, Y) == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(ValueError, match="canonical correlations are 1"):
        svcca(rng.normal(size=(30, 100)), rng.normal(size=(30, 80)))  # full rank: refused


def test_svcca_matches_reduce_then_cca_by_hand():
    X, Y = correlated_pair(300, 12, 10, seed=18, noise=0.8)

    def reduce(A, share):
        Ac = A - A.mean(0)
        U, S, _ = np.linalg.svd(Ac, full_matrices=False)
        k = int(np.searchsorted(np.cumsum(S**2) / np.sum(S**2), share) + 1)
        return U[:, :k] * S[:k]

    Xr, Yr = reduce(X, 0.9), reduce(Y, 0.9)
    assert Xr.shape[1] < 12 and Yr.shape[1] < 10  # the reduction did something
    rho, _ = cca_eigen_reference(Xr, Yr)
    assert svcca(X, Y, variance_kept=0.9) == pytest.approx(rho.mean(), rel=1e-8)


def test_pwcca_matches_direct_projection_weighting():
    X, Y = correlated_pair(300, 4, 6, seed=19, noise=1.0)
    rho, A = cca_eigen_reference(X, Y)  # X has fewer units: it is the weighting side
    Xc = X - X.mean(0)
    H = Xc @ A
    H /= np.linalg.norm(H, axis=0)
    alpha = np.abs(H.T @ Xc).sum(1)
    expected = float((alpha / alpha.sum()) @ rho)
    assert pwcca(X, Y) == pytest.approx(expected, rel=1e-8)
    assert pwcca(X, Y, weight_by="x") == pytest.approx(expected, rel=1e-8)
    assert pwcca(Y, X) == pytest.approx(expected, rel=1e-8)  # smaller side is Y now
    assert abs(expected - rho.mean()) > 1e-3  # weighting is not the plain mean


# ---------------------------------------------------------------- errors and tables


@pytest.mark.parametrize("measure", [linear_cka, procrustes_distance, svcca, pwcca, cca])
def test_shape_mismatch_error_names_both_shapes(measure):
    with pytest.raises(ValueError, match=r"X has shape \(10, 3\) and Y has shape \(9, 3\)"):
        measure(np.ones((10, 3)), np.ones((9, 3)))
    with pytest.raises(ValueError, match=r"X has shape \(10,\)"):
        measure(np.ones(10), np.ones((10, 3)))


def test_constant_representation_gives_nan():
    X, _ = correlated_pair(10, 3, 3, seed=20)
    assert np.isnan(linear_cka(X, np.ones((10, 2))))
    assert np.isnan(procrustes_distance(X, np.ones((10, 2))))


@pytest.mark.parametrize(
    ("name", "function", "options"),
    [
        ("cka", linear_cka, {}),
        ("cka_unbiased", linear_cka_unbiased, {}),
        ("opd", procrustes_distance, {}),
        ("svcca", svcca, {"variance_kept": 0.95}),
        ("pwcca", pwcca, {"weight_by": "y"}),
    ],
)
def test_similarity_matrix_equals_pairwise_functions(name, function, options):
    rng = np.random.default_rng(21)
    acts_a = {"conv": rng.normal(size=(60, 9)), "fc": rng.normal(size=(60, 40))}
    acts_b = {"x": acts_a["conv"] @ rng.normal(size=(9, 5)) + rng.normal(size=(60, 5))}
    acts_b["y"] = rng.normal(size=(60, 3))
    if name == "pwcca":  # keep p + q < n for plain CCA
        acts_a["fc"] = acts_a["fc"][:, :10]
    table = similarity_matrix(acts_a, acts_b, measure=name, **options)
    assert list(table.columns) == ["layer_a", "layer_b", "index_a", "index_b", name]
    assert len(table) == 4
    for row in table.itertuples():
        expected = function(acts_a[row.layer_a], acts_b[row.layer_b], **options)
        assert getattr(row, name) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_similarity_matrix_rejects_unknown_measure_and_options():
    acts = {"a": np.ones((5, 2))}
    with pytest.raises(ValueError, match="unknown similarity measure 'cca2'"):
        similarity_matrix(acts, acts, measure="cca2")
    with pytest.raises(ValueError, match="variance_kept"):
        similarity_matrix(acts, acts, measure="cka", variance_kept=0.9)
