"""Datasets: raw files (verified), pools, seeded splits, normalization, device batches.

Flow: :func:`prepare_dataset` makes the raw files available in torchvision's layout
(from ``data_root``, a download, the embedded ``mnist10k`` sample or generated
``cifar10_synthetic`` files); :func:`load_pools` reads them with torchvision's classes;
:func:`make_split` draws seeded index arrays; :func:`channel_stats` and
:class:`DeviceData` put a part on the device once, normalized; :func:`random_flip_crop`
is E4's augmentation.

The names load on first use (PEP 562): importing ``minima.data.registry`` (the start-up
checks, at every Snakemake invocation) must not pull in torch and torchvision, which cost
seconds per invocation.
"""

from __future__ import annotations

import importlib
from typing import Any

_SOURCES = {
    "random_flip_crop": "augment",
    "ChecksumError": "checksums",
    "file_md5": "checksums",
    "file_sha256": "checksums",
    "verify_md5": "checksums",
    "verify_sums_file": "checksums",
    "DeviceData": "device",
    "epoch_batches": "device",
    "DatasetUnavailableError": "fetch",
    "manifest_root": "manifest",
    "write_manifest": "manifest",
    "channel_stats": "normalization",
    "normalize": "normalization",
    "load_pools": "pools",
    "embedded_mnist10k_dir": "prepare",
    "prepare_dataset": "prepare",
    "DATASETS": "registry",
    "DatasetInfo": "registry",
    "get_info": "registry",
    "Split": "split",
    "load_split": "split",
    "load_split_stats": "split",
    "make_split": "split",
    "pool_permutation": "split",
    "save_split": "split",
    "write_split": "split_job",
    "write_synthetic_cifar10": "synthetic",
}
__all__ = sorted(_SOURCES)


def __getattr__(name: str) -> Any:
    try:
        module = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_SOURCES))
