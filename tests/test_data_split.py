"""make_split: sizes, disjointness, nesting across sizes, determinism, errors."""

import numpy as np
import pytest

from minima.data import load_split, make_split, pool_permutation, save_split

MNIST_POOLS = {"train": 60000, "test": 10000}


def test_e2_sizes_disjoint_and_in_range():
    split = make_split(MNIST_POOLS, seed=0, val_size=200, train_size=1200, test_size=200)
    assert split.sizes() == {"train": 1200, "val": 200, "test": 200}
    assert split.pools == {"train": "train", "val": "train", "test": "test"}
    assert not set(split["train"]) & set(split["val"])  # both index the train pool
    for part in ("train", "val", "test"):
        idx = split[part]
        assert idx.dtype == np.int64 and len(np.unique(idx)) == len(idx)
        assert idx.min() >= 0 and idx.max() < MNIST_POOLS[split.pools[part]]


def test_defaults_take_the_rest_and_the_official_test_set():
    split = make_split({"train": 1000, "test": 300}, seed=3, val_size=100)
    assert split.sizes() == {"train": 900, "val": 100, "test": 300}
    assert np.array_equal(np.sort(np.r_[split["train"], split["val"]]), np.arange(1000))
    assert np.array_equal(split["test"], np.arange(300))  # official order, untouched


def test_sizes_nest_with_the_same_seed():
    small = make_split(MNIST_POOLS, seed=7, val_size=200, train_size=1200, test_size=200)
    large = make_split(MNIST_POOLS, seed=7, val_size=200, train_size=5000, test_size=1000)
    full = make_split(MNIST_POOLS, seed=7, val_size=200)
    assert np.array_equal(large["train"][:1200], small["train"])
    assert np.array_equal(full["train"][:5000], large["train"])
    assert np.array_equal(small["val"], large["val"]) and np.array_equal(full["val"], small["val"])
    assert np.array_equal(large["test"][:200], small["test"])


def test_single_pool_nests_and_partitions():
    a = make_split({"all": 10000}, seed=1, val_size=500, test_size=1000, train_size=2000)
    b = make_split({"all": 10000}, seed=1, val_size=500, test_size=1000)
    assert a.pools == {"train": "all", "val": "all", "test": "all"}
    assert np.array_equal(b["train"][:2000], a["train"])
    assert np.array_equal(a["test"], b["test"]) and np.array_equal(a["val"], b["val"])
    union = np.concatenate([b["train"], b["val"], b["test"]])
    assert np.array_equal(np.sort(union), np.arange(10000))


def test_deterministic_per_seed_and_different_across_seeds():
    a = make_split(MNIST_POOLS, seed=11, val_size=100, train_size=100, test_size=100)
    b = make_split(MNIST_POOLS, seed=11, val_size=100, train_size=100, test_size=100)
    c = make_split(MNIST_POOLS, seed=12, val_size=100, train_size=100, test_size=100)
    for part in ("train", "val", "test"):
        assert np.array_equal(a[part], b[part])
        assert not np.array_equal(a[part], c[part])


def test_pool_permutation_is_a_permutation_keyed_by_pool():
    p = pool_permutation(1000, 5, "train")
    assert np.array_equal(np.sort(p), np.arange(1000))
    assert not np.array_equal(p, pool_permutation(1000, 5, "test"))


@pytest.mark.parametrize(
    ("kwargs", "pools", "pattern"),
    [
        ({"val_size": 70000}, MNIST_POOLS, r"val_size=70000 .* 60000 images available in pool"),
        (
            {"val_size": 200, "train_size": 60000},
            MNIST_POOLS,
            r"train_size=60000 .* 59800 images available in pool 'train' after val_size=200",
        ),
        ({"val_size": 0, "test_size": 10001}, MNIST_POOLS, r"test_size=10001 .* 10000 images"),
        ({"val_size": 10, "test_size": 20000}, {"all": 10000}, r"test_size=20000 .* 10000 images"),
        (
            {"val_size": 1000, "test_size": 1000, "train_size": 8001},
            {"all": 10000},
            r"train_size=8001 .* 8000 images",
        ),
        ({"val_size": 10}, {"all": 10000}, r"test_size is required"),
        ({"val_size": -1}, MNIST_POOLS, r"val_size=-1 must be >= 0"),
        ({"val_size": 1}, {"train": 5}, r"pools must be"),
    ],
)
def test_errors_name_the_key_and_the_available_count(kwargs, pools, pattern):
    with pytest.raises(ValueError, match=pattern):
        make_split(pools, seed=0, **kwargs)


def test_save_and_load_round_trip(tmp_path):
    split = make_split({"all": 500}, seed=2, val_size=50, test_size=100)
    save_split(split, tmp_path / "split.npz")
    loaded = load_split(tmp_path / "split.npz")
    assert loaded.pools == split.pools and loaded.seed == 2
    for part in ("train", "val", "test"):
        assert np.array_equal(loaded[part], split[part])
