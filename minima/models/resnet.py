"""torchvision's ResNet18 with a choice of stem, and a loader for its ImageNet weights.

The network is torchvision's own (He et al. 2016); only the stem is adapted:
``imagenet`` keeps torchvision's 7x7 stride-2 conv + max-pool (E2 with 1 channel,
11,175,370 parameters; E3 with 3 channels, 11,181,642, the shape ImageNet weights fit),
``cifar`` uses the 3x3 stride-1 conv and no max-pool that is usual for 32x32 training
from scratch (E4; 11,173,962 parameters with 3 channels).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from minima.models._options import check_choice

if TYPE_CHECKING:
    from torchvision.models import ResNet

STEMS = ("imagenet", "cifar")


def _stem_conv(in_channels: int, kernel: int, stride: int) -> nn.Conv2d:
    """A bias-free 64-filter stem conv, initialised as torchvision initialises ResNet convs."""
    conv = nn.Conv2d(
        in_channels, 64, kernel_size=kernel, stride=stride, padding=kernel // 2, bias=False
    )
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


def resnet18(
    *,
    in_channels: int = 3,
    image_size: int = 32,
    num_classes: int = 10,
    stem: str = "imagenet",
) -> ResNet:
    """torchvision's ResNet18 (random init) with the given stem and input channels.

    Args:
        in_channels: Input channels; the stem conv is replaced when it is not 3.
        image_size: Unused (the network ends in adaptive average pooling); accepted so
            every model builder has the same signature.
        num_classes: Outputs of ``fc``.
        stem: ``"imagenet"`` (7x7 stride-2 conv + 3x3 max-pool, torchvision's) or
            ``"cifar"`` (3x3 stride-1 conv, no max-pool).
    """
    del image_size
    check_choice("stem", stem, STEMS)
    # imported here: torchvision costs seconds to import, and config checks load this module
    from torchvision.models import resnet18 as tv_resnet18

    model = tv_resnet18(weights=None, num_classes=num_classes)
    if stem == "cifar":
        model.conv1 = _stem_conv(in_channels, kernel=3, stride=1)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = _stem_conv(in_channels, kernel=7, stride=2)
    return model


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict from ``.safetensors`` or a ``torch.save`` file (tensors only)."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


def load_pretrained_resnet18(model: ResNet, path: str | Path) -> list[str]:
    """Load a torchvision ImageNet ResNet18 state dict into ``model`` (E3's pretrained runs).

    Every tensor must fit except ``fc``: a 1000-class ``fc`` does not fit a 10-class model
    and is dropped, so ``fc`` keeps its fresh initialisation (the usual fine-tuning
    recipe); an ``fc`` of the right shape is loaded. ``num_batches_tracked`` buffers may be
    absent (torchvision's published files predate them). Anything else that does not fit,
    e.g. the 1-channel or ``cifar`` stem, is an error rather than a silent partial load.

    Args:
        model: A model from :func:`resnet18`, on any device.
        path: A ``torch.save`` (``.pth``) or ``.safetensors`` file of a state dict.

    Returns:
        The keys of ``model`` left at their fresh values (the dropped ``fc`` keys, or []).

    Raises:
        ValueError: Naming the file and every missing, unexpected or mis-shaped key.
    """
    path = Path(path)
    state = _read_state_dict(path)
    own = model.state_dict()
    fc_keys = [k for k in own if k.startswith("fc.")]
    fc_fits = all(k in state and state[k].shape == own[k].shape for k in fc_keys)
    if not fc_fits:
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}

    unexpected = sorted(set(state) - set(own))
    missing = sorted(
        k
        for k in set(own) - set(state)
        if not k.endswith("num_batches_tracked") and (fc_fits or k not in fc_keys)
    )
    mismatched = sorted(
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if unexpected or missing or mismatched:
        problems = [
            f"{label}: {', '.join(keys)}"
            for label, keys in (
                ("shape mismatch", mismatched),
                ("missing in file", missing),
                ("unexpected in file", unexpected),
            )
            if keys
        ]
        raise ValueError(
            f"pretrained ResNet18 weights in {path} do not fit the model "
            f"(ImageNet weights need stem 'imagenet' with 3 input channels): " + "; ".join(problems)
        )
    model.load_state_dict(state, strict=False)
    return [] if fc_fits else fc_keys
