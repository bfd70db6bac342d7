"""Per-channel normalization with the train split's statistics, and E3's ``std_scale``.

The paper normalizes with the per-channel mean and std of the training split; E3's
normalization study multiplies the std by ``std_scale`` (e.g. 1e-4 or 1e3, scalar or per
channel), which rescales the inputs by its inverse and so tests AdaHessian's scale
sensitivity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def channel_stats(
    images: torch.Tensor, indices: np.ndarray | torch.Tensor | Sequence[int], chunk: int = 2048
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (population) std of ``images[indices]`` in [0, 1] units.

    Args:
        images: uint8 ``N x C x H x W``.
        indices: The images to use (the train split).
        chunk: Images per step (bounds memory on full datasets).

    Returns:
        ``(mean, std)``, float64 tensors of shape ``(C,)``. The sums are exact integers,
        so the result does not depend on ``chunk`` or on summation order.
    """
    if images.dtype != torch.uint8 or images.ndim != 4:
        raise ValueError(
            f"images must be uint8 N x C x H x W, got {images.dtype} {tuple(images.shape)}"
        )
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
    if idx.numel() == 0:
        raise ValueError("channel_stats needs at least one image")
    channels = images.shape[1]
    s1 = [0] * channels
    s2 = [0] * channels
    for start in range(0, idx.numel(), chunk):
        x = images[idx[start : start + chunk].to(images.device)].to(torch.int64)
        part1 = x.sum(dim=(0, 2, 3)).tolist()
        part2 = (x * x).sum(dim=(0, 2, 3)).tolist()
        s1 = [a + b for a, b in zip(s1, part1, strict=True)]
        s2 = [a + b for a, b in zip(s2, part2, strict=True)]
    count = idx.numel() * images.shape[2] * images.shape[3]
    mean = [a / (count * 255) for a in s1]
    # Python integers: n * S2 - S1^2 is exact before the one division.
    var = [(count * b - a * a) / (count * count * 255 * 255) for a, b in zip(s1, s2, strict=True)]
    return torch.tensor(mean, dtype=torch.float64), torch.tensor(var, dtype=torch.float64).sqrt()


def per_channel(value: float | Sequence[float] | torch.Tensor, channels: int) -> torch.Tensor:
    """A scalar or per-channel value as a float64 tensor of shape ``(channels,)``."""
    t = torch.as_tensor(value, dtype=torch.float64).flatten()
    if t.numel() == 1:
        return t.expand(channels).clone()
    if t.numel() != channels:
        raise ValueError(f"expected 1 or {channels} per-channel values, got {t.numel()}")
    return t


def normalize(
    images: torch.Tensor,
    mean: float | Sequence[float] | torch.Tensor,
    std: float | Sequence[float] | torch.Tensor,
    std_scale: float | Sequence[float] | torch.Tensor = 1.0,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """``(images / 255 - mean) / (std * std_scale)`` per channel, on the images' device.

    Args:
        images: uint8 ``N x C x H x W``.
        mean, std: Per-channel statistics in [0, 1] units (:func:`channel_stats`).
        std_scale: Multiplies the std (E3's normalization study); scalar or per channel.
        dtype: Floating type of the result.
    """
    channels = images.shape[1]
    m = per_channel(mean, channels)
    s = per_channel(std, channels) * per_channel(std_scale, channels)
    if bool((s <= 0).any()):
        raise ValueError(f"std * std_scale must be positive, got {s.tolist()}")
    shape = (1, channels, 1, 1)
    m = m.to(device=images.device, dtype=dtype).view(shape)
    s = s.to(device=images.device, dtype=dtype).view(shape)
    return (images.to(dtype) / 255 - m) / s
