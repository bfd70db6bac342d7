"""Seeded train/validation/test splits as index arrays into a dataset's pools.

The paper carves a validation split from the training pool with a fixed seed and draws
subsets (E2: 1,200 / 200 / 200 images of MNIST) once per dataset seed, written to disk so
that every run uses the same images. Here each pool gets ONE permutation per seed and
every part is a slice of it, so subsets of different sizes drawn with the same seed
nest: the first 1,200 training images are the first 1,200 of the 5,000-image subset.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Index arrays into the pools, one per part.

    Attributes:
        indices: ``{"train"|"val"|"test": int64 indices}`` into the pool the part is drawn
            from; ``split["train"]`` reads the same.
        pools: ``{part: pool name}``, e.g. ``{"train": "train", "val": "train",
            "test": "test"}`` or ``"all"`` for every part of ``mnist10k``.
        seed: The seed the permutations were drawn with.
    """

    indices: dict[str, np.ndarray]
    pools: dict[str, str]
    seed: int

    def __getitem__(self, part: str) -> np.ndarray:
        return self.indices[part]

    def sizes(self) -> dict[str, int]:
        """Number of images per part."""
        return {part: len(idx) for part, idx in self.indices.items()}


def pool_permutation(n: int, seed: int, pool: str) -> np.ndarray:
    """The seeded permutation of pool ``pool`` (size ``n``) every part is sliced from.

    The stream is keyed by the seed and the pool's name, so the train and test pools get
    independent permutations from one seed, identical on every platform.
    """
    rng = np.random.default_rng([int(seed), zlib.crc32(pool.encode())])
    return rng.permutation(n).astype(np.int64)


def _check_size(key: str, value: int | None, available: int, pool: str, after: str = "") -> None:
    if value is None:
        return
    if value < 0:
        raise ValueError(f"{key}={value} must be >= 0")
    if value > available:
        raise ValueError(
            f"{key}={value} is larger than the {available} images available in pool {pool!r}{after}"
        )


def make_split(
    pool_sizes: Mapping[str, int],
    *,
    seed: int,
    val_size: int,
    train_size: int | None = None,
    test_size: int | None = None,
) -> Split:
    """Draw a train/val/test split from a dataset's pools.

    With pools ``train`` and ``test`` (MNIST, CIFAR-10): validation is the first
    ``val_size`` images of the train pool's permutation, train the next ``train_size``
    (default: all the rest), test the official test pool in its own order (or the first
    ``test_size`` of its permutation). With the single pool ``all`` (``mnist10k``): the
    pool's permutation is cut into test (``test_size``, required), then validation, then
    train.

    Sizes nest: with the same seed and ``val_size``, a smaller ``train_size`` gives a prefix
    of a larger one's training indices (likewise for ``test_size``), and changing
    ``train_size`` never changes validation or test.

    Args:
        pool_sizes: ``{pool: number of images}``, e.g. ``{"train": 60000, "test": 10000}``.
        seed: Dataset seed (non-negative).
        val_size: Validation images.
        train_size: Training images; ``None`` takes everything left.
        test_size: Test images; ``None`` takes the whole official test pool.

    Raises:
        ValueError: a size is negative or larger than the images left for it; the message
            names the key and the count available.
    """
    pools = dict(pool_sizes)
    if set(pools) == {"train", "test"}:
        n_train, n_test = pools["train"], pools["test"]
        _check_size("val_size", val_size, n_train, "train")
        _check_size(
            "train_size", train_size, n_train - val_size, "train", f" after val_size={val_size}"
        )
        _check_size("test_size", test_size, n_test, "test")
        perm = pool_permutation(n_train, seed, "train")
        rest = perm[val_size:]
        test = (
            np.arange(n_test, dtype=np.int64)
            if test_size is None
            else pool_permutation(n_test, seed, "test")[:test_size]
        )
        indices = {
            "train": rest if train_size is None else rest[:train_size],
            "val": perm[:val_size],
            "test": test,
        }
        part_pools = {"train": "train", "val": "train", "test": "test"}
    elif set(pools) == {"all"}:
        n = pools["all"]
        if test_size is None:
            raise ValueError("test_size is required for a dataset with the single pool 'all'")
        _check_size("test_size", test_size, n, "all")
        _check_size("val_size", val_size, n - test_size, "all", f" after test_size={test_size}")
        left = n - test_size - val_size
        _check_size(
            "train_size",
            train_size,
            left,
            "all",
            f" after test_size + val_size={test_size + val_size}",
        )
        perm = pool_permutation(n, seed, "all")
        rest = perm[test_size + val_size :]
        indices = {
            "train": rest if train_size is None else rest[:train_size],
            "val": perm[test_size : test_size + val_size],
            "test": perm[:test_size],
        }
        part_pools = {part: "all" for part in PARTS}
    else:
        raise ValueError(f"pools must be {{'train', 'test'}} or {{'all'}}, got {sorted(pools)}")
    return Split(indices=indices, pools=part_pools, seed=int(seed))


def save_split(
    split: Split, path: str | Path, *, mean: np.ndarray | None = None, std: np.ndarray | None = None
) -> None:
    """Write a split to ``path`` (``.npz``, no pickles) so every run reads the same indices.

    ``mean``/``std``: the train split's per-channel statistics, stored with it so that every
    run normalizes with the same numbers (read them with :func:`load_split_stats`).
    """
    arrays: dict[str, np.ndarray] = {part: split.indices[part] for part in PARTS}
    arrays.update({f"pool_{part}": np.array(split.pools[part]) for part in PARTS})
    arrays["seed"] = np.array(split.seed, dtype=np.int64)
    if mean is not None and std is not None:
        arrays["mean"] = np.asarray(mean, dtype=np.float64)
        arrays["std"] = np.asarray(std, dtype=np.float64)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_split_stats(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The train split's (mean, std) stored by :func:`save_split`."""
    with np.load(path, allow_pickle=False) as data:
        if "mean" not in data:
            raise ValueError(f"{path} holds no normalization statistics; rebuild the split")
        return data["mean"], data["std"]


def load_split(path: str | Path) -> Split:
    """Read a split written by :func:`save_split`."""
    with np.load(path, allow_pickle=False) as data:
        return Split(
            indices={part: data[part].astype(np.int64) for part in PARTS},
            pools={part: str(data[f"pool_{part}"]) for part in PARTS},
            seed=int(data["seed"]),
        )
