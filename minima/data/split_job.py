"""The `split` rule's work: draw an experiment's split once and store it with its statistics."""

from __future__ import annotations

from pathlib import Path

from minima.io import atomic_path

from .normalization import channel_stats
from .pools import load_pools
from .split import make_split, save_split


def write_split(
    name: str,
    root: str | Path,
    path: str | Path,
    *,
    seed: int,
    val_size: int,
    train_size: int | None = None,
    test_size: int | None = None,
) -> dict[str, int]:
    """Draw the split of a prepared dataset, compute the train split's channel mean/std, and
    write both to ``path`` atomically. Returns the part sizes (for the log)."""
    pools = load_pools(name, root)
    split = make_split(
        {pool: len(labels) for pool, (_, labels) in pools.items()},
        seed=seed,
        val_size=val_size,
        train_size=train_size,
        test_size=test_size,
    )
    train_images = pools[split.pools["train"]][0]
    mean, std = channel_stats(train_images, split["train"])
    with atomic_path(path) as tmp:
        save_split(split, tmp, mean=mean, std=std)
    return split.sizes()
