"""Tests of minima.models: parameter counts, shapes, seeding, helpers, pretrained loading."""

import pytest
import torch
from torch import nn
from torchvision.models import resnet18 as tv_resnet18
from torchvision.models import vgg16_bn as tv_vgg16_bn

from minima.models import (
    MODEL_NAMES,
    MODEL_OPTIONS,
    build_model,
    count_parameters,
    first_conv,
    last_linear,
    lenet5,
    load_pretrained_resnet18,
    resnet18,
)

MNIST = {"in_channels": 1, "image_size": 28, "num_classes": 10}
CIFAR = {"in_channels": 3, "image_size": 32, "num_classes": 10}


def conv_params(c_in: int, c_out: int, k: int, bias: bool = True) -> int:
    return c_out * c_in * k * k + (c_out if bias else 0)


def fc_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def vgg16_bn_cifar_params(c_in: int, n_classes: int) -> int:
    """Config D widths: 13 conv3x3 (+bias) each followed by BN (weight + bias), then 512->C."""
    widths = [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    total, prev = 0, c_in
    for w in widths:
        total += conv_params(prev, w, 3) + 2 * w
        prev = w
    return total + fc_params(512, n_classes)


# Flatten sizes by hand: MNIST 28 -conv5 pad2-> 28 -pool-> 14 -conv5-> 10 -pool-> 5;
# CIFAR 32 -> 32 -> 16 -> 12 -> 6. lenet_big pads both convs: 28 -> 14 -> 7, 32 -> 16 -> 8.
EXPECTED_COUNTS = [
    ({"name": "lenet5"}, MNIST,
     conv_params(1, 6, 5) + conv_params(6, 16, 5) + fc_params(16 * 5 * 5, 120)
     + fc_params(120, 84) + fc_params(84, 10)),
    ({"name": "lenet5", "activation": "tanh", "pool": "avg"}, CIFAR,
     conv_params(3, 6, 5) + conv_params(6, 16, 5) + fc_params(16 * 6 * 6, 120)
     + fc_params(120, 84) + fc_params(84, 10)),
    ({"name": "lenet_big"}, MNIST,
     conv_params(1, 32, 5) + conv_params(32, 64, 5) + fc_params(64 * 7 * 7, 1024)
     + fc_params(1024, 10)),
    ({"name": "lenet_big"}, CIFAR,
     conv_params(3, 32, 5) + conv_params(32, 64, 5) + fc_params(64 * 8 * 8, 1024)
     + fc_params(1024, 10)),
    # The counts the paper states (E2, E3, E4).
    ({"name": "resnet18", "stem": "imagenet"}, MNIST, 11_175_370),
    ({"name": "resnet18", "stem": "imagenet"}, CIFAR, 11_181_642),
    ({"name": "resnet18", "stem": "cifar"}, CIFAR, 11_173_962),
    ({"name": "vgg16"}, CIFAR, vgg16_bn_cifar_params(3, 10)),
]  # fmt: skip


def _id(case: tuple) -> str:
    spec, data, _ = case
    opts = "-".join(str(v) for k, v in spec.items() if k != "name")
    return f"{spec['name']}{'-' + opts if opts else ''}-{'mnist' if data is MNIST else 'cifar'}"


@pytest.mark.parametrize("case", EXPECTED_COUNTS, ids=_id)
def test_parameter_count_and_output_shape(case: tuple) -> None:
    spec, data, expected = case
    torch.manual_seed(0)
    model = build_model(spec, **data)
    assert count_parameters(model) == expected
    x = torch.randn(2, data["in_channels"], data["image_size"], data["image_size"])
    model.eval()
    with torch.no_grad():
        out = model(x)
    assert out.shape == (2, data["num_classes"])
    assert torch.isfinite(out).all()


def test_lenet_big_is_about_3_3_million() -> None:
    assert 3.2e6 < count_parameters(build_model({"name": "lenet_big"}, **MNIST)) < 3.4e6


def test_num_classes_and_nonsquare_defaults() -> None:
    model = build_model({"name": "lenet5"}, in_channels=3, image_size=28, num_classes=7)
    assert model(torch.randn(2, 3, 28, 28)).shape == (2, 7)
    assert last_linear(model).out_features == 7


def test_lenet5_activation_and_pool_choices() -> None:
    tanh_avg = lenet5(activation="tanh", pool="avg")
    types = {type(m) for m in tanh_avg.modules()}
    assert nn.Tanh in types and nn.AvgPool2d in types
    assert nn.ReLU not in types and nn.MaxPool2d not in types
    relu_max = lenet5()  # E1's choice is the default
    types = {type(m) for m in relu_max.modules()}
    assert nn.ReLU in types and nn.MaxPool2d in types
    assert nn.Tanh not in types and nn.AvgPool2d not in types


def test_lenet5_rejects_too_small_images() -> None:
    with pytest.raises(ValueError, match="image_size 8 is too small"):
        lenet5(image_size=8)


def test_resnet_stems() -> None:
    imagenet = resnet18(in_channels=1, stem="imagenet")
    assert imagenet.conv1.kernel_size == (7, 7) and imagenet.conv1.stride == (2, 2)
    assert imagenet.conv1.in_channels == 1 and imagenet.conv1.bias is None
    assert isinstance(imagenet.maxpool, nn.MaxPool2d)
    cifar = resnet18(in_channels=3, stem="cifar")
    assert cifar.conv1.kernel_size == (3, 3) and cifar.conv1.stride == (1, 1)
    assert cifar.conv1.padding == (1, 1) and cifar.conv1.bias is None
    assert isinstance(cifar.maxpool, nn.Identity)


def test_resnet_is_torchvisions_beyond_the_stem() -> None:
    ours = resnet18(in_channels=3, stem="cifar", num_classes=10).state_dict()
    with torch.device("meta"):
        ref = tv_resnet18(weights=None, num_classes=10).state_dict()
    assert ours.keys() == ref.keys()
    differing = {k for k in ref if ours[k].shape != ref[k].shape}
    assert differing == {"conv1.weight"}


def test_vgg16_reuses_torchvision_vgg16_bn_features() -> None:
    model = build_model({"name": "vgg16"}, **CIFAR)
    with torch.device("meta"):
        ref = tv_vgg16_bn(weights=None).features.state_dict()
    ours = model.features.state_dict()
    assert ours.keys() == ref.keys()
    assert all(ours[k].shape == ref[k].shape for k in ref)
    assert isinstance(model.classifier, nn.Linear) and model.classifier.in_features == 512


def test_vgg16_one_channel_and_size_check() -> None:
    model = build_model({"name": "vgg16"}, in_channels=1, image_size=32, num_classes=10)
    assert count_parameters(model) == vgg16_bn_cifar_params(1, 10)
    with pytest.raises(ValueError, match="multiple of 32.*28"):
        build_model({"name": "vgg16"}, **MNIST)


@pytest.mark.parametrize(
    "spec",
    [{"name": "lenet5"}, {"name": "lenet_big"}, {"name": "resnet18"}, {"name": "vgg16"}],
    ids=lambda s: s["name"],
)
def test_same_seed_same_weights(spec: dict) -> None:
    def weights(seed: int) -> dict[str, torch.Tensor]:
        torch.manual_seed(seed)
        return build_model(spec, **CIFAR).state_dict()

    a, b, c = weights(1), weights(1), weights(2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_first_conv_and_last_linear() -> None:
    net = build_model({"name": "lenet5"}, **MNIST)
    assert first_conv(net) is net.features[0]
    assert last_linear(net) is net.classifier[-1]
    res = build_model({"name": "resnet18", "stem": "imagenet"}, **MNIST)
    assert first_conv(res) is res.conv1
    assert last_linear(res) is res.fc
    res_c = build_model({"name": "resnet18", "stem": "cifar"}, **CIFAR)
    assert first_conv(res_c) is res_c.conv1
    vgg = build_model({"name": "vgg16"}, **CIFAR)
    assert first_conv(vgg) is vgg.features[0]
    assert last_linear(vgg) is vgg.classifier


def test_helpers_raise_without_layer() -> None:
    with pytest.raises(ValueError, match="no nn.Conv2d"):
        first_conv(nn.Sequential(nn.Linear(2, 2)))
    with pytest.raises(ValueError, match="no nn.Linear"):
        last_linear(nn.Sequential(nn.Conv2d(1, 1, 1)))


def test_count_parameters_excludes_buffers() -> None:
    assert count_parameters(nn.Linear(3, 4)) == 16
    assert count_parameters(nn.BatchNorm2d(5)) == 10  # running stats are buffers
    frozen = nn.Linear(2, 2).requires_grad_(False)
    assert count_parameters(frozen) == 6


def test_registry_names_and_options() -> None:
    assert MODEL_NAMES == ("lenet5", "lenet_big", "resnet18", "vgg16")
    assert MODEL_OPTIONS["lenet5"] == {"activation": ("tanh", "relu"), "pool": ("max", "avg")}
    assert MODEL_OPTIONS["resnet18"] == {"stem": ("imagenet", "cifar")}
    spec = {"name": "resnet18", "stem": "cifar"}
    build_model(spec, **CIFAR)
    assert spec == {"name": "resnet18", "stem": "cifar"}  # not mutated


@pytest.mark.parametrize(
    ("spec", "pattern"),
    [
        ({"name": "alexnet"}, r"'model name' must be one of \('lenet5', 'lenet_big', 'resnet18'"),
        ({"stem": "cifar"}, r"no 'name'; allowed: \('lenet5'"),
        ({"name": "resnet18", "depth": 34}, r"unknown option 'depth'.*'resnet18'.*\('stem',\)"),
        ({"name": "lenet_big", "activation": "relu"}, r"unknown option 'activation'.*\(\)"),
        (
            {"name": "lenet5", "activation": "gelu"},
            r"'lenet5.activation'.*\('tanh', 'relu'\).*gelu",
        ),
        ({"name": "lenet5", "pool": "min"}, r"'lenet5.pool'.*\('max', 'avg'\).*'min'"),
        ({"name": "resnet18", "stem": "tiny"}, r"'resnet18.stem'.*\('imagenet', 'cifar'\)"),
    ],
)
def test_build_model_errors(spec: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        build_model(spec, **CIFAR)


def test_builders_validate_when_called_directly() -> None:
    with pytest.raises(ValueError, match=r"'stem' must be one of"):
        resnet18(stem="tiny")
    with pytest.raises(ValueError, match=r"'activation' must be one of"):
        lenet5(activation="gelu")


# --- pretrained ImageNet weights -------------------------------------------------------


@pytest.fixture(scope="module")
def imagenet_state() -> dict[str, torch.Tensor]:
    """A torchvision ImageNet-shaped (1000-class) ResNet18 state dict, as published files are."""
    torch.manual_seed(123)
    state = tv_resnet18(weights=None).state_dict()
    # torchvision's published file predates num_batches_tracked buffers.
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_load_pretrained_drops_imagenet_fc(imagenet_state, tmp_path, suffix) -> None:
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(imagenet_state, path)
    else:
        from safetensors.torch import save_file

        save_file(imagenet_state, str(path))
    torch.manual_seed(0)
    model = build_model({"name": "resnet18", "stem": "imagenet"}, **CIFAR)
    fc_before = {k: v.clone() for k, v in model.fc.state_dict().items()}
    fresh = load_pretrained_resnet18(model, path)
    assert fresh == ["fc.weight", "fc.bias"]
    state = model.state_dict()
    for key, value in imagenet_state.items():
        if not key.startswith("fc."):
            assert torch.equal(state[key], value), key
    assert all(torch.equal(model.fc.state_dict()[k], v) for k, v in fc_before.items())
    assert model.fc.out_features == 10


def test_load_pretrained_keeps_fitting_fc(tmp_path) -> None:
    torch.manual_seed(5)
    source = tv_resnet18(weights=None, num_classes=10)
    path = tmp_path / "ten.pth"
    torch.save(source.state_dict(), path)
    torch.manual_seed(6)
    model = resnet18(in_channels=3, stem="imagenet", num_classes=10)
    assert load_pretrained_resnet18(model, str(path)) == []
    assert torch.equal(model.fc.weight, source.fc.weight)
    x = torch.randn(2, 3, 32, 32)
    model.eval()
    source.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x))


@pytest.mark.parametrize(
    ("spec", "data"),
    [
        ({"name": "resnet18", "stem": "imagenet"}, MNIST),
        ({"name": "resnet18", "stem": "cifar"}, CIFAR),
    ],
    ids=["one-channel", "cifar-stem"],
)
def test_load_pretrained_rejects_other_stems(imagenet_state, tmp_path, spec, data) -> None:
    path = tmp_path / "imagenet.pth"
    torch.save(imagenet_state, path)
    model = build_model(spec, **data)
    before = first_conv(model).weight.clone()
    k = first_conv(model).kernel_size[0]
    with pytest.raises(ValueError) as err:
        load_pretrained_resnet18(model, path)
    message = str(err.value)
    assert str(path) in message
    assert (
        f"conv1.weight: file (64, 3, 7, 7) vs model (64, {data['in_channels']}, {k}, {k})"
        in message
    )
    assert torch.equal(first_conv(model).weight, before)  # nothing half-loaded


def test_load_pretrained_names_missing_and_unexpected_keys(imagenet_state, tmp_path) -> None:
    broken = dict(imagenet_state)
    del broken["layer1.0.conv1.weight"]
    broken["extra.weight"] = torch.zeros(1)
    path = tmp_path / "broken.pth"
    torch.save(broken, path)
    model = build_model({"name": "resnet18", "stem": "imagenet"}, **CIFAR)
    with pytest.raises(ValueError, match=r"missing in file: layer1\.0\.conv1\.weight") as err:
        load_pretrained_resnet18(model, path)
    assert "unexpected in file: extra.weight" in str(err.value)
    assert "broken.pth" in str(err.value)


def test_load_pretrained_rejects_non_state_dict(tmp_path) -> None:
    path = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), path)
    with pytest.raises(ValueError, match="tensor.pth: expected a state dict"):
        load_pretrained_resnet18(resnet18(), path)
