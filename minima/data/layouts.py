"""torchvision's on-disk layouts, file lists and checksums, and its reader classes.

Everything is taken from torchvision's own dataset classes, so the files, md5s and mirrors
are exactly the ones torchvision downloads and checks. A ``checksums`` override (file name
-> md5) replaces entries of those lists; it exists for tests and for re-packed files on a
private mirror, and every manifest records that it was used.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from torchvision import datasets

#: Folder of the MNIST raw files below a root, as torchvision's ``MNIST.raw_folder``.
MNIST_RAW_DIR = "MNIST/raw"
#: ``(file name, md5)`` of the four official MNIST files (torchvision's ``MNIST.resources``).
MNIST_FILES: tuple[tuple[str, str], ...] = tuple((f, md5) for f, md5 in datasets.MNIST.resources)
#: The official test pair: the embedded ``mnist10k`` sample.
MNIST_TEST_PAIR: tuple[tuple[str, str], ...] = tuple(r for r in MNIST_FILES if r[0][:4] == "t10k")
#: Base URLs torchvision downloads MNIST from.
MNIST_MIRRORS: tuple[str, ...] = tuple(datasets.MNIST.mirrors)

#: Folder of the extracted CIFAR-10 batches below a root (torchvision's ``base_folder``).
CIFAR10_DIR: str = datasets.CIFAR10.base_folder
#: ``(file name, md5)`` of the archive torchvision downloads.
CIFAR10_ARCHIVE: tuple[str, str] = (datasets.CIFAR10.filename, datasets.CIFAR10.tgz_md5)
#: ``(file name, md5)`` of the extracted files torchvision reads and checks.
CIFAR10_FILES: tuple[tuple[str, str], ...] = tuple(
    [(f, md5) for f, md5 in datasets.CIFAR10.train_list + datasets.CIFAR10.test_list]
    + [(datasets.CIFAR10.meta["filename"], datasets.CIFAR10.meta["md5"])]
)
#: Base URL torchvision downloads CIFAR-10 from.
CIFAR10_MIRRORS: tuple[str, ...] = (datasets.CIFAR10.url.rsplit("/", 1)[0] + "/",)


def with_checksums(
    files: Iterable[tuple[str, str]], checksums: Mapping[str, str] | None
) -> list[tuple[str, str]]:
    """Replace the md5 of the files named in ``checksums`` (file name -> md5)."""
    checksums = dict(checksums or {})
    return [(name, checksums.get(name, md5)) for name, md5 in files]


def expected_files(name: str, checksums: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """``(path relative to the root, md5)`` of the raw files a prepared root must hold.

    For MNIST these are the ``.gz`` files (torchvision's md5s are of those; the extracted
    files beside them are checked against them on load). For CIFAR-10 these are the
    extracted batch files torchvision itself checks. ``cifar10_synthetic`` has no
    published checksums (its files are generated), so its md5s are ``""``.
    """
    if name == "mnist":
        return [(f"{MNIST_RAW_DIR}/{f}", md5) for f, md5 in with_checksums(MNIST_FILES, checksums)]
    if name == "mnist10k":
        pair = with_checksums(MNIST_TEST_PAIR, checksums)
        return [(f"{MNIST_RAW_DIR}/{f}", md5) for f, md5 in pair]
    if name == "cifar10":
        return [(f"{CIFAR10_DIR}/{f}", md5) for f, md5 in with_checksums(CIFAR10_FILES, checksums)]
    if name == "cifar10_synthetic":
        return [(f"{CIFAR10_DIR}/{f}", "") for f, _ in CIFAR10_FILES]
    raise KeyError(f"no file layout for dataset {name!r}")


def mnist_class(
    resources: Iterable[tuple[str, str]], mirrors: Iterable[str] = ()
) -> type[datasets.MNIST]:
    """torchvision's ``MNIST`` with its file list and mirrors replaced.

    The subclass keeps the name ``MNIST``, so files stay in ``<root>/MNIST/raw`` and all of
    torchvision's download, md5-check and reading code runs unchanged. With only the test
    pair as resources it reads the embedded ``mnist10k`` sample (``train=False``).
    """
    attrs = {"resources": [list(r) for r in resources], "mirrors": list(mirrors)}
    return type("MNIST", (datasets.MNIST,), attrs)


def cifar10_class(
    md5s: Mapping[str, str | None], *, url: str | None = None
) -> type[datasets.CIFAR10]:
    """torchvision's ``CIFAR10`` with its md5 list (and optionally its URL) replaced.

    Args:
        md5s: file name -> md5 for the batch files, ``batches.meta`` and the archive;
            ``None`` skips torchvision's integrity check for that file (only for
            ``cifar10_synthetic``, whose files are generated).
        url: Full URL of the archive (a mirror); default torchvision's.
    """
    base = datasets.CIFAR10
    attrs = {
        "train_list": [[f, md5s.get(f)] for f, _ in base.train_list],
        "test_list": [[f, md5s.get(f)] for f, _ in base.test_list],
        "meta": {**base.meta, "md5": md5s.get(base.meta["filename"])},
        "tgz_md5": md5s.get(base.filename),
        "url": url or base.url,
    }
    return type("CIFAR10", (base,), attrs)
