"""LeNet-5 (E1) and the bigger two-conv LeNet of the negative-eigenvalue study (E5).

Both compute their flatten size from the input image size, so the same builder serves
MNIST (28x28x1) and CIFAR-10 (32x32x3).
"""

from torch import Tensor, nn

from minima.models._options import check_choice

ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}
POOLS: dict[str, type[nn.Module]] = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}


def _conv_out(size: int, kernel: int, padding: int = 0) -> int:
    """Spatial size after a stride-1 convolution."""
    return size + 2 * padding - kernel + 1


class LeNet(nn.Module):
    """Two conv+pool blocks then linear layers: ``features`` -> flatten -> ``classifier``."""

    def __init__(self, features: nn.Sequential, classifier: nn.Sequential) -> None:
        super().__init__()
        self.features = features
        self.classifier = classifier

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def _flat_size(
    channels: int, image_size: int, kernels: tuple[int, int], pads: tuple[int, int]
) -> int:
    """Features after conv(k0, pad0)-pool2-conv(k1, pad1)-pool2 on a square image."""
    s = _conv_out(image_size, kernels[0], pads[0]) // 2
    s = _conv_out(s, kernels[1], pads[1]) // 2
    if s < 1:
        raise ValueError(f"image_size {image_size} is too small for this LeNet (feature map {s})")
    return channels * s * s


def lenet5(
    *,
    in_channels: int = 1,
    image_size: int = 28,
    num_classes: int = 10,
    activation: str = "relu",
    pool: str = "max",
) -> LeNet:
    """LeNet-5 (LeCun et al. 1998) as the paper's E1 uses it.

    conv(in->6, k5, pad 2)-pool-conv(6->16, k5)-pool-fc120-fc84-fc(num_classes). The padding
    makes a 28x28 MNIST image behave like the original 32x32 input (16x5x5 features);
    a 32x32 CIFAR image gives 16x6x6. Activation and pooling are configurable because
    the study compares them; E1 uses ReLU and max-pool (the defaults here).

    Args:
        in_channels: Input channels (1 for MNIST, 3 for CIFAR-10).
        image_size: Height = width of the input images.
        num_classes: Outputs of the last linear layer.
        activation: ``"tanh"`` or ``"relu"``.
        pool: ``"max"`` or ``"avg"`` (2x2, stride 2).
    """
    act = ACTIVATIONS[check_choice("activation", activation, tuple(ACTIVATIONS))]
    pool_cls = POOLS[check_choice("pool", pool, tuple(POOLS))]
    features = nn.Sequential(
        nn.Conv2d(in_channels, 6, kernel_size=5, padding=2),
        act(),
        pool_cls(kernel_size=2, stride=2),
        nn.Conv2d(6, 16, kernel_size=5),
        act(),
        pool_cls(kernel_size=2, stride=2),
    )
    classifier = nn.Sequential(
        nn.Linear(_flat_size(16, image_size, (5, 5), (2, 0)), 120),
        act(),
        nn.Linear(120, 84),
        act(),
        nn.Linear(84, num_classes),
    )
    return LeNet(features, classifier)


def lenet_big(*, in_channels: int = 1, image_size: int = 28, num_classes: int = 10) -> LeNet:
    """The ~3.3M-parameter two-conv, two-fc ReLU network of E5.

    conv(in->32, k5, pad 2)-ReLU-maxpool-conv(32->64, k5, pad 2)-ReLU-maxpool-fc1024-ReLU-
    fc(num_classes). On 28x28x1 it has 3,274,634 parameters (the size the paper asks for);
    on 32x32x3 the larger flatten (64x8x8) gives 4,259,274.

    Args:
        in_channels: Input channels (1 for MNIST, 3 for CIFAR-10).
        image_size: Height = width of the input images.
        num_classes: Outputs of the last linear layer.
    """
    features = nn.Sequential(
        nn.Conv2d(in_channels, 32, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
        nn.Conv2d(32, 64, kernel_size=5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(kernel_size=2, stride=2),
    )
    classifier = nn.Sequential(
        nn.Linear(_flat_size(64, image_size, (5, 5), (2, 2)), 1024),
        nn.ReLU(),
        nn.Linear(1024, num_classes),
    )
    return LeNet(features, classifier)
