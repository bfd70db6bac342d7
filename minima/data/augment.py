"""E4's augmentation on the device: random horizontal flip + zero pad + random crop.

The SAM study trains CIFAR-10 with ``RandomCrop(32, padding=4)`` and
``RandomHorizontalFlip()`` (davda54/sam). This is the same transform, vectorized over a
batch already on the device, drawing every random number from a passed
``torch.Generator`` so that a run is reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def random_flip_crop(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    padding: int = 4,
    fill: float | Sequence[float] | torch.Tensor = 0.0,
    flip_prob: float = 0.5,
) -> torch.Tensor:
    """Pad by ``padding`` pixels, crop back to ``H x W`` at a random offset, flip at random.

    Per image: offsets ``dy, dx`` uniform in ``0..2*padding`` and a flip with probability
    ``flip_prob``; output pixel ``(i, j)`` is padded pixel ``(dy + i, dx + j)``, or
    ``(dy + i, dx + W - 1 - j)`` when flipped. One gather does crop and flip together.

    Args:
        x: Float ``N x C x H x W`` on any device.
        generator: Source of randomness, on ``x``'s device.
        padding: Pixels added on every side (4 in E4).
        fill: Value of the padded pixels, scalar or per channel. For "zero padding" of
            the raw image after normalization, pass the normalized value of a black pixel,
            ``-mean / (std * std_scale)``: that is what torchvision's ``RandomCrop`` before
            ``Normalize`` does (:class:`minima.data.DeviceData` passes it).
        flip_prob: Probability of a horizontal flip.

    Returns:
        A new tensor of ``x``'s shape, dtype and device.
    """
    n, c, h, w = x.shape
    device = x.device
    fill_t = torch.as_tensor(fill, dtype=x.dtype, device=device).flatten()
    if fill_t.numel() not in (1, c):
        raise ValueError(f"fill needs 1 or {c} values, got {fill_t.numel()}")
    padded = fill_t.view(1, -1, 1, 1).expand(n, c, h + 2 * padding, w + 2 * padding).clone()
    padded[:, :, padding : padding + h, padding : padding + w] = x
    offsets = torch.randint(0, 2 * padding + 1, (n, 2), generator=generator, device=device)
    flip = torch.rand(n, generator=generator, device=device) < flip_prob
    rows = offsets[:, :1] + torch.arange(h, device=device)  # (n, h)
    j = torch.arange(w, device=device)
    cols = offsets[:, 1:] + torch.where(flip[:, None], w - 1 - j, j)  # (n, w)
    batch = torch.arange(n, device=device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2).contiguous()
