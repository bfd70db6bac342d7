"""One training step for every optimizer of the study behind a single interface.

The training loop calls ``step(model, loss_fn, x, y)`` and never needs to know whether
the optimizer is first order, second order (AdaHessian: ``create_graph`` backward),
two-pass (SAM: ascent, then the gradient at the perturbed point with batch-norm stats
frozen) or switching (hybrid). The step never syncs with the device: the loss and
logits come back as detached device tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from .adahessian import AdaHessian
from .hybrid import Hybrid
from .sam import SAM, frozen_bn_stats

__all__ = ["TrainStep"]

LossFn = Callable[[Tensor, Tensor], Tensor]


class TrainStep:
    """A built optimizer (or hybrid pair) plus the step logic it needs.

    Args:
        optimizer: A torch optimizer, :class:`AdaHessian`, :class:`SAM` or :class:`Hybrid`.
        name: The spec's optimizer name (``"sgd"``, ``"sam"``, ``"hybrid"``, ...).
        generator: The generator AdaHessian draws from, checkpointed with the state.
    """

    def __init__(
        self,
        optimizer: Optimizer | Hybrid,
        name: str,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        self.optimizer = optimizer
        self.name = name
        self.generator = generator
        self._base_lrs = {
            phase: [g["lr"] for g in opt.param_groups] for phase, opt in self.optimizers.items()
        }

    @property
    def optimizers(self) -> dict[str, Optimizer]:
        """Every inner optimizer by phase name (one entry unless hybrid)."""
        if isinstance(self.optimizer, Hybrid):
            return self.optimizer.optimizers
        return {self.name: self.optimizer}

    @property
    def active(self) -> Optimizer:
        """The optimizer the next step uses."""
        if isinstance(self.optimizer, Hybrid):
            return self.optimizer.active
        return self.optimizer

    @property
    def phase(self) -> str:
        """Name of the active optimizer (``"sgd"``/``"adahessian"`` for hybrid)."""
        if isinstance(self.optimizer, Hybrid):
            return self.optimizer.phase
        return self.name

    @property
    def switch_epoch(self) -> int | None:
        """Epoch at which hybrid switched to AdaHessian; ``None`` otherwise."""
        if isinstance(self.optimizer, Hybrid):
            return self.optimizer.switch_epoch
        return None

    @property
    def rho(self) -> float | None:
        """SAM's rho (for the sharpness record ``rho * ||g||``); ``None`` without SAM."""
        if isinstance(self.optimizer, SAM):
            return float(self.optimizer.param_groups[0]["rho"])
        return None

    @property
    def current_lr(self) -> float:
        """The active optimizer's lr (first param group)."""
        return float(self.active.param_groups[0]["lr"])

    def set_lr_factor(self, factor: float) -> None:
        """Set lr = base lr * ``factor`` in every group of every inner optimizer."""
        for phase, opt in self.optimizers.items():
            for group, base in zip(opt.param_groups, self._base_lrs[phase], strict=True):
                group["lr"] = base * factor

    def on_epoch_end(self, epoch: int, val_loss: float) -> str | None:
        """Hybrid's switch rule; returns the switch event or ``None``."""
        if isinstance(self.optimizer, Hybrid):
            return self.optimizer.on_epoch_end(epoch, val_loss)
        return None

    def __call__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        x: Tensor,
        y: Tensor,
        on_gradient: Callable[[], None] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """One full training step.

        Args:
            model: The model whose parameters the optimizer holds.
            loss_fn: ``loss_fn(logits, y)`` -> scalar loss.
            x: Input batch.
            y: Targets.
            on_gradient: Called once (under ``no_grad``) when ``.grad`` holds the gradient at
                the current weights, before any parameter changes.

        Returns:
            ``(loss, logits)`` of the forward pass at the current weights, detached.
        """
        opt = self.active
        opt.zero_grad(set_to_none=True)
        logits = model(x)
        loss = loss_fn(logits, y)
        if isinstance(opt, AdaHessian) and opt.hessian_due():
            # autograd.grad + assignment instead of backward(create_graph=True): same graph,
            # without torch's reference-cycle warning; AdaHessian.step detaches the grads.
            params = [p for g in opt.param_groups for p in g["params"] if p.requires_grad]
            grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
            for p, g in zip(params, grads, strict=True):
                p.grad = g
        else:
            loss.backward()
        if on_gradient is not None:
            with torch.no_grad():
                on_gradient()
        if isinstance(opt, SAM):
            opt.first_step(zero_grad=True)
            with frozen_bn_stats(model):
                loss_fn(model(x), y).backward()
            opt.second_step()
        else:
            opt.step()
        return loss.detach(), logits.detach()

    def state_dict(self) -> dict[str, Any]:
        """Inner optimizers' states, hybrid phase and the generator state."""
        return {
            "name": self.name,
            "optimizer": self.optimizer.state_dict(),
            "generator": None if self.generator is None else self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`, for a TrainStep built from the same spec."""
        if state["name"] != self.name:
            raise ValueError(f"state is for optimizer {state['name']!r}, not {self.name!r}")
        self.optimizer.load_state_dict(state["optimizer"])
        if (state["generator"] is None) != (self.generator is None):
            raise ValueError("generator state present in only one of state and TrainStep")
        if self.generator is not None:
            self.generator.set_state(state["generator"].cpu())
