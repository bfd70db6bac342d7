"""Layer x layer similarity of two tiny conv nets: the streamed exact CKA against a direct
computation on the full stacked activations, hooks, feature capping, and bookkeeping."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from minima.similarity import (
    ActivationCapture,
    gather_activations,
    layerwise_cka,
    layerwise_similarity,
)

LAYER_TYPES = (nn.Conv2d, nn.Linear)


def tiny_net(seed, dtype=torch.float64):
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # 4 x 12 x 12 = 576 features
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2),  # 6 x 5 x 5 = 150 features
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(150, 5),  # 5 features
    )
    return net.to(dtype)


def make_batches(sizes=(8, 8, 8, 8, 5), seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, 12, 12, generator=gen, dtype=dtype) for b in sizes]


def direct_activations(net, x):
    """Conv/Linear outputs of a Sequential on all inputs at once, flattened, float64."""
    outs, h = [], x
    with torch.no_grad():
        for module in net:
            h = module(h)
            if isinstance(module, LAYER_TYPES):
                outs.append(h.flatten(1).double().numpy())
    return outs


def direct_cka_matrix(net_a, net_b, batches):
    """HSIC with explicitly double-centred Gram matrices, on all examples stacked."""
    x = torch.cat(batches)
    acts_a, acts_b = direct_activations(net_a, x), direct_activations(net_b, x)
    n = x.shape[0]
    H = np.eye(n) - 1.0 / n

    def centred_gram(A):
        return H @ (A @ A.T) @ H

    Ka, Kb = [centred_gram(A) for A in acts_a], [centred_gram(B) for B in acts_b]
    return np.array(
        [[np.sum(K * L) / np.sqrt(np.sum(K * K) * np.sum(L * L)) for L in Kb] for K in Ka]
    )


def as_matrix(table, value="cka"):
    return table.pivot(index="index_a", columns="index_b", values=value).to_numpy()


@pytest.mark.parametrize(
    ("budget", "forms"),
    [
        (2**25, {"feature"}),  # every term as p x q sums, one pass
        (0, {"gram"}),  # every term from Gram blocks, B(B+1)/2 passes
        (30_000, {"feature", "gram"}),  # wide conv1 (576^2) in Gram form, the rest features
    ],
)
@pytest.mark.parametrize("block", [1, 16, 1024])  # one batch, two batches, all held at once
def test_layerwise_cka_equals_direct_full_activation_cka(budget, forms, block):
    net_a, net_b = tiny_net(0), tiny_net(1)
    batches = make_batches()
    table = layerwise_cka(
        net_a, net_b, batches, device="cpu", max_feature_elements=budget, block_examples=block
    )
    assert set(table["form"]) == forms
    assert list(table.columns) == ["layer_a", "layer_b", "index_a", "index_b", "cka", "form"]
    assert table.attrs["n_examples"] == 37
    assert list(table.drop_duplicates("index_a")["layer_a"]) == ["0", "2", "5"]
    expected = direct_cka_matrix(net_a, net_b, batches)
    assert 0.05 < expected.min() < expected.max() < 0.999  # non-trivial values
    np.testing.assert_allclose(as_matrix(table), expected, rtol=1e-9)


def test_layerwise_cka_logs_one_progress_line_per_gram_block(caplog):
    """Blocks of 16 examples over batches of 8: batches 0-1, 2-3, then 4 (the last)."""
    with caplog.at_level("INFO", logger="minima.similarity"):
        layerwise_cka(
            tiny_net(0),
            tiny_net(1),
            make_batches(),
            device="cpu",
            max_feature_elements=0,
            block_examples=16,
        )
    lines = [r.getMessage() for r in caplog.records if "Gram block" in r.getMessage()]
    assert [line.split(" paired")[0] for line in lines] == [
        f"linear CKA: Gram block of batches {a}-{b}" for a, b in ((0, 1), (2, 3), (4, 4))
    ]
    assert [line.split("(")[1].split(",")[0] for line in lines] == [
        "2 of 5 batches",
        "4 of 5 batches",
        "5 of 5 batches",
    ]


def test_layerwise_cka_float32_models_and_labelled_batches():
    net_a, net_b = tiny_net(2, torch.float32), tiny_net(3, torch.float32)
    batches = make_batches(dtype=torch.float32)
    labelled = [(x, torch.zeros(len(x), dtype=torch.long)) for x in batches]
    table = layerwise_cka(net_a, net_b, labelled, device="cpu", max_feature_elements=30_000)
    expected = direct_cka_matrix(net_a, net_b, batches)
    np.testing.assert_allclose(as_matrix(table), expected, rtol=1e-5)


def test_layerwise_cka_of_a_model_with_itself():
    net = tiny_net(4)
    table = layerwise_cka(
        net, net, make_batches(), device="cpu", max_feature_elements=0, block_examples=10
    )
    M = as_matrix(table)
    np.testing.assert_allclose(np.diag(M), 1.0, atol=1e-12)
    np.testing.assert_allclose(M, M.T, atol=1e-12)


def test_layerwise_cka_restores_models_and_removes_hooks():
    net_a, net_b = tiny_net(5), tiny_net(6)
    net_a.train()
    net_b.eval()
    layerwise_cka(net_a, net_b, make_batches(), device="cpu", max_feature_elements=0)
    assert net_a.training and not net_b.training
    for module in [*net_a.modules(), *net_b.modules()]:
        assert not module._forward_hooks


def test_layerwise_cka_selected_layers():
    net_a, net_b = tiny_net(7), tiny_net(8)
    table = layerwise_cka(
        net_a, net_b, make_batches(), device="cpu", layers_a=["5"], layers_b=["2", "5"]
    )
    assert list(zip(table["layer_a"], table["layer_b"], strict=True)) == [("5", "2"), ("5", "5")]
    expected = direct_cka_matrix(net_a, net_b, make_batches())[2:, 1:]
    np.testing.assert_allclose(as_matrix(table), expected, rtol=1e-9)
    with pytest.raises(ValueError, match="no Conv2d/Linear layers named"):
        layerwise_cka(net_a, net_b, make_batches(), device="cpu", layers_a=["1"])


def test_layerwise_cka_one_shot_iterator():
    net_a, net_b = tiny_net(9), tiny_net(10)
    batches = make_batches()
    # every term fits the feature form: one pass is enough, a generator is fine
    table = layerwise_cka(net_a, net_b, iter(batches), device="cpu")
    np.testing.assert_allclose(
        as_matrix(table), direct_cka_matrix(net_a, net_b, batches), rtol=1e-9
    )
    with pytest.raises(ValueError, match="one-shot iterator"):
        layerwise_cka(net_a, net_b, iter(batches), device="cpu", max_feature_elements=0)


class ReshuffledBatches:
    """Yields different inputs on every pass, like a shuffling DataLoader."""

    def __init__(self):
        self.passes = 0

    def __iter__(self):
        self.passes += 1
        return iter(make_batches(seed=self.passes))


def test_layerwise_cka_detects_batches_that_change_between_passes():
    with pytest.raises(ValueError, match="changed between passes"):
        layerwise_cka(
            tiny_net(0),
            tiny_net(1),
            ReshuffledBatches(),
            device="cpu",
            max_feature_elements=0,
            block_examples=8,
        )


class RegisteredOutOfOrder(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Linear(6, 2)
        self.body = nn.Linear(4, 6)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def test_activation_capture_lists_layers_in_execution_order():
    net = RegisteredOutOfOrder().double()
    x = torch.randn(5, 4, dtype=torch.float64)
    with ActivationCapture(net) as capture:
        net(x)
        acts = capture.pop()
    assert list(acts) == ["body", "head"]
    torch.testing.assert_close(acts["body"], net.body(x).detach())
    assert not net.body._forward_hooks


def test_gather_activations_subset_and_spatial_pooling():
    net_a, net_b = tiny_net(11), tiny_net(12)
    batches = make_batches()
    acts_a, acts_b = gather_activations(
        net_a,
        net_b,
        batches,
        device="cpu",
        max_examples=20,
        spatial_pool=2,
        storage_dtype=torch.float64,
    )
    x = torch.cat(batches)[:20]
    with torch.no_grad():
        conv1 = net_a[0](x)
    assert {k: tuple(v.shape) for k, v in acts_a.items()} == {
        "0": (20, 4 * 2 * 2),
        "2": (20, 6 * 2 * 2),
        "5": (20, 5),
    }
    torch.testing.assert_close(acts_a["0"], F.adaptive_avg_pool2d(conv1, 2).flatten(1))
    assert set(acts_b) == set(acts_a)


def test_gather_activations_random_projection():
    net_a, net_b = tiny_net(13), tiny_net(14)
    batches = make_batches(sizes=(40, 40, 40))
    kwargs = dict(device="cpu", projection_dim=64, seed=3, storage_dtype=torch.float64)
    acts_a, _ = gather_activations(net_a, net_b, batches, **kwargs)
    again, _ = gather_activations(net_a, net_b, batches, **kwargs)
    other_seed, _ = gather_activations(net_a, net_b, batches, **{**kwargs, "seed": 4})
    full_a, _ = gather_activations(net_a, net_b, batches, device="cpu", storage_dtype=torch.float64)
    assert acts_a["0"].shape == (120, 64) and acts_a["2"].shape == (120, 64)
    torch.testing.assert_close(acts_a["5"], full_a["5"])  # narrower than k: untouched
    torch.testing.assert_close(acts_a["0"], again["0"])  # fixed projection per seed and layer
    assert not torch.allclose(acts_a["0"], other_seed["0"])
    # E[G G^T] = I: squared norms kept on average (120 rows, each with relative sd 0.18)
    ratio = acts_a["0"].square().sum() / full_a["0"].square().sum()
    assert float(ratio) == pytest.approx(1.0, abs=0.1)
    # and the projection is linear in the activations: X G for one fixed G
    G = torch.linalg.lstsq(full_a["0"], acts_a["0"]).solution
    torch.testing.assert_close(full_a["0"] @ G, acts_a["0"], rtol=1e-7, atol=1e-7)


def test_layerwise_similarity_cka_agrees_with_streaming_layerwise_cka():
    net_a, net_b = tiny_net(15), tiny_net(16)
    batches = make_batches()
    streamed = layerwise_cka(net_a, net_b, batches, device="cpu", max_feature_elements=0)
    gathered = layerwise_similarity(net_a, net_b, batches, measure="cka", device="cpu")
    np.testing.assert_allclose(as_matrix(gathered), as_matrix(streamed), rtol=1e-6)
    assert gathered.attrs["n_examples"] == 37


def test_layerwise_similarity_svcca_and_opd_on_a_subset():
    net = tiny_net(17)
    batches = make_batches(sizes=(50, 50))
    table = layerwise_similarity(net, net, batches, measure="svcca", device="cpu", spatial_pool=1)
    np.testing.assert_allclose(np.diag(as_matrix(table, "svcca")), 1.0, atol=1e-6)
    opd = layerwise_similarity(net, net, batches, measure="opd", device="cpu", max_examples=60)
    np.testing.assert_allclose(np.diag(as_matrix(opd, "opd")), 0.0, atol=1e-6)
    assert opd.attrs["n_examples"] == 60
