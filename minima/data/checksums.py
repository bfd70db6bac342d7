"""Checksums of raw data files: every file a run reads is verified first.

torchvision ships an md5 per raw file (``MNIST.resources``, ``CIFAR10.train_list`` ...);
the embedded ``mnist10k`` sample also carries ``SHA256SUMS`` in ``sha256sum`` format.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from torchvision.datasets.utils import calculate_md5


class ChecksumError(RuntimeError):
    """A raw data file exists but its content is not the expected one."""


def file_md5(path: str | Path) -> str:
    """md5 hex digest of a file, computed by torchvision's own helper."""
    return calculate_md5(Path(path))


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: str | Path, expected: str) -> None:
    """Raise :class:`ChecksumError` naming ``path`` unless its md5 is ``expected``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ChecksumError: the file differs from the expected one (corrupted or another file).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"missing data file: {path}")
    actual = file_md5(path)
    if actual != expected:
        raise ChecksumError(
            f"checksum mismatch for {path}: expected md5 {expected}, got {actual} "
            "(the file is corrupted or is not the expected file; delete it and fetch it again)"
        )


def read_sums_file(path: str | Path) -> dict[str, str]:
    """Parse a ``sha256sum``/``md5sum`` style list into ``{file name: hex digest}``."""
    sums = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        digest, name = line.split(maxsplit=1)
        sums[name.lstrip("*")] = digest.lower()
    return sums


def verify_sums_file(sums_file: str | Path) -> dict[str, str]:
    """Verify every file listed in a ``SHA256SUMS`` or ``MD5SUMS`` file beside it.

    The algorithm is taken from the digest length (32 hex digits: md5, 64: sha256).

    Returns:
        The verified ``{file name: digest}`` list.

    Raises:
        FileNotFoundError: a listed file is missing.
        ChecksumError: a listed file has another digest.
    """
    sums_file = Path(sums_file)
    sums = read_sums_file(sums_file)
    for name, expected in sums.items():
        path = sums_file.parent / name
        if not path.is_file():
            raise FileNotFoundError(f"{sums_file} lists {name}, which is missing")
        if len(expected) == 32:
            actual = file_md5(path)
        elif len(expected) == 64:
            actual = file_sha256(path)
        else:
            raise ValueError(f"{sums_file}: cannot tell the algorithm of digest {expected!r}")
        if actual != expected:
            raise ChecksumError(
                f"checksum mismatch for {path}: {sums_file.name} says {expected}, got {actual}"
            )
    return sums
