"""prepare_dataset: data_root, file:// and http mirrors through torchvision, fail-fast offline.

No test touches the internet: the MNIST train pair is generated (with the md5 list
overridden through ``checksums=``), CIFAR-10 is ``write_synthetic_cifar10`` output, and
the http mirror is a server on 127.0.0.1.
"""

import gzip
import shutil
import socket
import tarfile
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from minima.data import (
    ChecksumError,
    DatasetUnavailableError,
    embedded_mnist10k_dir,
    file_md5,
    load_pools,
    manifest_root,
    prepare_dataset,
    write_manifest,
    write_synthetic_cifar10,
)
from minima.io import read_json

TRAIN_PAIR = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz")
TEST_PAIR = ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
CIFAR_FILES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch", "batches.meta"]


def write_idx_gz(path, array, magic):
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(gzip.compress(header + array.tobytes(), mtime=0))


def fill_mnist_folder(folder, n_train=50, seed=0):
    """The four MNIST files: the real test pair, a generated train pair. Returns md5 override."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in TEST_PAIR:
        shutil.copyfile(embedded_mnist10k_dir() / name, folder / name)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n_train, dtype=np.uint8)
    write_idx_gz(folder / TRAIN_PAIR[0], images, 0x0803)
    write_idx_gz(folder / TRAIN_PAIR[1], labels, 0x0801)
    return {name: file_md5(folder / name) for name in TRAIN_PAIR}, images, labels


def cifar_archive(tmp_path, n_train=50, n_test=20):
    """Synthetic CIFAR files, their tar.gz as torchvision downloads it, and an md5 override."""
    src = tmp_path / "cifar_src"
    write_synthetic_cifar10(src, n_train=n_train, n_test=n_test, seed=1)
    archive = tmp_path / "cifar_archive" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    checksums = {f: file_md5(src / "cifar-10-batches-py" / f) for f in CIFAR_FILES}
    checksums[archive.name] = file_md5(archive)
    return src, archive, checksums


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("this test must not open a network connection")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture
def http_mirror(tmp_path, monkeypatch):
    """A local http server; yields (base URL, served folder, list of requested paths)."""
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    served = tmp_path / "www"
    served.mkdir()
    requested = []

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/", served, requested
    server.shutdown()
    server.server_close()


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- data_root: verify, copy, never download -------------------------------------------


def test_mnist_from_data_root_verifies_and_does_not_download(tmp_path, no_network):
    data_root = tmp_path / "data_root"
    checksums, images, labels = fill_mnist_folder(data_root / "MNIST" / "raw")
    out = tmp_path / "out"
    manifest = prepare_dataset("mnist", out, data_root=data_root, checksums=checksums)
    assert manifest["source"] == "data_root" and manifest["data_root"] == str(data_root)
    assert manifest["pools"] == {"train": 50, "test": 10000}
    assert "overridden" in manifest["checksums"]
    files = {f["path"]: f["md5"] for f in manifest["files"]}
    assert files["MNIST/raw/t10k-images-idx3-ubyte.gz"] == "9fb629c4189551a2d022fa330f9573f3"
    pools = load_pools("mnist", out, checksums=checksums)
    np.testing.assert_array_equal(pools["train"][0][:, 0].numpy(), images)
    np.testing.assert_array_equal(pools["train"][1].numpy(), labels)
    assert pools["test"][0].shape == (10000, 1, 28, 28)


def test_data_root_with_wrong_files_fails_on_checksum(tmp_path, no_network):
    data_root = tmp_path / "data_root"
    fill_mnist_folder(data_root / "MNIST" / "raw")
    # without the override, torchvision's md5 of the real train images applies
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte.gz"):
        prepare_dataset("mnist", tmp_path / "out", data_root=data_root)


def test_data_root_missing_a_file_fails_fast_and_says_what_is_missing(tmp_path, no_network):
    data_root = tmp_path / "data_root"
    checksums, _, _ = fill_mnist_folder(data_root / "MNIST" / "raw")
    (data_root / "MNIST" / "raw" / TRAIN_PAIR[1]).unlink()
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as err:
        prepare_dataset("mnist", tmp_path / "out", data_root=data_root, checksums=checksums)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "'mnist'" in message and "data_root" in message and str(data_root) in message
    assert "lacks train-labels-idx1-ubyte.gz" in message


def test_cifar10_from_data_root_batches_or_archive(tmp_path, no_network):
    src, archive, checksums = cifar_archive(tmp_path)
    manifest = prepare_dataset("cifar10", tmp_path / "a", data_root=src, checksums=checksums)
    assert manifest["source"] == "data_root" and manifest["pools"] == {"train": 50, "test": 20}
    manifest = prepare_dataset(
        "cifar10", tmp_path / "b", data_root=archive.parent, checksums=checksums
    )
    assert manifest["pools"] == {"train": 50, "test": 20}
    a = load_pools("cifar10", tmp_path / "a", checksums=checksums)
    b = load_pools("cifar10", tmp_path / "b", checksums=checksums)
    assert torch.equal(a["train"][0], b["train"][0]) and torch.equal(a["test"][1], b["test"][1])
    # real CIFAR-10 checksums refuse generated files
    with pytest.raises(ChecksumError, match="data_batch_1"):
        prepare_dataset("cifar10", tmp_path / "c", data_root=src)


# --- downloads through torchvision's code ------------------------------------------------


def test_mnist_download_from_file_mirror(tmp_path, no_network):
    mirror = tmp_path / "mirror"
    checksums, images, _ = fill_mnist_folder(mirror)
    out = tmp_path / "out"
    manifest = prepare_dataset("mnist", out, mirrors=[mirror.as_uri()], checksums=checksums)
    assert manifest["source"] == "download" and manifest["mirrors"] == [mirror.as_uri() + "/"]
    pools = load_pools("mnist", out, checksums=checksums)
    np.testing.assert_array_equal(pools["train"][0][:, 0].numpy(), images)
    # a second call finds the verified files and needs neither network nor downloads
    again = prepare_dataset("mnist", out, download=False, checksums=checksums)
    assert again["cached"] and again["files"] == manifest["files"]


def test_corrupted_file_on_file_mirror_is_refused(tmp_path, no_network):
    mirror = tmp_path / "mirror"
    checksums, _, _ = fill_mnist_folder(mirror)
    data = bytearray((mirror / TEST_PAIR[1]).read_bytes())
    data[200] ^= 0x01
    (mirror / TEST_PAIR[1]).write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        prepare_dataset("mnist", tmp_path / "out", mirrors=[mirror.as_uri()], checksums=checksums)


def test_mnist_download_over_http_uses_torchvision_downloader(tmp_path, http_mirror):
    url, served, requested = http_mirror
    checksums, images, labels = fill_mnist_folder(served)
    out = tmp_path / "out"
    manifest = prepare_dataset("mnist", out, mirrors=[url], checksums=checksums)
    assert manifest["mirrors"] == [url]
    assert {p.lstrip("/") for p in requested} == set(TRAIN_PAIR + TEST_PAIR)
    pools = load_pools("mnist", out, checksums=checksums)
    np.testing.assert_array_equal(pools["train"][1].numpy(), labels)


def test_http_download_with_wrong_md5_fails_in_torchvision(tmp_path, http_mirror):
    url, served, _ = http_mirror
    checksums, _, _ = fill_mnist_folder(served)
    checksums[TRAIN_PAIR[0]] = "0" * 32  # the served file cannot match this
    with pytest.raises(DatasetUnavailableError, match="downloading failed"):
        prepare_dataset("mnist", tmp_path / "out", mirrors=[url], checksums=checksums)


def test_cifar10_download_over_file_and_http_mirrors(tmp_path, http_mirror):
    url, served, requested = http_mirror
    _, archive, checksums = cifar_archive(tmp_path)
    shutil.copyfile(archive, served / archive.name)
    by_http = prepare_dataset("cifar10", tmp_path / "h", mirrors=[url], checksums=checksums)
    assert f"/{archive.name}" in requested
    by_file = prepare_dataset(
        "cifar10", tmp_path / "f", mirrors=[archive.parent.as_uri()], checksums=checksums
    )
    assert by_http["files"] == by_file["files"]
    assert by_http["pools"] == {"train": 50, "test": 20}


# --- offline: fail fast with a useful message --------------------------------------------


def test_downloads_disabled_fails_fast_naming_dataset_key_and_files(tmp_path, no_network):
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as err:
        prepare_dataset("mnist", tmp_path / "out", download=False)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "'mnist'" in message and "`data_root`" in message and "download" in message
    for name in TRAIN_PAIR + TEST_PAIR:
        assert f"<data_root>/MNIST/raw/{name}" in message


def test_unreachable_mirror_fails_fast(tmp_path):
    mirror = f"http://127.0.0.1:{closed_port()}/"  # connection refused
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError) as err:
        prepare_dataset("cifar10", tmp_path / "out", mirrors=[mirror], connect_timeout=1.0)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "'cifar10'" in message and "no download mirror can be reached" in message
    assert mirror in message and "`data_root`" in message
    assert "<data_root>/cifar-10-batches-py/data_batch_1" in message
    assert "<data_root>/cifar-10-python.tar.gz" in message


def test_silent_or_wrong_mirrors_fail_fast(tmp_path, http_mirror):
    url, _, _ = http_mirror  # serves nothing: every file is a 404
    # 10.255.255.1 drops packets on most networks (or meets a proxy): either way, bounded
    mirrors = [url, "http://10.255.255.1/"]
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="no download mirror can be reached") as err:
        prepare_dataset("mnist", tmp_path / "out", mirrors=mirrors, connect_timeout=1.0)
    assert time.perf_counter() - start < 5
    assert f"{url}: HTTP 404" in str(err.value)


def test_missing_file_mirror_fails_fast(tmp_path, no_network):
    start = time.perf_counter()
    with pytest.raises(DatasetUnavailableError, match="does not exist"):
        prepare_dataset("mnist", tmp_path / "out", mirrors=[(tmp_path / "nowhere").as_uri()])
    assert time.perf_counter() - start < 5


def test_manifest_root_survives_a_move_and_another_working_directory(tmp_path, monkeypatch):
    """A results tree read from elsewhere (a test at the repo root, a copy on a cluster)."""
    folder = tmp_path / "results" / "data" / "mnist10k"
    raw = folder / "raw"
    raw.mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    write_manifest(
        Path("results/data/mnist10k/manifest.json"), {"root": "results/data/mnist10k/raw"}
    )
    assert read_json(folder / "manifest.json")["root"] == "raw"
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "results", moved)
    monkeypatch.chdir(moved / "data")
    assert manifest_root(moved / "data" / "mnist10k" / "manifest.json").resolve() == (
        moved / "data" / "mnist10k" / "raw"
    )


def test_manifest_root_outside_the_results_tree_is_kept_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shared").mkdir()
    write_manifest(tmp_path / "results" / "manifest.json", {"root": "shared"})
    assert manifest_root(tmp_path / "results" / "manifest.json") == tmp_path / "shared"
