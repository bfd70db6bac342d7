"""Registry of the datasets the workflow can name in config.

A dataset is looked up by name, so config says ``dataset: mnist10k`` and a new dataset is
one entry here plus its file layout in :mod:`minima.data.layouts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DatasetInfo:
    """What the rest of the library needs to know about a dataset.

    Attributes:
        name: The config name.
        channels: Image channels (1 for MNIST, 3 for CIFAR-10).
        image_size: Height = width in pixels.
        num_classes: Number of labels.
        pools: The raw pools of images: ``("train", "test")`` where the dataset ships an
            official test set, ``("all",)`` where a single pool is re-split.
        needs_download: Whether the raw files must come from outside the repository
            (``data_root``, a mirror or torchvision's download).
        description: One honest line for captions and metadata.
    """

    name: str
    channels: int
    image_size: int
    num_classes: int
    pools: tuple[str, ...]
    needs_download: bool
    description: str


DATASETS: dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        name="mnist",
        channels=1,
        image_size=28,
        num_classes=10,
        pools=("train", "test"),
        needs_download=True,
        description="MNIST, 60,000 training and 10,000 test images (torchvision, md5-checked)",
    ),
    "mnist10k": DatasetInfo(
        name="mnist10k",
        channels=1,
        image_size=28,
        num_classes=10,
        pools=("all",),
        needs_download=False,
        description=(
            "mnist10k: the 10,000 official MNIST test images embedded in the repository, "
            "re-split into train/val/test (a sample, not full MNIST)"
        ),
    ),
    "cifar10": DatasetInfo(
        name="cifar10",
        channels=3,
        image_size=32,
        num_classes=10,
        pools=("train", "test"),
        needs_download=True,
        description="CIFAR-10, 50,000 training and 10,000 test images (torchvision, md5-checked)",
    ),
    "cifar10_synthetic": DatasetInfo(
        name="cifar10_synthetic",
        channels=3,
        image_size=32,
        num_classes=10,
        pools=("train", "test"),
        needs_download=False,
        description=(
            "cifar10_synthetic: generated 32x32 colour images in CIFAR-10's on-disk format "
            "(class-dependent colour and stripes plus noise), NOT CIFAR-10"
        ),
    ),
}


def get_info(name: str) -> DatasetInfo:
    """Return the registry entry for ``name``; unknown names list the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        known = ", ".join(sorted(DATASETS))
        raise KeyError(f"unknown dataset {name!r}; known datasets: {known}") from None


# Images in each raw pool (known without reading the data; the download checks the files'
# md5s). cifar10_synthetic's come from config synthetic_cifar10.
POOL_SIZES: dict[str, dict[str, int]] = {
    "mnist": {"train": 60000, "test": 10000},
    "mnist10k": {"all": 10000},
    "cifar10": {"train": 50000, "test": 10000},
}


def pool_sizes(name: str, synthetic: Mapping[str, Any] | None = None) -> dict[str, int]:
    """``{pool: images}`` of a dataset (``synthetic``: config synthetic_cifar10)."""
    if name == "cifar10_synthetic":
        if synthetic is None:
            raise ValueError("cifar10_synthetic's pool sizes come from config synthetic_cifar10")
        return {"train": int(synthetic["n_train"]), "test": int(synthetic["n_test"])}
    return dict(POOL_SIZES[name])
