"""Find the layers the training loop monitors, and count parameters.

The paper records, every epoch, the spectral norm of the gradient of the first conv layer
and of the last linear layer (E2); these helpers find those layers in any model here.
"""

from torch import nn


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first ``nn.Conv2d`` of ``model`` in registration order (the input layer here).

    Raises:
        ValueError: If the model has no Conv2d.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ValueError(f"{type(model).__name__} has no nn.Conv2d layer")


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` of ``model`` in registration order (the output layer here).

    Raises:
        ValueError: If the model has no Linear layer.
    """
    found = None
    for module in model.modules():
        if isinstance(module, nn.Linear):
            found = module
    if found is None:
        raise ValueError(f"{type(model).__name__} has no nn.Linear layer")
    return found


def count_parameters(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BN statistics excluded).

    This is the count the paper quotes, e.g. 11,175,370 for E2's 1-channel ResNet18.
    """
    return sum(p.numel() for p in model.parameters())
