"""VGG16 with batch norm for 32x32 images (E4), on torchvision's ``vgg16_bn`` features.

The convolutional part is torchvision's configuration "D" with batch norm (Simonyan &
Zisserman 2015; ``torchvision.models.vgg.make_layers``), built as ``vgg16_bn`` builds it.
"""

from torch import Tensor, nn


class VGG16CIFAR(nn.Module):
    """``features`` (torchvision's vgg16_bn) -> global average pool -> ``classifier`` Linear.

    The head is a single ``Linear(512, num_classes)``, the common CIFAR-10 VGG head (as in
    kuangliu/pytorch-cifar and the studies built on it), instead of ImageNet's
    25088-4096-4096 MLP: after five 2x2 max-pools a 32x32 image is a 1x1x512 map, and the
    ImageNet head would add ~120M parameters acting on that one pixel copied 7x7 times.
    The average pool is the identity at 32x32 and keeps larger multiples of 32 working.
    """

    def __init__(self, features: nn.Sequential, num_classes: int) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.pool(self.features(x)).flatten(1))


def vgg16(*, in_channels: int = 3, image_size: int = 32, num_classes: int = 10) -> VGG16CIFAR:
    """VGG16-BN with a CIFAR head, initialised as torchvision initialises VGG.

    Args:
        in_channels: Input channels; the first conv is replaced when it is not 3.
        image_size: Height = width of the inputs; must be a multiple of 32 (five 2x2 pools).
        num_classes: Outputs of the classifier.

    Raises:
        ValueError: If ``image_size`` is not a positive multiple of 32 (e.g. 28x28 MNIST).
    """
    if image_size < 32 or image_size % 32:
        raise ValueError(
            f"vgg16 needs image_size a multiple of 32 (five 2x2 pools), got {image_size}"
        )
    from torchvision.models.vgg import cfgs, make_layers  # here: torchvision is slow to import

    features = make_layers(cfgs["D"], batch_norm=True)
    if in_channels != 3:
        features[0] = nn.Conv2d(in_channels, 64, kernel_size=3, padding=1)
    model = VGG16CIFAR(features, num_classes)
    for m in model.modules():  # torchvision's VGG initialisation
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.zeros_(m.bias)
    return model
