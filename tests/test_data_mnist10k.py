"""The embedded sample: 10,000 official MNIST test images, read without any network."""

import gzip
import json

import numpy as np
import pytest
import torch

from minima.data import DATASETS, embedded_mnist10k_dir, load_pools, make_split, prepare_dataset

# Label counts of the official MNIST test set (LeCun, Cortes, Burges), digits 0..9.
OFFICIAL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def parse_idx(path):
    """Independent idx reader: big-endian magic (0x0803 images, 0x0801 labels), dims, bytes."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return magic, np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


@pytest.fixture(scope="module")
def mnist10k(tmp_path_factory):
    root = tmp_path_factory.mktemp("mnist10k")
    manifest = prepare_dataset("mnist10k", root)
    return manifest, load_pools("mnist10k", root)


def test_manifest_says_what_it_is(mnist10k):
    manifest, _ = mnist10k
    json.dumps(manifest)  # JSON-able
    assert manifest["source"] == "embedded"
    assert manifest["pools"] == {"all": 10000}
    assert {f["md5"] for f in manifest["files"]} == {
        "9fb629c4189551a2d022fa330f9573f3",
        "ec29112dd5afa0611ce80d1b7f02629c",
    }
    assert "not full MNIST" in manifest["description"]
    assert DATASETS["mnist10k"].pools == ("all",) and not DATASETS["mnist10k"].needs_download


def test_loads_the_official_test_set(mnist10k):
    _, pools = mnist10k
    images, labels = pools["all"]
    assert images.shape == (10000, 1, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (10000,) and labels.dtype == torch.int64

    emb = embedded_mnist10k_dir()
    magic_l, raw_labels = parse_idx(emb / "t10k-labels-idx1-ubyte.gz")
    magic_i, raw_images = parse_idx(emb / "t10k-images-idx3-ubyte.gz")
    assert (magic_l, magic_i) == (0x0801, 0x0803)
    counts = np.bincount(raw_labels, minlength=10).tolist()
    assert counts == OFFICIAL_TEST_COUNTS
    assert torch.bincount(labels, minlength=10).tolist() == counts
    np.testing.assert_array_equal(labels.numpy(), raw_labels)
    np.testing.assert_array_equal(images[:, 0].numpy(), raw_images)


def test_resplit_into_three_parts(mnist10k):
    _, pools = mnist10k
    n = len(pools["all"][1])
    split = make_split({"all": n}, seed=0, val_size=1000, test_size=2000)
    assert split.pools == {"train": "all", "val": "all", "test": "all"}
    assert split.sizes() == {"train": 7000, "val": 1000, "test": 2000}
    everything = np.concatenate([split["train"], split["val"], split["test"]])
    assert np.array_equal(np.sort(everything), np.arange(n))
    # a seeded random split keeps every class in every part
    labels = pools["all"][1].numpy()
    for part in ("train", "val", "test"):
        assert np.all(np.bincount(labels[split[part]], minlength=10) > 0)


def test_prepare_again_is_idempotent(tmp_path):
    first = prepare_dataset("mnist10k", tmp_path)
    second = prepare_dataset("mnist10k", tmp_path)
    assert first["files"] == second["files"]


def test_registry_pool_sizes_are_the_files_sizes(mnist10k):
    """Start-up checks size splits from the registry without reading data: it must agree."""
    from minima.data.registry import pool_sizes

    _, pools = mnist10k
    assert pool_sizes("mnist10k") == {name: len(labels) for name, (_, labels) in pools.items()}
    assert pool_sizes("cifar10_synthetic", {"n_train": 300, "n_test": 100, "seed": 0}) == {
        "train": 300,
        "test": 100,
    }
