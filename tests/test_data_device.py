"""channel_stats, normalize with std_scale, DeviceData and epoch_batches."""

import numpy as np
import pytest
import torch

from minima.data import DeviceData, channel_stats, epoch_batches, normalize


def random_images(n=40, c=3, h=8, w=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def test_channel_stats_equal_numpy_float64():
    images = random_images()
    idx = np.array([0, 3, 5, 7, 11, 13, 17, 19, 23, 29])
    x = images.numpy()[idx].astype(np.float64) / 255
    mean, std = channel_stats(images, idx)
    assert mean.dtype == torch.float64 and mean.shape == (3,)
    np.testing.assert_allclose(mean.numpy(), x.mean(axis=(0, 2, 3)), rtol=1e-13)
    np.testing.assert_allclose(std.numpy(), x.std(axis=(0, 2, 3)), rtol=1e-12)
    # exact integer sums: the chunk size does not change a bit
    mean2, std2 = channel_stats(images, idx, chunk=3)
    assert torch.equal(mean, mean2) and torch.equal(std, std2)


def test_channel_stats_of_constant_images():
    images = torch.full((5, 2, 4, 4), 51, dtype=torch.uint8)
    mean, std = channel_stats(images, np.arange(5))
    assert mean.tolist() == [0.2, 0.2] and std.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="uint8"):
        channel_stats(images.float(), np.arange(5))


@pytest.mark.parametrize("std_scale", [1.0, 1e-4, 1e3, [1e-4, 1.0, 1e3]])
def test_normalize_with_std_scale(std_scale):
    images = random_images()
    idx = np.arange(40)
    mean, std = channel_stats(images, idx)
    x = normalize(images, mean, std, std_scale, dtype=torch.float64)
    scale = np.broadcast_to(np.asarray(std_scale, dtype=np.float64), (3,))
    expected = (images.numpy() / 255 - mean.numpy()[None, :, None, None]) / (std.numpy() * scale)[
        None, :, None, None
    ]
    np.testing.assert_allclose(x.numpy(), expected, rtol=1e-12)
    # on the train split: zero mean, std 1 / std_scale per channel
    np.testing.assert_allclose(x.mean(dim=(0, 2, 3)).numpy(), 0, atol=1e-9 / scale.min())
    np.testing.assert_allclose(x.std(dim=(0, 2, 3), unbiased=False).numpy(), 1 / scale, rtol=1e-10)


def test_normalize_rejects_bad_scales():
    images = random_images()
    with pytest.raises(ValueError, match="1 or 3"):
        normalize(images, 0.5, 0.2, [1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        normalize(images, 0.5, 0.2, 0.0)


def test_device_data_holds_the_normalized_part():
    images = random_images()
    labels = torch.arange(40) % 10
    idx = np.array([5, 1, 30, 2])
    mean, std = channel_stats(images, np.arange(40))
    data = DeviceData(
        images, labels, idx, mean=mean, std=std, std_scale=10.0, device="cpu", dtype=torch.float64
    )
    assert len(data) == 4 and data.x.dtype == torch.float64 and data.y.dtype == torch.int64
    assert torch.equal(data.y, labels[idx])
    assert torch.allclose(data.x, normalize(images[idx], mean, std, 10.0, dtype=torch.float64))
    # a black pixel normalized the same way
    black = normalize(
        torch.zeros(1, 3, 1, 1, dtype=torch.uint8), mean, std, 10.0, dtype=torch.float64
    )
    assert torch.allclose(data.pad_fill, black.flatten())


def test_epoch_batches_is_randperm_split():
    g = torch.Generator().manual_seed(4)
    batches = epoch_batches(10, 4, g)
    expected = torch.randperm(10, generator=torch.Generator().manual_seed(4))
    assert [len(b) for b in batches] == [4, 4, 2]
    assert torch.equal(torch.cat(batches), expected)
    dropped = epoch_batches(10, 4, torch.Generator().manual_seed(4), drop_last=True)
    assert [len(b) for b in dropped] == [4, 4]
    with pytest.raises(ValueError):
        epoch_batches(10, 0, g)


def test_batches_cover_an_epoch_and_are_reproducible():
    images = random_images(n=23, c=1)
    labels = torch.arange(23)  # label = index: shows which example each row is
    data = DeviceData(images, labels, np.arange(23), mean=0.5, std=0.25, device="cpu")

    def run(seed, **kwargs):
        g = torch.Generator().manual_seed(seed)
        return list(data.batches(5, g, **kwargs))

    first = run(0)
    seen = torch.cat([y for _, y in first])
    assert sorted(seen.tolist()) == list(range(23))
    for x, y in first:
        assert torch.equal(x, data.x[y])  # inputs and labels stay paired
    again = run(0)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(seen, torch.cat([y for _, y in run(1)]))
    assert [len(y) for _, y in run(0, drop_last=True)] == [5, 5, 5, 5]
    ordered = torch.cat([y for _, y in data.batches(5)])
    assert torch.equal(ordered, labels)
    with pytest.raises(ValueError, match="generator"):
        list(data.batches(5, augment=True))


def test_augmented_batches_are_reproducible():
    images = random_images(n=12, c=3, h=32, w=32)
    data = DeviceData(
        images,
        torch.zeros(12, dtype=torch.int64),
        np.arange(12),
        mean=[0.4, 0.5, 0.6],
        std=0.2,
        device="cpu",
    )
    a = [x for x, _ in data.batches(4, torch.Generator().manual_seed(9), augment=True)]
    b = [x for x, _ in data.batches(4, torch.Generator().manual_seed(9), augment=True)]
    assert all(x.shape == (4, 3, 32, 32) for x in a)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_data_on_cuda_matches_cpu():
    images = random_images(n=16, c=3, h=32, w=32)
    labels = torch.arange(16)
    kw = {"mean": [0.4, 0.5, 0.6], "std": 0.2}
    cpu = DeviceData(images, labels, np.arange(16), device="cpu", **kw)
    gpu = DeviceData(images, labels, np.arange(16), device="cuda", **kw)
    assert torch.allclose(cpu.x, gpu.x.cpu())
    g = torch.Generator(device="cuda").manual_seed(0)
    for x, y in gpu.batches(5, g, augment=True):
        assert x.is_cuda and y.is_cuda and x.shape[1:] == (3, 32, 32)
