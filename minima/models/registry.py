"""Model registry: config names a model, :func:`build_model` builds it.

A model spec is a mapping like ``{name: lenet5, activation: relu, pool: max}``; input
channels, image size and class count come from the dataset, not the spec. Adding a model
is one builder function plus one line in ``_REGISTRY``.
"""

from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from minima.models import lenet, resnet, vgg
from minima.models._options import check_choice

# name -> (builder, {option: allowed values}); an option left out of a spec takes the
# builder's keyword default.
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict[str, tuple[str, ...]]]] = {
    "lenet5": (
        lenet.lenet5,
        {"activation": tuple(lenet.ACTIVATIONS), "pool": tuple(lenet.POOLS)},
    ),
    "lenet_big": (lenet.lenet_big, {}),
    "resnet18": (resnet.resnet18, {"stem": resnet.STEMS}),
    "vgg16": (vgg.vgg16, {}),
}

MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)
"""Names accepted in a model spec's ``name`` (for the config schema's enum)."""

MODEL_OPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    name: dict(options) for name, (_, options) in _REGISTRY.items()
}
"""Per model name, its spec options and their allowed values (for the config schema)."""


def build_model(
    spec: Mapping[str, Any], *, in_channels: int, image_size: int, num_classes: int
) -> nn.Module:
    """Build the model a config spec names, with freshly initialised weights.

    Initialisation draws from torch's global RNG, so seed it first (``torch.manual_seed``)
    for reproducible weights. The model is on the CPU; move it with ``.to(device)``.

    Args:
        spec: ``name`` plus that model's options, e.g. ``{"name": "resnet18", "stem": "cifar"}``.
        in_channels: Image channels of the dataset (1 for MNIST, 3 for CIFAR-10).
        image_size: Height = width of the dataset's images (28 or 32).
        num_classes: Number of classes of the dataset.

    Raises:
        ValueError: For a missing or unknown ``name``, an unknown option or a value not
            allowed, naming the key and the allowed values.
    """
    if "name" not in spec:
        raise ValueError(f"model spec {dict(spec)!r} has no 'name'; allowed: {MODEL_NAMES}")
    name = check_choice("model name", spec["name"], MODEL_NAMES)
    builder, allowed = _REGISTRY[name]
    options = {k: v for k, v in spec.items() if k != "name"}
    for key, value in options.items():
        if key not in allowed:
            raise ValueError(
                f"unknown option {key!r} for model {name!r}; allowed options: {tuple(allowed)}"
            )
        check_choice(f"{name}.{key}", value, allowed[key])
    return builder(
        in_channels=in_channels, image_size=image_size, num_classes=num_classes, **options
    )
