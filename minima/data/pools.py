"""Read the raw pools of a prepared dataset with torchvision's own reader classes.

A pool is one set of raw images as the dataset ships them: MNIST and CIFAR-10 have
``train`` and ``test``; ``mnist10k`` has the single pool ``all``. Splits
(:mod:`minima.data.split`) index into these pools.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from .checksums import ChecksumError, verify_md5
from .layouts import (
    CIFAR10_ARCHIVE,
    CIFAR10_FILES,
    MNIST_FILES,
    MNIST_TEST_PAIR,
    cifar10_class,
    expected_files,
    mnist_class,
    with_checksums,
)
from .registry import get_info

Pools = dict[str, tuple[torch.Tensor, torch.Tensor]]


def load_pools(name: str, root: str | Path, *, checksums: Mapping[str, str] | None = None) -> Pools:
    """Load every pool of a prepared dataset, verifying checksums first.

    Args:
        name: A name from :data:`minima.data.DATASETS`.
        root: The folder :func:`minima.data.prepare_dataset` filled (torchvision's layout:
            ``<root>/MNIST/raw/`` or ``<root>/cifar-10-batches-py/``).
        checksums: The same md5 override that was given to ``prepare_dataset``, if any.

    Returns:
        ``{pool: (images, labels)}``: images uint8 ``N x C x H x W``, labels int64 ``N``.

    Raises:
        ChecksumError: a raw file is not the expected one.
        FileNotFoundError: the root was not prepared.
    """
    info = get_info(name)
    root = Path(root)
    if name in ("mnist", "mnist10k"):
        for rel, md5 in expected_files(name, checksums):
            _verify_mnist_file(root / rel, md5)
        files = MNIST_FILES if name == "mnist" else MNIST_TEST_PAIR
        reader = mnist_class(with_checksums(files, checksums))
        flags = {"train": True, "test": False} if name == "mnist" else {"all": False}
        pools = {}
        for pool, train in flags.items():
            ds = reader(root=str(root), train=train, download=False)
            pools[pool] = (ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64))
    elif name in ("cifar10", "cifar10_synthetic"):
        if name == "cifar10":
            for rel, md5 in expected_files(name, checksums):
                verify_md5(root / rel, md5)
            md5s = dict(with_checksums([*CIFAR10_FILES, CIFAR10_ARCHIVE], checksums))
        else:
            # Generated files have no published md5: only torchvision's integrity check is
            # bypassed; the reader is otherwise torchvision's CIFAR10.
            missing = [rel for rel, _ in expected_files(name) if not (root / rel).is_file()]
            if missing:
                raise FileNotFoundError(f"{root} lacks {missing}: run prepare_dataset first")
            md5s = {}
        reader = cifar10_class(md5s)
        pools = {}
        for pool, train in {"train": True, "test": False}.items():
            ds = reader(root=str(root), train=train, download=False)
            images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
            pools[pool] = (images, torch.as_tensor(ds.targets, dtype=torch.int64))
    else:  # a registry entry without a reader
        raise KeyError(f"no reader for dataset {name!r}")
    assert tuple(pools) == info.pools
    return pools


def _verify_mnist_file(gz_path: Path, md5: str) -> None:
    """Check a ``.gz`` against its md5 and the extracted file torchvision reads against it.

    torchvision's md5s are of the ``.gz`` files, but its reader opens the extracted file
    beside it; comparing the two ties what is read to what was verified.
    """
    verify_md5(gz_path, md5)
    extracted = gz_path.with_suffix("")
    if not extracted.is_file():
        raise FileNotFoundError(
            f"missing {extracted} (the extracted {gz_path.name}): run prepare_dataset first"
        )
    with gzip.open(gz_path, "rb") as f:
        same = f.read() == extracted.read_bytes()
    if not same:
        raise ChecksumError(f"{extracted} is not the content of the verified {gz_path.name}")
