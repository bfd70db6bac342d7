"""``cifar10_synthetic``: generated images in CIFAR-10's exact on-disk format.

CIFAR-10 cannot be downloaded everywhere (not on an offline machine, not in CI), yet its
code path (torchvision's ``CIFAR10`` reader, 3-channel models, E4's augmentation) must
run and be tested. These files have the layout and pickle format of the real
``cifar-10-python.tar.gz`` contents, so torchvision reads them with only its md5 check
bypassed. The images are NOT CIFAR-10: each class has its own mean colour and stripe
pattern (horizontal or vertical, a class-dependent frequency, random phase), plus colour
jitter and pixel noise, so a network can learn something but results mean nothing about
CIFAR-10.
"""

from __future__ import annotations

import colorsys
import io
import pickle
import struct
from pathlib import Path

import numpy as np

from .layouts import CIFAR10_DIR

#: CIFAR-10's class names, in label order (written to ``batches.meta`` like the original).
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
_SIZE = 32
_N_TRAIN_BATCHES = 5


class _Py2StrPickler(pickle._Pickler):
    """Protocol-2 pickler that writes ``bytes`` as Python 2 ``str`` (BINSTRING opcodes).

    The original CIFAR-10 batches were pickled by Python 2, so their strings load as
    ``str`` with ``encoding="latin1"`` (torchvision's way, keys ``"data"``) and as
    ``bytes`` with ``encoding="bytes"`` (the dataset page's way, keys ``b"data"``).
    Writing ``bytes`` this way reproduces both behaviours, numpy arrays included.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _dump(obj: object, path: Path) -> None:
    buf = io.BytesIO()
    _Py2StrPickler(buf, protocol=2).dump(obj)
    path.write_bytes(buf.getvalue())


def _class_palette() -> np.ndarray:
    """One mean colour per class (10 hues), shape (10, 3), values in [0, 1]."""
    return np.array([colorsys.hsv_to_rgb(c / 10, 0.6, 0.75) for c in range(10)])


def synthetic_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Images for ``labels``: uint8, shape ``(N, 3, 32, 32)``.

    Class ``c`` has mean colour ``palette[c]`` and stripes of ``1 + c // 2`` cycles per
    image, horizontal for even ``c`` and vertical for odd ``c`` (so a horizontal flip keeps
    the class, as E4's augmentation assumes). Per image: random phase, colour jitter
    (sd 0.1) and pixel noise (sd 0.15), on a [0, 1] scale.
    """
    n = len(labels)
    palette = _class_palette()
    coords = np.arange(_SIZE) / _SIZE
    freq = 1 + labels // 2
    phase = rng.uniform(0, 2 * np.pi, size=n)
    wave = np.sin(2 * np.pi * freq[:, None] * coords[None, :] + phase[:, None])  # (n, 32)
    horizontal = (labels % 2 == 0)[:, None, None]
    stripes = np.where(horizontal, wave[:, :, None], wave[:, None, :])  # (n, 32, 32)
    colour = palette[labels] + rng.normal(0, 0.1, size=(n, 3))
    img = colour[:, :, None, None] + 0.25 * stripes[:, None] + rng.normal(0, 0.15, (n, 3, 32, 32))
    return np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)


def write_synthetic_cifar10(
    root: str | Path, n_train: int = 5000, n_test: int = 1000, seed: int = 0
) -> list[str]:
    """Write generated images as ``<root>/cifar-10-batches-py/`` in CIFAR-10's format.

    Files: ``data_batch_1`` .. ``data_batch_5`` (the ``n_train`` images split as evenly as
    possible), ``test_batch`` and ``batches.meta``. Each batch is a pickled dict with
    ``data`` (uint8 ``N x 3072``: 1024 red, 1024 green, 1024 blue values, rows of 32),
    ``labels`` (list of int), ``batch_label`` and ``filenames``, like the original.
    Labels are balanced (``i % 10``) and shuffled. The same seed gives the same bytes.

    Args:
        root: Folder to write into (created if needed).
        n_train: Training images (at least 5, one per batch file).
        n_test: Test images (at least 1).
        seed: Seed of the generator.

    Returns:
        Paths of the written files, relative to ``root``.
    """
    if n_train < _N_TRAIN_BATCHES or n_test < 1:
        raise ValueError(f"need n_train >= 5 and n_test >= 1, got {n_train} and {n_test}")
    rng = np.random.default_rng(seed)
    folder = Path(root) / CIFAR10_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []

    def write_batch(filename: str, batch_label: str, n: int, offset: int) -> None:
        labels = rng.permutation(np.arange(n) % 10)
        data = synthetic_images(labels, rng).reshape(n, 3 * _SIZE * _SIZE)
        names = [f"synthetic_{offset + i:06d}.png".encode() for i in range(n)]
        batch = {
            b"batch_label": batch_label.encode(),
            b"labels": [int(v) for v in labels],
            b"data": data,
            b"filenames": names,
        }
        _dump(batch, folder / filename)
        written.append(f"{CIFAR10_DIR}/{filename}")

    offset = 0
    sizes = [len(a) for a in np.array_split(np.arange(n_train), _N_TRAIN_BATCHES)]
    for i, n in enumerate(sizes, start=1):
        write_batch(f"data_batch_{i}", f"training batch {i} of 5 (synthetic)", n, offset)
        offset += n
    write_batch("test_batch", "testing batch 1 of 1 (synthetic)", n_test, offset)
    meta = {
        b"label_names": [c.encode() for c in CIFAR10_CLASSES],
        b"num_cases_per_batch": max(sizes),
        b"num_vis": 3 * _SIZE * _SIZE,
    }
    _dump(meta, folder / "batches.meta")
    written.append(f"{CIFAR10_DIR}/batches.meta")
    return written
