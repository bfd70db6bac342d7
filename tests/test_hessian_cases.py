"""Tiny seeded models and their dense float64 Hessians: the reference every curvature test uses.

The dense Hessian is computed here independently of the library (its own
``functional_call`` and ``torch.autograd.functional.hessian``, i.e. reverse-over-reverse
on the concatenated data), and is itself checked against finite differences below.
"""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


class TinyMLP(nn.Module):
    """4 -> 8 -> 3 with tanh: 67 parameters and an indefinite Hessian away from a minimum."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))


class TinyConvNet(nn.Module):
    """conv(1->3, k3) - BN - tanh - maxpool - fc(12->4) on 6x6 images: 88 parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(12, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(torch.tanh(self.bn(self.conv(x))), 2)
        return self.fc(x.flatten(1))


def mlp_case(seed: int = 0, n: int = 24) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A float64 TinyMLP and n samples of 3-class data."""
    torch.manual_seed(seed)
    model = TinyMLP().double()
    x = torch.randn(n, 4, dtype=torch.float64)
    y = torch.randint(0, 3, (n,))
    return model, x, y


def conv_case(seed: int = 0, n: int = 12) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A float64 TinyConvNet whose BN running statistics were moved off their defaults."""
    torch.manual_seed(seed)
    model = TinyConvNet().double()
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(1.5 * torch.randn(16, 1, 6, 6, dtype=torch.float64) + 0.3)
    x = torch.randn(n, 1, 6, 6, dtype=torch.float64)
    y = torch.randint(0, 4, (n,))
    return model, x, y


CASES = {"mlp": mlp_case, "conv_bn": conv_case}


@pytest.fixture
def one_thread():
    """Run a test on one intra-op thread: tiny models are 10x slower when threads oversubscribe."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def flat_params(model: nn.Module) -> torch.Tensor:
    """Trainable parameters concatenated in ``named_parameters`` order."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


def mean_loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=F.cross_entropy):
    """``theta -> loss_fn(model_theta(x), y)`` with the model in eval mode."""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    shapes = [p.shape for p in model.parameters() if p.requires_grad]
    numels = [s.numel() for s in shapes]
    buffers = dict(model.named_buffers())

    def f(theta: torch.Tensor) -> torch.Tensor:
        parts = torch.split(theta, numels)
        params = {n: t.view(s) for n, t, s in zip(names, parts, shapes, strict=True)}
        was_training = model.training
        model.eval()
        try:
            return loss_fn(functional_call(model, (params, buffers), (x,)), y)
        finally:
            model.train(was_training)

    return f


def dense_hessian(model: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn=F.cross_entropy):
    """The exact Hessian of the mean loss over all of ``(x, y)``, eval mode, float64."""
    theta = flat_params(model).double()
    return torch.autograd.functional.hessian(
        mean_loss_fn(model, x, y, loss_fn), theta, vectorize=True
    )


@functools.lru_cache
def _reference(case: str) -> torch.Tensor:
    return dense_hessian(*CASES[case]())


def reference_hessian(case: str) -> torch.Tensor:
    """The dense Hessian of ``CASES[case]()`` (seed 0), computed once per session."""
    return _reference(case).clone()


pytestmark = pytest.mark.usefixtures("one_thread")


def test_dense_reference_is_symmetric_and_matches_finite_differences():
    for case, build in CASES.items():
        model, x, y = build()
        H = reference_hessian(case)
        f = mean_loss_fn(model, x, y)
        theta = flat_params(model)
        torch.testing.assert_close(H, H.T, rtol=0, atol=1e-12)
        v = torch.randn(
            theta.numel(), dtype=torch.float64, generator=torch.Generator().manual_seed(3)
        )

        def grad_at(t, f=f):
            t = t.clone().requires_grad_(True)
            return torch.autograd.grad(f(t), t)[0]

        h = 1e-5
        fd = (grad_at(theta + h * v) - grad_at(theta - h * v)) / (2 * h)
        torch.testing.assert_close(H @ v, fd, rtol=1e-6, atol=1e-8)
