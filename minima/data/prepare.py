"""``prepare_dataset``: make one dataset's raw files available, verified, in one folder.

One step per dataset. The files end up in ``out_dir`` in torchvision's layout, whatever
their source:

- ``data_root``: files already on disk in torchvision's layout are md5-checked and
  copied; nothing is downloaded.
- download: torchvision's own downloader and md5 checks, from its mirrors or from the
  ``mirrors`` given (https:// or file://). Offline, this fails within seconds with a
  message naming the dataset, the config key ``data_root`` and the files expected.
- embedded: ``mnist10k``, the official MNIST test pair shipped in ``resources/mnist10k``.
- generated: ``cifar10_synthetic`` (see :mod:`minima.data.synthetic`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torchvision

from .checksums import file_md5, verify_md5, verify_sums_file
from .fetch import (
    DatasetUnavailableError,
    copy_verified,
    probe_mirrors,
    socket_timeout,
    stage_from_file_mirrors,
    unavailable_message,
)
from .layouts import (
    CIFAR10_ARCHIVE,
    CIFAR10_DIR,
    CIFAR10_FILES,
    CIFAR10_MIRRORS,
    MNIST_FILES,
    MNIST_MIRRORS,
    MNIST_RAW_DIR,
    MNIST_TEST_PAIR,
    cifar10_class,
    expected_files,
    mnist_class,
    with_checksums,
)
from .pools import load_pools
from .registry import get_info
from .synthetic import write_synthetic_cifar10

#: Defaults of ``cifar10_synthetic`` (config overrides them through ``synthetic=``).
SYNTHETIC_DEFAULTS = {"n_train": 5000, "n_test": 1000, "seed": 0}


def embedded_mnist10k_dir() -> Path:
    """The repository's ``resources/mnist10k`` folder (found relative to this package).

    Rule scripts pass the folder explicitly (``embedded_dir=``) so Snakemake tracks it;
    this default serves tests and interactive use from a source checkout.
    """
    return Path(__file__).resolve().parents[2] / "resources" / "mnist10k"


def prepare_dataset(
    name: str,
    out_dir: str | Path,
    *,
    data_root: str | Path | None = None,
    download: bool = True,
    mirrors: Sequence[str] | None = None,
    synthetic: Mapping[str, int] | None = None,
    embedded_dir: str | Path | None = None,
    checksums: Mapping[str, str] | None = None,
    connect_timeout: float = 3.0,
    read_timeout: float = 60.0,
) -> dict[str, Any]:
    """Make the raw files of ``name`` available and verified in ``out_dir``.

    Args:
        name: A name from :data:`minima.data.DATASETS`.
        out_dir: Folder to fill in torchvision's layout; pass it to
            :func:`minima.data.load_pools` afterwards.
        data_root: Folder holding the raw files in torchvision's layout
            (``<data_root>/MNIST/raw/*.gz``, ``<data_root>/cifar-10-batches-py/*`` or
            ``<data_root>/cifar-10-python.tar.gz``). When given, nothing is downloaded.
            Ignored by ``mnist10k`` and ``cifar10_synthetic``.
        download: Whether to download when ``data_root`` is not given.
        mirrors: Base URLs to download from instead of torchvision's (an institutional
            mirror, or ``file:///path/`` of a folder with the files).
        synthetic: ``n_train``, ``n_test``, ``seed`` for ``cifar10_synthetic``.
        embedded_dir: Where the ``mnist10k`` pair lives (default
            :func:`embedded_mnist10k_dir`).
        checksums: File name -> md5 overriding torchvision's list (for tests and for
            re-packed files on a private mirror); the manifest records its use.
        connect_timeout: Seconds to wait for the mirrors to answer a probe before failing.
        read_timeout: Socket timeout during a download, so a stalled one fails.

    Returns:
        A JSON-able manifest: dataset, root, source (``"data_root"``, ``"download"``,
        ``"embedded"`` or ``"generated"``), files with md5 and size, pool sizes, which
        checksums were used, torchvision's version.

    Raises:
        DatasetUnavailableError: the files are not on disk and cannot be downloaded now.
        ChecksumError: a file exists but is not the expected one.
    """
    info = get_info(name)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    extra: dict[str, Any] = {}
    if name == "cifar10_synthetic":
        params = {**SYNTHETIC_DEFAULTS, **dict(synthetic or {})}
        write_synthetic_cifar10(out_dir, **params)
        source, extra["synthetic"] = "generated", params
    elif name == "mnist10k":
        src = Path(embedded_dir) if embedded_dir is not None else embedded_mnist10k_dir()
        extra["embedded_sha256"] = _stage_embedded(src, out_dir, checksums)
        source, extra["embedded_dir"] = "embedded", str(src)
    elif data_root is not None:
        _stage_data_root(name, Path(data_root), out_dir, checksums)
        source, extra["data_root"] = "data_root", str(data_root)
    else:
        source = "download"
        extra.update(
            _download(name, out_dir, download, mirrors, checksums, connect_timeout, read_timeout)
        )
    pools = load_pools(name, out_dir, checksums=checksums)
    files = [
        {"path": rel, "md5": file_md5(out_dir / rel), "bytes": (out_dir / rel).stat().st_size}
        for rel, _ in expected_files(name, checksums)
    ]
    if name == "cifar10_synthetic":
        used = "none: generated files, torchvision's md5 check bypassed"
    elif checksums:
        used = f"torchvision's md5 list, overridden for {sorted(checksums)}"
    else:
        used = "torchvision's md5 list"
    return {
        "dataset": name,
        "description": info.description,
        "root": str(out_dir),
        "source": source,
        "files": files,
        "checksums": used,
        "pools": {pool: int(labels.numel()) for pool, (_, labels) in pools.items()},
        "torchvision": torchvision.__version__,
        **extra,
    }


def _unavailable(
    name: str, reason: str, checksums: Mapping[str, str] | None
) -> DatasetUnavailableError:
    if name == "mnist":
        return DatasetUnavailableError(
            unavailable_message(name, reason, expected_files(name, checksums))
        )
    archive = with_checksums([CIFAR10_ARCHIVE], checksums)[0]
    message = unavailable_message(name, reason, expected_files(name, checksums), archive)
    return DatasetUnavailableError(message)


def _stage_embedded(src: Path, out_dir: Path, checksums: Mapping[str, str] | None) -> dict:
    """Verify the embedded pair (SHA256SUMS and torchvision's md5s), copy it, extract it."""
    sums_file = src / "SHA256SUMS"
    if not sums_file.is_file():
        raise FileNotFoundError(f"the embedded mnist10k sample is incomplete: no {sums_file}")
    sha256 = verify_sums_file(sums_file)
    pair = with_checksums(MNIST_TEST_PAIR, checksums)
    for filename, md5 in pair:
        if filename not in sha256:
            raise FileNotFoundError(f"{sums_file} does not list {filename}")
        _ensure_copy(src / filename, out_dir / MNIST_RAW_DIR / filename, md5)
    _mnist_extract(pair, out_dir, [src.as_uri() + "/"])
    return {f: sha256[f] for f, _ in pair}


def _stage_data_root(
    name: str, data_root: Path, out_dir: Path, checksums: Mapping[str, str] | None
) -> None:
    """Copy verified raw files from ``data_root`` (torchvision's layout); never download."""
    if name == "mnist":
        files = with_checksums(MNIST_FILES, checksums)
        src_dir = data_root / MNIST_RAW_DIR
        missing = [f for f, _ in files if not (src_dir / f).is_file()]
        if missing:
            reason = f"data_root {data_root} lacks {', '.join(missing)} in {MNIST_RAW_DIR}/"
            raise _unavailable(name, reason, checksums)
        for filename, md5 in files:
            _ensure_copy(src_dir / filename, out_dir / MNIST_RAW_DIR / filename, md5)
        _mnist_extract(files, out_dir, [src_dir.as_uri() + "/"])
    elif name == "cifar10":
        files = with_checksums(CIFAR10_FILES, checksums)
        archive, archive_md5 = with_checksums([CIFAR10_ARCHIVE], checksums)[0]
        src_dir = data_root / CIFAR10_DIR
        if all((src_dir / f).is_file() for f, _ in files):
            for filename, md5 in files:
                _ensure_copy(src_dir / filename, out_dir / CIFAR10_DIR / filename, md5)
        elif (data_root / archive).is_file():
            _ensure_copy(data_root / archive, out_dir / archive, archive_md5)
            md5s = dict([*files, (archive, archive_md5)])
            # torchvision finds the verified archive present and extracts it.
            cifar10_class(md5s)(root=str(out_dir), train=False, download=True)
        else:
            reason = f"data_root {data_root} holds neither {CIFAR10_DIR}/ complete nor {archive}"
            raise _unavailable(name, reason, checksums)
    else:
        raise KeyError(f"dataset {name!r} takes no data_root")


def _download(
    name: str,
    out_dir: Path,
    download: bool,
    mirrors: Sequence[str] | None,
    checksums: Mapping[str, str] | None,
    connect_timeout: float,
    read_timeout: float,
) -> dict[str, Any]:
    """Download with torchvision's code, failing fast when no mirror can be reached."""
    if name == "mnist":
        files = with_checksums(MNIST_FILES, checksums)
        folder, default_mirrors = out_dir / MNIST_RAW_DIR, MNIST_MIRRORS
    elif name == "cifar10":
        files = with_checksums([CIFAR10_ARCHIVE], checksums)
        folder, default_mirrors = out_dir, CIFAR10_MIRRORS
    else:
        raise KeyError(f"dataset {name!r} cannot be downloaded")
    if _already_prepared(name, out_dir, checksums):
        return {"cached": True}
    if not download:
        reason = "no data_root is set and downloads are disabled (download: false)"
        raise _unavailable(name, reason, checksums)
    mirrors = [m if m.endswith("/") else m + "/" for m in (mirrors or default_mirrors)]
    reachable, problems = probe_mirrors(mirrors, files[0][0], connect_timeout)
    if not reachable:
        reason = (
            "no data_root is set and no download mirror can be reached ("
            + "; ".join(problems)
            + ")"
        )
        raise _unavailable(name, reason, checksums)
    stage_from_file_mirrors(reachable, files, folder)
    errors = []
    with socket_timeout(read_timeout):
        if name == "mnist":
            try:
                _mnist_extract(files, out_dir, reachable)
            except (RuntimeError, OSError) as err:
                errors.append(str(err))
        else:
            md5s = dict([*with_checksums(CIFAR10_FILES, checksums), *files])
            for mirror in reachable:
                try:
                    cifar10_class(md5s, url=mirror + CIFAR10_ARCHIVE[0])(
                        root=str(out_dir), train=False, download=True
                    )
                    errors = []
                    break
                except (RuntimeError, OSError) as err:
                    errors.append(f"{mirror}: {err}")
    if errors:
        reason = "downloading failed: " + " | ".join(errors)
        raise _unavailable(name, reason, checksums)
    return {"mirrors": reachable}


def _already_prepared(name: str, out_dir: Path, checksums: Mapping[str, str] | None) -> bool:
    """Whether an earlier call left every raw file (and MNIST's extracted ones) in place."""
    for rel, md5 in expected_files(name, checksums):
        path = out_dir / rel
        if not path.is_file() or file_md5(path) != md5:
            return False
        if name == "mnist" and not path.with_suffix("").is_file():
            return False
    return True


def _ensure_copy(src: Path, dest: Path, md5: str) -> None:
    """Copy ``src`` to ``dest`` md5-checked, unless ``dest`` already has that md5."""
    verify_md5(src, md5)  # a corrupted source is reported under its own name
    if not (dest.is_file() and file_md5(dest) == md5):
        copy_verified(src, dest, md5)


def _mnist_extract(
    files: Sequence[tuple[str, str]], out_dir: Path, mirrors: Sequence[str], *, train: bool = False
) -> None:
    """Run torchvision's ``MNIST.download`` in ``out_dir``: check, fetch missing, extract.

    Present ``.gz`` files are md5-checked, missing ones fetched from ``mirrors``.

    Stale extracted files are removed first: torchvision skips everything when they exist.
    """
    for filename, _ in files:
        (out_dir / MNIST_RAW_DIR / filename).with_suffix("").unlink(missing_ok=True)
    mnist_class(files, mirrors)(root=str(out_dir), train=train, download=True)
