"""Gradient statistics recorded during training, accumulated on the device.

Nothing here calls ``.item()``: per-step values are summed (per epoch) or kept (per recorded
step) as device tensors and read once per epoch, so recording them does not stall a GPU
pipeline.
"""

from __future__ import annotations

import torch
from torch import nn


def _finite_or_nan(matrices: torch.Tensor, norms: torch.Tensor) -> torch.Tensor:
    """NaN where a gradient had non-finite entries (a diverging run), without a host sync."""
    return norms + 0.0 * matrices.sum(dim=(-2, -1))


def _spectral(matrices: torch.Tensor) -> torch.Tensor:
    """Largest singular value of each matrix; SVD never sees NaN/inf (it would raise)."""
    finite = torch.where(torch.isfinite(matrices), matrices, torch.zeros_like(matrices))
    return _finite_or_nan(matrices, torch.linalg.matrix_norm(finite, ord=2))


def first_conv_spectral_norm(grad: torch.Tensor) -> torch.Tensor:
    """Mean over filters of the largest singular value of each filter's gradient.

    A filter's gradient (in_channels, kh, kw) is read as the (in_channels*kh, kw) matrix of its
    kernels stacked vertically; with one input channel this is the kernel itself.
    """
    out_channels, in_channels, kh, kw = grad.shape
    matrices = grad.reshape(out_channels, in_channels * kh, kw)
    return _spectral(matrices).mean()


def linear_spectral_norm(grad: torch.Tensor) -> torch.Tensor:
    """Largest singular value of a linear layer's weight gradient."""
    return _spectral(grad)


class GradientRecorder:
    """Sums the gradient norm every step and the two spectral norms every ``every`` steps and
    at each epoch's first step (so an epoch shorter than ``every`` steps still has a value).

    Passed as ``on_gradient`` to a train step, so it sees the gradient at the current weights
    (for SAM: before the ascent step), which is what the sharpness rho*||g|| is defined on.
    """

    def __init__(
        self, model: nn.Module, first_conv: nn.Conv2d, last_linear: nn.Linear, every: int
    ) -> None:
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.first_conv = first_conv
        self.last_linear = last_linear
        self.every = every
        self.calls = 0
        device = self.params[0].device
        self.sums = torch.zeros(3, dtype=torch.float64, device=device)
        self.spectral_count = 0
        self.norm_count = 0
        self.last_norm = torch.full((), float("nan"), dtype=torch.float64, device=device)

    def __call__(self) -> None:
        grads = [p.grad.detach() for p in self.params if p.grad is not None]
        norms = torch._foreach_norm(grads)
        self.last_norm = torch.linalg.vector_norm(torch.stack(norms)).double()
        self.sums[0] += self.last_norm
        self.norm_count += 1
        if self.calls % self.every == 0 or self.norm_count == 1:
            self.sums[1] += first_conv_spectral_norm(self.first_conv.weight.grad.detach()).double()
            self.sums[2] += linear_spectral_norm(self.last_linear.weight.grad.detach()).double()
            self.spectral_count += 1
        self.calls += 1

    def reset(self) -> None:
        """Start a new epoch's sums (the step counter keeps running)."""
        self.sums.zero_()
        self.spectral_count = 0
        self.norm_count = 0

    def summary(self) -> dict[str, float]:
        """Epoch means (one host sync)."""
        sums = self.sums.tolist()
        nan = float("nan")
        return {
            "grad_norm": sums[0] / self.norm_count if self.norm_count else nan,
            "first_conv_grad_spectral": sums[1] / self.spectral_count
            if self.spectral_count
            else nan,
            "last_linear_grad_spectral": sums[2] / self.spectral_count
            if self.spectral_count
            else nan,
        }

    def state_dict(self) -> dict[str, object]:
        """Mid-epoch state, so a resumed epoch records the same means."""
        return {
            "calls": self.calls,
            "sums": self.sums.clone(),
            "spectral_count": self.spectral_count,
            "norm_count": self.norm_count,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore :meth:`state_dict`."""
        self.calls = int(state["calls"])
        self.sums.copy_(state["sums"])
        self.spectral_count = int(state["spectral_count"])
        self.norm_count = int(state["norm_count"])


class StepRecorder:
    """Per-step records every ``every`` steps (steps 1, 1 + every, 1 + 2 * every, ...): the
    minibatch gradient norm at the step's weights (what :class:`GradientRecorder` saw last),
    rho * that norm, the minibatch loss and the learning rate.

    Values stay device tensors until :meth:`flush` (once per epoch); :meth:`state_dict` keeps
    a half-recorded epoch for a resumed run.
    """

    def __init__(self, every: int, rho: float) -> None:
        if every < 1:
            raise ValueError(f"step records every {every} steps: must be at least 1")
        self.every = every
        self.rho = rho
        self.steps: list[tuple[int, int, float]] = []  # (step, epoch, lr)
        self.values: list[torch.Tensor] = []  # (grad norm, loss) per recorded step

    def wants(self, step: int) -> bool:
        """Whether 1-based ``step`` is recorded."""
        return (step - 1) % self.every == 0

    def record(
        self, step: int, epoch: int, grad_norm: torch.Tensor, loss: torch.Tensor, lr: float
    ) -> None:
        """Keep one step's values (device tensors, no sync)."""
        self.steps.append((step, epoch, lr))
        self.values.append(torch.stack([grad_norm.double(), loss.detach().double()]))

    def flush(self) -> list[dict[str, float | int]]:
        """The records since the last flush as rows (one host sync), and forget them."""
        if not self.steps:
            return []
        values = torch.stack(self.values).tolist()
        rows = [
            {
                "step": step,
                "epoch": epoch,
                "grad_norm": norm,
                "sam_sharpness": self.rho * norm,
                "batch_loss": loss,
                "lr": lr,
            }
            for (step, epoch, lr), (norm, loss) in zip(self.steps, values, strict=True)
        ]
        self.steps, self.values = [], []
        return rows

    def state_dict(self) -> dict[str, object]:
        """The records not flushed yet (values as one CPU tensor)."""
        values = torch.stack(self.values).cpu() if self.values else torch.zeros(0, 2)
        return {"steps": list(self.steps), "values": values}

    def load_state_dict(self, state: dict[str, object], device: torch.device) -> None:
        """Restore :meth:`state_dict`, values back on ``device``."""
        self.steps = [tuple(s) for s in state["steps"]]
        self.values = list(state["values"].to(device=device, dtype=torch.float64).unbind(0))
