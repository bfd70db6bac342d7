"""E4's augmentation: flip + zero pad + random crop, on the device, reproducible."""

import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from minima.data import random_flip_crop


def hand_made(n=1, c=2, h=6, w=5):
    """Images whose every pixel value is distinct (and non-zero), so a crop is identifiable."""
    return (torch.arange(n * c * h * w, dtype=torch.float64) + 1).view(n, c, h, w)


def torchvision_flip_crop(img, dy, dx, flip, padding, fill):
    """The reference: torchvision's pad (constant fill), crop, horizontal flip."""
    h, w = img.shape[-2:]
    padded = TF.pad(img, [padding], fill=fill)
    out = TF.crop(padded, dy, dx, h, w)
    return TF.horizontal_flip(out) if flip else out


def find_transform(img, out, padding, fill):
    """All (dy, dx, flip) whose torchvision result equals ``out``."""
    return [
        (dy, dx, flip)
        for dy in range(2 * padding + 1)
        for dx in range(2 * padding + 1)
        for flip in (False, True)
        if torch.equal(torchvision_flip_crop(img, dy, dx, flip, padding, fill), out)
    ]


def test_flip_only_is_an_exact_mirror():
    x = hand_made(n=3)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(random_flip_crop(x, g, padding=0, flip_prob=1.0), x.flip(3))
    assert torch.equal(random_flip_crop(x, g, padding=0, flip_prob=0.0), x)


def test_known_crop_on_a_hand_made_image():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    g = torch.Generator().manual_seed(0)
    outs = {
        tuple(random_flip_crop(x, g, padding=1, flip_prob=0.0).flatten().tolist())
        for _ in range(200)
    }
    # the 9 crops of [[0,0,0,0],[0,1,2,0],[0,3,4,0],[0,0,0,0]]
    expected = {
        (0, 0, 0, 1), (0, 0, 1, 2), (0, 0, 2, 0),
        (0, 1, 0, 3), (1, 2, 3, 4), (2, 0, 4, 0),
        (0, 3, 0, 0), (3, 4, 0, 0), (4, 0, 0, 0),
    }  # fmt: skip
    assert outs == expected


def test_every_output_is_a_torchvision_pad_crop_flip():
    x = hand_made(n=40, c=2, h=6, w=5)
    fill = [-1.5, -2.5]  # per channel, as DeviceData passes the normalized black pixel
    g = torch.Generator().manual_seed(1)
    out = random_flip_crop(x, g, padding=2, fill=torch.tensor(fill, dtype=torch.float64))
    assert out.shape == x.shape and out.dtype == x.dtype
    found = []
    for img, res in zip(x, out, strict=True):
        fills = torch.tensor(fill, dtype=torch.float64).view(2, 1, 1)
        # torchvision pads with one scalar: pad with 0, then put each channel's fill there
        matches = [
            t
            for t in [(dy, dx, f) for dy in range(5) for dx in range(5) for f in (False, True)]
            if torch.equal(_reference(img, *t, 2, fills), res)
        ]
        assert len(matches) == 1
        found.append(matches[0])
    assert len({t[:2] for t in found}) > 10  # offsets vary
    assert 5 < sum(t[2] for t in found) < 35  # about half flipped


def _reference(img, dy, dx, flip, padding, fills):
    mask = torchvision_flip_crop(torch.ones_like(img), dy, dx, flip, padding, 0.0)
    inside = torchvision_flip_crop(img, dy, dx, flip, padding, 0.0)
    return torch.where(mask.bool(), inside, fills.expand_as(img))


def test_scalar_zero_fill_matches_torchvision_directly():
    x = hand_made(n=10, c=3, h=8, w=8)
    out = random_flip_crop(x, torch.Generator().manual_seed(2), padding=4)
    for img, res in zip(x, out, strict=True):
        assert len(find_transform(img, res, 4, 0.0)) == 1


def test_deterministic_for_a_seeded_generator():
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    a = random_flip_crop(x, torch.Generator().manual_seed(5))
    b = random_flip_crop(x, torch.Generator().manual_seed(5))
    c = random_flip_crop(x, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape


def test_rejects_wrong_fill_length():
    with pytest.raises(ValueError, match="fill"):
        random_flip_crop(hand_made(c=2), torch.Generator(), fill=[0.0, 0.0, 0.0])
