"""Filter images of a convolution layer, as an array ready for ``imshow``."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from torch import Tensor

Mode = Literal["auto", "rgb", "mean", "channels"]


def _normalize(tile: np.ndarray) -> np.ndarray:
    """Min-max scale one filter to [0, 1] (a constant filter becomes 0.5)."""
    lo, hi = float(tile.min()), float(tile.max())
    return np.full_like(tile, 0.5) if hi == lo else (tile - lo) / (hi - lo)


def filter_grid(
    conv_weight: Tensor | np.ndarray,
    *,
    mode: Mode = "auto",
    max_filters: int | None = None,
    max_channels: int | None = None,
    ncols: int | None = None,
    padding: int = 1,
    pad_value: float = 1.0,
) -> np.ndarray:
    """Tile the filters of one conv layer into one image, each filter scaled to [0, 1].

    Each output filter is min-max normalized on its own (over all its channels together),
    so the image shows each filter's pattern, not the layers' relative scales.

    Args:
        conv_weight: weight (out_channels, in_channels, kh, kw) of an ``nn.Conv2d``.
        mode: "rgb": one colour tile per filter (needs in_channels == 3, e.g. a first
            layer); "mean": one grey tile per filter, the mean over input channels;
            "channels": one grey tile per (filter, input channel), a row per filter;
            "auto": "rgb" when in_channels == 3, else "channels".
        max_filters: show only the first this many filters.
        max_channels: in "channels" mode, only the first this many input channels.
        ncols: tiles per row in "rgb"/"mean" modes (default: about sqrt of the count).
        padding: pixels between tiles.
        pad_value: value of the padding pixels (1.0: white).

    Returns:
        float64 array in [0, 1]: (H, W, 3) in "rgb" mode, (H, W) otherwise.
    """
    W = (
        conv_weight.detach().cpu().double().numpy()
        if isinstance(conv_weight, Tensor)
        else (np.asarray(conv_weight, dtype=np.float64))
    )
    if W.ndim != 4:
        raise ValueError(f"conv_weight has shape {W.shape}: expected (out, in, kh, kw)")
    out_ch, in_ch, kh, kw = W.shape
    if mode == "auto":
        mode = "rgb" if in_ch == 3 else "channels"
    if mode not in ("rgb", "mean", "channels"):
        raise ValueError(f"mode must be 'auto', 'rgb', 'mean' or 'channels', got {mode!r}")
    if mode == "rgb" and in_ch != 3:
        raise ValueError(f"conv_weight has shape {W.shape}: mode 'rgb' needs 3 input channels")
    if max_filters is not None:
        W = W[:max_filters]
        out_ch = W.shape[0]
    normalized = [_normalize(w) for w in W]  # per filter, over all its channels

    if mode == "channels":
        chans = in_ch if max_channels is None else min(in_ch, max_channels)
        rows, cols = out_ch, chans
        tiles = [[f[c] for c in range(chans)] for f in normalized]
        depth: tuple[int, ...] = ()
    else:
        if mode == "rgb":
            flat = [f.transpose(1, 2, 0) for f in normalized]  # (kh, kw, 3)
            depth = (3,)
        else:
            flat = [_normalize(f.mean(0)) for f in normalized]
            depth = ()
        cols = ncols or math.ceil(math.sqrt(out_ch))
        rows = math.ceil(out_ch / cols)
        tiles = [flat[r * cols : (r + 1) * cols] for r in range(rows)]

    grid = np.full(
        (rows * (kh + padding) - padding, cols * (kw + padding) - padding, *depth),
        pad_value,
        dtype=np.float64,
    )
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            y, x = r * (kh + padding), c * (kw + padding)
            grid[y : y + kh, x : x + kw] = tile
    return grid


def conv_weight(model: torch.nn.Module, layer: str) -> Tensor:
    """The weight of the Conv2d named ``layer`` in ``model`` (qualified name)."""
    module = dict(model.named_modules()).get(layer)
    if not isinstance(module, torch.nn.Conv2d):
        convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)]
        raise ValueError(f"{layer!r} is not a Conv2d of the model; conv layers: {convs}")
    return module.weight
