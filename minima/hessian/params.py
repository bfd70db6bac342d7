"""Loading checkpoint weights into a model with an error that says what does not match."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn


def load_weights(model: nn.Module, state_dict: Mapping[str, Tensor]) -> nn.Module:
    """Load ``state_dict`` into ``model`` strictly; on mismatch raise a readable error.

    ``nn.Module.load_state_dict`` already refuses a wrong checkpoint, but a Hessian of the
    wrong weights is silently wrong, so every mismatch is collected and named at once:
    keys the model lacks, keys the checkpoint lacks, and keys whose shapes differ.

    Args:
        model: the network to load into (modified in place).
        state_dict: parameter and buffer tensors by name.

    Returns:
        ``model``, for chaining.

    Raises:
        ValueError: naming every missing, unexpected or wrongly shaped key.
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(expected) & set(state_dict)
        if tuple(torch.as_tensor(state_dict[k]).shape) != tuple(expected[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing in checkpoint: {', '.join(missing)}")
    if unexpected:
        problems.append(f"not in model: {', '.join(unexpected)}")
    if shapes:
        problems.append(f"shape mismatch: {'; '.join(shapes)}")
    if problems:
        raise ValueError(
            f"checkpoint does not match {type(model).__name__}: " + " | ".join(problems)
        )
    model.load_state_dict(state_dict, strict=True)
    return model
