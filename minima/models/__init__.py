"""Models by name: LeNet-5, the big LeNet of E5, torchvision's ResNet18 and VGG16-BN.

``build_model(spec, in_channels=..., image_size=..., num_classes=...)`` is the entry
point; the family modules hold one builder each.
"""

from minima.models.layers import count_parameters, first_conv, last_linear
from minima.models.lenet import lenet5, lenet_big
from minima.models.registry import MODEL_NAMES, MODEL_OPTIONS, build_model
from minima.models.resnet import load_pretrained_resnet18, resnet18
from minima.models.vgg import vgg16

__all__ = [
    "MODEL_NAMES",
    "MODEL_OPTIONS",
    "build_model",
    "count_parameters",
    "first_conv",
    "last_linear",
    "lenet5",
    "lenet_big",
    "load_pretrained_resnet18",
    "resnet18",
    "vgg16",
]
