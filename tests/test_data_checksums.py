"""Checksums: the embedded real files pass, a single flipped byte is caught everywhere."""

import shutil
from pathlib import Path

import pytest
from torchvision import datasets

from minima.data import (
    ChecksumError,
    embedded_mnist10k_dir,
    file_md5,
    load_pools,
    prepare_dataset,
    verify_md5,
    verify_sums_file,
)

EMBEDDED = embedded_mnist10k_dir()
# torchvision's published md5s of the official test pair (its MNIST.resources).
TORCHVISION_MD5 = dict(datasets.MNIST.resources)


def flip_byte(path: Path, offset: int = 1000) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_embedded_files_match_torchvision_and_sums_files():
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        verify_md5(EMBEDDED / name, TORCHVISION_MD5[name])
    assert TORCHVISION_MD5["t10k-images-idx3-ubyte.gz"] == "9fb629c4189551a2d022fa330f9573f3"
    assert TORCHVISION_MD5["t10k-labels-idx1-ubyte.gz"] == "ec29112dd5afa0611ce80d1b7f02629c"
    sha = verify_sums_file(EMBEDDED / "SHA256SUMS")
    md5 = verify_sums_file(EMBEDDED / "MD5SUMS")
    assert set(sha) == set(md5) == {"t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}
    assert md5 == {k: TORCHVISION_MD5[k] for k in md5}


def test_flipped_byte_is_detected(tmp_path):
    copy = tmp_path / "t10k-labels-idx1-ubyte.gz"
    shutil.copyfile(EMBEDDED / copy.name, copy)
    verify_md5(copy, TORCHVISION_MD5[copy.name])  # the intact copy passes
    flip_byte(copy, offset=100)
    assert file_md5(copy) != TORCHVISION_MD5[copy.name]
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte.gz"):
        verify_md5(copy, TORCHVISION_MD5[copy.name])
    with pytest.raises(FileNotFoundError):
        verify_md5(tmp_path / "absent.gz", TORCHVISION_MD5[copy.name])


def test_sums_file_detects_corruption(tmp_path):
    shutil.copytree(EMBEDDED, tmp_path / "emb")
    flip_byte(tmp_path / "emb" / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz"):
        verify_sums_file(tmp_path / "emb" / "SHA256SUMS")
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz"):
        verify_sums_file(tmp_path / "emb" / "MD5SUMS")


def test_prepare_refuses_a_corrupted_embedded_sample(tmp_path):
    shutil.copytree(EMBEDDED, tmp_path / "emb")
    flip_byte(tmp_path / "emb" / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz"):
        prepare_dataset("mnist10k", tmp_path / "out", embedded_dir=tmp_path / "emb")
    assert not (tmp_path / "out" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz").exists()


def test_load_pools_verifies_gz_and_extracted_files(tmp_path):
    root = tmp_path / "m10k"
    prepare_dataset("mnist10k", root)
    raw = root / "MNIST" / "raw"
    load_pools("mnist10k", root)  # intact: loads

    # The extracted file torchvision reads must be the content of the verified .gz.
    extracted = raw / "t10k-labels-idx1-ubyte"
    original = extracted.read_bytes()
    flip_byte(extracted, offset=20)
    with pytest.raises(ChecksumError, match="t10k-labels-idx1-ubyte"):
        load_pools("mnist10k", root)
    extracted.write_bytes(original)

    flip_byte(raw / "t10k-images-idx3-ubyte.gz")
    with pytest.raises(ChecksumError, match="t10k-images-idx3-ubyte.gz"):
        load_pools("mnist10k", root)
