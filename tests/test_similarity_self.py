"""Each network compared with itself (E3's self-similarity maps, ``self_pairs``): which pairs
the plan compares, and the known diagonal of a layer x layer map of one network: CKA 1 and
Procrustes distance 0 for every layer with itself."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import yaml
from test_similarity_layerwise import make_batches, tiny_net

from minima import plan
from minima.similarity import layerwise_cka, layerwise_similarity
from tests.workflow_helpers import REPO


def _matrix(table, value):
    return table.pivot(index="index_a", columns="index_b", values=value).to_numpy()


@pytest.mark.parametrize("same_object", [True, False])  # one module, or two loaded copies
def test_self_similarity_diagonal_is_one_for_cka_and_zero_for_opd(same_object):
    net = tiny_net(5)
    other = net if same_object else copy.deepcopy(net)
    batches = make_batches()
    cka = _matrix(layerwise_cka(net, other, batches, device="cpu"), "cka")
    np.testing.assert_allclose(np.diag(cka), 1.0, rtol=0, atol=1e-12)
    assert np.allclose(cka, cka.T, atol=1e-12) and (cka[~np.eye(3, dtype=bool)] < 0.99).all()
    opd = _matrix(layerwise_similarity(net, other, batches, measure="opd", device="cpu"), "opd")
    np.testing.assert_allclose(np.diag(opd), 0.0, rtol=0, atol=1e-10)
    assert (opd[~np.eye(3, dtype=bool)] > 1e-3).all()  # distinct layers are not the same


def test_config_compares_each_network_with_itself_and_every_pair():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    runs = plan.similarity_runs(config, "e3")
    pairs = plan.similarity_pairs(config, "e3")
    assert config["experiments"]["e3"]["analyses"]["similarity"]["self_pairs"] is True
    assert [(a, b) for a, b in pairs if a == b] == [(r, r) for r in runs]
    assert len(pairs) == len(runs) * (len(runs) + 1) // 2
    distinct = copy.deepcopy(config)
    del distinct["experiments"]["e3"]["analyses"]["similarity"]["self_pairs"]  # off by default
    assert plan.similarity_pairs(distinct, "e3") == [(a, b) for a, b in pairs if a != b]
