"""Datasets: raw files (verified), pools, seeded splits, normalization, device batches.

Flow: :func:`prepare_dataset` makes the raw files available in torchvision's layout
(from ``data_root``, a download, the embedded ``mnist10k`` sample or generated
``cifar10_synthetic`` files); :func:`load_pools` reads them with torchvision's classes;
:func:`make_split` draws seeded index arrays; :func:`channel_stats` and
:class:`DeviceData` put a part on the device once, normalized; :func:`random_flip_crop`
is E4's augmentation.
"""

from .augment import random_flip_crop
from .checksums import ChecksumError, file_md5, file_sha256, verify_md5, verify_sums_file
from .device import DeviceData, epoch_batches
from .fetch import DatasetUnavailableError
from .manifest import manifest_root, write_manifest
from .normalization import channel_stats, normalize
from .pools import load_pools
from .prepare import embedded_mnist10k_dir, prepare_dataset
from .registry import DATASETS, DatasetInfo, get_info
from .split import Split, load_split, load_split_stats, make_split, pool_permutation, save_split
from .split_job import write_split
from .synthetic import write_synthetic_cifar10

__all__ = [
    "DATASETS",
    "ChecksumError",
    "DatasetInfo",
    "DatasetUnavailableError",
    "DeviceData",
    "Split",
    "channel_stats",
    "embedded_mnist10k_dir",
    "epoch_batches",
    "file_md5",
    "file_sha256",
    "get_info",
    "load_pools",
    "load_split",
    "load_split_stats",
    "make_split",
    "manifest_root",
    "normalize",
    "pool_permutation",
    "prepare_dataset",
    "random_flip_crop",
    "save_split",
    "verify_md5",
    "verify_sums_file",
    "write_manifest",
    "write_split",
    "write_synthetic_cifar10",
]
