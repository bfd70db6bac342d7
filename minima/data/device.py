"""A split held on the device once, and minibatches drawn by index on the device.

The models in this study are small next to the data movement a ``DataLoader`` does per
batch, so a split is moved to the device once, normalized once, and each epoch draws a
``torch.randperm`` on the device and slices it: no worker processes, no host copies per
batch (as in KellerJordan/cifar10-airbench).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .augment import random_flip_crop
from .normalization import normalize, per_channel


def epoch_batches(
    n: int,
    batch_size: int,
    generator: torch.Generator,
    drop_last: bool = False,
    *,
    device: torch.device | str | None = None,
) -> list[torch.Tensor]:
    """One epoch of shuffled minibatch indices, drawn on the device.

    Args:
        n: Number of examples.
        batch_size: Examples per batch.
        generator: Seeded generator on ``device`` (the epoch order depends only on it).
        drop_last: Drop a final batch smaller than ``batch_size``.
        device: Where the indices live; default the generator's device.

    Returns:
        Index tensors (int64) from ``torch.randperm(n, generator=generator, device=device)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = generator.device if device is None else torch.device(device)
    batches = list(torch.randperm(n, generator=generator, device=device).split(batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


class DeviceData:
    """One part of a split as normalized float tensors on ``device``.

    Args:
        images: uint8 ``N x C x H x W`` pool (any device).
        labels: int64 ``N`` labels of the pool.
        indices: The examples of this part (e.g. ``split["train"]``).
        mean, std: Per-channel statistics of the train split (:func:`channel_stats`).
        std_scale: Multiplies the std (E3's normalization study); scalar or per channel.
        device: Where the tensors live.
        dtype: Floating type of the inputs.

    Attributes:
        x: Normalized inputs, ``n x C x H x W`` on ``device``.
        y: Labels, int64 ``n`` on ``device``.
        pad_fill: Per-channel normalized value of a black pixel, the padding of
            :meth:`batches` with ``augment=True``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        indices: np.ndarray | torch.Tensor | Sequence[int],
        *,
        mean: float | Sequence[float] | torch.Tensor,
        std: float | Sequence[float] | torch.Tensor,
        std_scale: float | Sequence[float] | torch.Tensor = 1.0,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = torch.device(device)
        idx = torch.as_tensor(np.asarray(indices), dtype=torch.int64)
        # Move the uint8 images first (1 byte per pixel), convert on the device.
        raw = images[idx.to(images.device)].to(self.device)
        self.x = normalize(raw, mean, std, std_scale, dtype=dtype)
        self.y = labels[idx.to(labels.device)].to(self.device, torch.int64)
        channels = images.shape[1]
        scale = per_channel(std, channels) * per_channel(std_scale, channels)
        self.pad_fill = (-per_channel(mean, channels) / scale).to(self.device, dtype)

    def __len__(self) -> int:
        return len(self.y)

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator | None = None,
        *,
        drop_last: bool = False,
        augment: bool = False,
        padding: int = 4,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(inputs, labels)`` minibatches, all on the device.

        Args:
            batch_size: Examples per batch.
            generator: Shuffles (and drives ``augment``) when given; ``None`` keeps the
                stored order (evaluation).
            drop_last: Drop a final short batch.
            augment: Apply :func:`random_flip_crop` (E4) with the same generator.
            padding: Crop padding for ``augment``.
        """
        if generator is None:
            if augment:
                raise ValueError("augment=True needs a generator")
            order = list(torch.arange(len(self), device=self.device).split(batch_size))
            if drop_last and order and len(order[-1]) < batch_size:
                order.pop()
        else:
            order = epoch_batches(len(self), batch_size, generator, drop_last, device=self.device)
        for idx in order:
            x = self.x[idx]
            if augment:
                x = random_flip_crop(x, generator, padding=padding, fill=self.pad_fill)
            yield x, self.y[idx]
