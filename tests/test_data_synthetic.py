"""cifar10_synthetic: CIFAR-10's on-disk format, read by torchvision's CIFAR10 class."""

import pickle

import numpy as np
import pytest
import torch
from torchvision import datasets

from minima.data import (
    ChecksumError,
    file_md5,
    load_pools,
    prepare_dataset,
    write_synthetic_cifar10,
)

BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar_syn")
    written = write_synthetic_cifar10(root, n_train=503, n_test=200, seed=3)
    return root, written


def read_batch(path, encoding):
    with open(path, "rb") as f:
        return pickle.load(f, encoding=encoding)


def test_files_in_torchvision_layout_and_original_pickle_format(synthetic):
    root, written = synthetic
    folder = root / "cifar-10-batches-py"
    assert sorted(written) == sorted(
        f"cifar-10-batches-py/{f}" for f in [*BATCHES, "test_batch", "batches.meta"]
    )
    sizes = []
    for name in [*BATCHES, "test_batch"]:
        # the dataset page's reader: encoding="bytes" gives bytes keys, as for the real files
        batch = read_batch(folder / name, "bytes")
        assert {b"data", b"labels", b"batch_label", b"filenames"} <= set(batch)
        data = batch[b"data"]
        assert data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
        assert len(batch[b"labels"]) == len(data) == len(batch[b"filenames"])
        sizes.append(len(data))
    assert sizes == [101, 101, 101, 100, 100, 200]
    meta = read_batch(folder / "batches.meta", "latin1")
    assert meta["label_names"][0] == "airplane" and len(meta["label_names"]) == 10


def test_round_trip_through_torchvision_reader(synthetic):
    root, _ = synthetic
    pools = load_pools("cifar10_synthetic", root)
    images, labels = pools["train"]
    assert images.shape == (503, 3, 32, 32) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and pools["test"][0].shape == (200, 3, 32, 32)
    # independent parse: rows are 1024 red, 1024 green, 1024 blue values, 32 per row
    folder = root / "cifar-10-batches-py"
    raw = [read_batch(folder / name, "bytes") for name in BATCHES]
    data = np.concatenate([b[b"data"] for b in raw]).reshape(-1, 3, 32, 32)
    np.testing.assert_array_equal(images.numpy(), data)
    np.testing.assert_array_equal(labels.numpy(), np.concatenate([b[b"labels"] for b in raw]))
    test = read_batch(folder / "test_batch", "bytes")
    np.testing.assert_array_equal(pools["test"][1].numpy(), test[b"labels"])
    # balanced classes
    assert torch.bincount(pools["test"][1], minlength=10).tolist() == [20] * 10


def test_real_cifar10_checksums_refuse_synthetic_files(synthetic):
    root, _ = synthetic
    with pytest.raises(RuntimeError, match="corrupted"):
        datasets.CIFAR10(root=str(root), train=True, download=False)
    with pytest.raises(ChecksumError, match="data_batch_1"):
        load_pools("cifar10", root)


def test_same_seed_same_bytes(tmp_path):
    write_synthetic_cifar10(tmp_path / "a", n_train=20, n_test=10, seed=5)
    write_synthetic_cifar10(tmp_path / "b", n_train=20, n_test=10, seed=5)
    write_synthetic_cifar10(tmp_path / "c", n_train=20, n_test=10, seed=6)
    md5 = {k: file_md5(tmp_path / k / "cifar-10-batches-py" / "test_batch") for k in "abc"}
    assert md5["a"] == md5["b"] != md5["c"]
    with pytest.raises(ValueError):
        write_synthetic_cifar10(tmp_path / "d", n_train=4, n_test=10)


def test_classes_are_learnable(synthetic):
    """A nearest-class-mean classifier, fitted on train, beats chance by far on test."""
    root, _ = synthetic
    pools = load_pools("cifar10_synthetic", root)
    # the mean colour alone separates most classes (the stripes add more for a network)
    f_train = pools["train"][0].double().mean(dim=(2, 3))
    f_test = pools["test"][0].double().mean(dim=(2, 3))
    y_train, y_test = pools["train"][1], pools["test"][1]
    centroids = torch.stack([f_train[y_train == c].mean(0) for c in range(10)])
    predicted = torch.cdist(f_test, centroids).argmin(1)
    assert (predicted == y_test).double().mean() > 0.6


def test_prepare_cifar10_synthetic_manifest(tmp_path):
    manifest = prepare_dataset(
        "cifar10_synthetic", tmp_path, synthetic={"n_train": 50, "n_test": 20, "seed": 1}
    )
    assert manifest["source"] == "generated"
    assert manifest["synthetic"] == {"n_train": 50, "n_test": 20, "seed": 1}
    assert manifest["pools"] == {"train": 50, "test": 20}
    assert "NOT CIFAR-10" in manifest["description"] and "bypassed" in manifest["checksums"]
