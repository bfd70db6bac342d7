"""Sharpness-aware minimization (Foret et al. 2021) and ASAM (Kwon et al. 2021).

Follows davda54/sam: SAM wraps a base optimizer built on SAM's own param groups, so an
LR scheduler or ``group["lr"] = ...`` on SAM drives the base optimizer.

- ``first_step``: ``w <- w + e`` with ``e = rho * g / (||g|| + 1e-12)``, ``||g||`` the 2-norm
  over all parameters together; adaptive (ASAM):
  ``e = rho * w^2 * g / (||(|w| * g)|| + 1e-12)``.
- ``second_step``: restore ``w`` (an exact copy, not ``w + e - e``) and step the base
  optimizer with the gradient taken at ``w + e``.
- Batch norm: the perturbed forward must not update running statistics; wrap it in
  :func:`frozen_bn_stats` (momentum 0 as in davda54/sam, plus ``num_batches_tracked``
  restored, which matters for ``momentum=None`` cumulative averages).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.optim import Optimizer

__all__ = ["SAM", "disable_running_stats", "enable_running_stats", "frozen_bn_stats"]


class SAM(Optimizer):
    """SAM / ASAM around a base optimizer on the same param groups.

    Args:
        params: Parameters or parameter groups.
        base_optimizer: Optimizer class (or factory) called as
            ``base_optimizer(self.param_groups, **kwargs)``.
        rho: Radius of the ascent step (SAM typically 0.05, ASAM 0.5-2).
        adaptive: ASAM's scale-invariant ascent step.
        **kwargs: Hyper-parameters of the base optimizer (``lr``, ``momentum``, ...).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        base_optimizer: Callable[..., Optimizer],
        rho: float = 0.05,
        adaptive: bool = False,
        **kwargs: Any,
    ) -> None:
        if rho < 0.0:
            raise ValueError(f"rho must be >= 0, got {rho}")
        super().__init__(params, dict(rho=rho, adaptive=adaptive, **kwargs))
        self.base_optimizer = base_optimizer(self.param_groups, **kwargs)
        self.param_groups = self.base_optimizer.param_groups
        self.defaults.update(self.base_optimizer.defaults)

    def _with_grad(self, group: dict[str, Any]) -> list[Tensor]:
        return [p for p in group["params"] if p.grad is not None]

    @torch.no_grad()
    def grad_norm(self) -> Tensor:
        """``||g||`` (or ASAM's ``||(|w| * g)||``) over all parameters, as a device tensor."""
        norms = []
        for group in self.param_groups:
            ps = self._with_grad(group)
            if not ps:
                continue
            grads = [p.grad for p in ps]
            if group["adaptive"]:
                grads = torch._foreach_mul(torch._foreach_abs(ps), grads)
            norms.extend(torch._foreach_norm(grads, 2))
        if not norms:
            raise RuntimeError("SAM.first_step: no parameter has a gradient")
        device = norms[0].device
        return torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]), 2)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = False) -> None:
        """Ascend to ``w + e`` and remember ``w``."""
        norm = self.grad_norm()
        for group in self.param_groups:
            ps = self._with_grad(group)
            if not ps:
                continue
            scale = group["rho"] / (norm + 1e-12)
            e = torch._foreach_mul([p.grad for p in ps], scale)
            if group["adaptive"]:
                torch._foreach_mul_(e, torch._foreach_mul(ps, ps))
            for p in ps:
                self.state[p]["old_p"] = p.detach().clone()
            torch._foreach_add_(ps, e)
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def second_step(self, zero_grad: bool = False) -> None:
        """Restore ``w`` and step the base optimizer with the gradient at ``w + e``."""
        for group in self.param_groups:
            for p in group["params"]:
                old = self.state[p].pop("old_p", None)
                if old is not None:
                    p.copy_(old)
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Full SAM step; ``closure`` must do a full forward/backward (at ``w + e``)."""
        if closure is None:
            raise ValueError("SAM.step needs a closure; or call first_step/second_step")
        self.first_step(zero_grad=True)
        with torch.enable_grad():
            loss = closure()
        self.second_step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The base optimizer's state (the groups also carry ``rho`` and ``adaptive``)."""
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load into the base optimizer and share its (new) param groups again."""
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
        self.state.clear()


def disable_running_stats(model: nn.Module) -> list[tuple[_BatchNorm, Any, Tensor | None]]:
    """Stop batch-norm running-stat updates; returns what :func:`enable_running_stats` needs."""
    saved = []
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            nbt = m.num_batches_tracked
            saved.append((m, m.momentum, None if nbt is None else nbt.clone()))
            m.momentum = 0.0
    return saved


def enable_running_stats(saved: list[tuple[_BatchNorm, Any, Tensor | None]]) -> None:
    """Undo :func:`disable_running_stats`: momentum and ``num_batches_tracked`` restored."""
    for m, momentum, nbt in saved:
        m.momentum = momentum
        if nbt is not None:
            m.num_batches_tracked.copy_(nbt)


@contextmanager
def frozen_bn_stats(model: nn.Module) -> Iterator[None]:
    """Context in which forward passes leave batch-norm running statistics unchanged."""
    saved = disable_running_stats(model)
    try:
        yield
    finally:
        enable_running_stats(saved)
