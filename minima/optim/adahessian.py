"""AdaHessian (Yao et al. 2021, "ADAHESSIAN: An Adaptive Second Order Optimizer for ML").

The update, as in the reference code (amirgholami/adahessian) and torch-optimizer's
``Adahessian``::

    D_hat = mean_i z_i * (H z_i)          Hutchinson, z_i Rademacher, i < n_samples
    D     = |D_hat|                       per element; for 4-D conv kernels the mean of
                                          |D_hat| over the two spatial dims (block size b)
    m     = b1 m + (1 - b1) g
    v     = b2 v + (1 - b2) D * D
    denom = (sqrt(v) / sqrt(1 - b2^t))^k + eps                 k = hessian_power
    w     = w - lr * (m / (1 - b1^t) / denom + weight_decay * w)   decoupled, scaled by lr

For one sample ``|z * Hz| = |Hz|`` since ``|z| = 1``, so D is ``|Hz|`` as in the paper.
With ``n_samples > 1`` the Hutchinson products ``z_i * Hz_i`` are averaged *before* the
absolute value (the unbiased diag(H) estimate, as davda54/ada-hessian does).
``update_each = k`` recomputes D only every k-th step and reuses the cached D in between
(the "delayed Hessian update" of davda54/ada-hessian); m and v are updated every step.

Random draws: per Hutchinson sample, ONE flat vector
``2 * torch.randint(0, 2, (N,), generator=generator, dtype=dtype, device=generator.device) - 1``
over the N elements of all refreshed parameters (parameter-group order), split and reshaped
per parameter. This order is part of the contract: tests reproduce it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["AdaHessian", "default_generator"]


def default_generator(device: torch.device | str) -> torch.Generator:
    """A generator on ``device`` seeded from the global CPU RNG.

    Used when no generator is passed, so ``torch.manual_seed`` still makes runs
    reproducible and the generator state can be checkpointed.
    """
    seed = int(torch.randint(0, 2**62, (1,)).item())  # CPU tensor: no device sync
    return torch.Generator(device=device).manual_seed(seed)


class AdaHessian(Optimizer):
    """AdaHessian with Hutchinson diag(H), spatial averaging and the delayed update.

    Contract: the caller has run ``loss.backward(create_graph=True)`` (or set ``p.grad``
    from ``torch.autograd.grad(..., create_graph=True)``) on steps where
    :meth:`hessian_due` is true; on the others a plain ``backward()`` suffices. ``step``
    computes all Hz with one ``torch.autograd.grad(grads, params, grad_outputs=zs)`` call
    (one per sample), frees the graph and detaches ``p.grad``.

    Args:
        params: Parameters or parameter groups.
        lr: Learning rate (reference default 0.1 here; torch-optimizer uses 0.15).
        betas: Decay rates of the gradient and the squared-D moving averages.
        eps: Added to the denominator after the Hessian power (reference: 1e-4).
        weight_decay: Decoupled weight decay, scaled by lr as in the reference.
        hessian_power: Exponent k of the denominator (reference 1; torch-optimizer 0.5).
        update_each: Recompute D every ``update_each`` steps, reuse it in between.
        n_samples: Hutchinson samples averaged per D estimate.
        average_conv_kernel: Average |D_hat| over the spatial dims of 4-D weights.
        generator: Source of the Rademacher draws, on the params' device. ``None``: a
            new one from :func:`default_generator`.
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-4,
        weight_decay: float = 0.0,
        hessian_power: float = 1.0,
        *,
        update_each: int = 1,
        n_samples: int = 1,
        average_conv_kernel: bool = True,
        generator: torch.Generator | None = None,
    ) -> None:
        if not lr > 0.0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not eps > 0.0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if len(betas) != 2 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"betas must be two values in [0, 1), got {betas}")
        if not 0.0 <= hessian_power <= 1.0:
            raise ValueError(f"hessian_power must be in [0, 1], got {hessian_power}")
        if weight_decay < 0.0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        if int(update_each) != update_each or update_each < 1:
            raise ValueError(f"update_each must be an integer >= 1, got {update_each}")
        if int(n_samples) != n_samples or n_samples < 1:
            raise ValueError(f"n_samples must be an integer >= 1, got {n_samples}")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            hessian_power=hessian_power,
            average_conv_kernel=average_conv_kernel,
        )
        super().__init__(params, defaults)
        self.update_each = int(update_each)
        self.n_samples = int(n_samples)
        if generator is None:
            generator = default_generator(self.param_groups[0]["params"][0].device)
        self.generator = generator

    def _params_with_grad(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"] if p.grad is not None]

    def _due(self, p: Tensor) -> bool:
        state = self.state[p]
        return "hessian_diag" not in state or state["step"] % self.update_each == 0

    def hessian_due(self) -> bool:
        """Whether the next ``step`` recomputes D (and so needs ``create_graph=True``)."""
        params = [p for g in self.param_groups for p in g["params"] if p.requires_grad]
        return any(self._due(p) for p in params)

    def _rademacher(self, params: list[Tensor]) -> list[Tensor]:
        n = sum(p.numel() for p in params)
        gen = self.generator
        flat = torch.randint(0, 2, (n,), generator=gen, device=gen.device, dtype=params[0].dtype)
        flat.mul_(2).sub_(1)
        zs = []
        for z, p in zip(flat.split([p.numel() for p in params]), params, strict=True):
            zs.append(z.view_as(p).to(device=p.device, dtype=p.dtype))
        return zs

    @torch.no_grad()
    def _set_hessian(self, params: list[Tensor]) -> None:
        """Hutchinson estimate of diag(H) for ``params``, cached as state['hessian_diag']."""
        grads = [p.grad for p in params]
        outputs = [(i, g) for i, g in enumerate(grads) if g.requires_grad]
        if not outputs:
            raise RuntimeError(
                "AdaHessian needs gradients with a graph: call loss.backward(create_graph=True)"
            )
        d_hat: list[Tensor] | None = None
        for s in range(self.n_samples):
            zs = self._rademacher(params)
            hzs = torch.autograd.grad(
                [g for _, g in outputs],
                params,
                grad_outputs=[zs[i] for i, _ in outputs],
                retain_graph=s < self.n_samples - 1,
                allow_unused=True,
            )
            hzs = [
                torch.zeros_like(p) if h is None else h for h, p in zip(hzs, params, strict=True)
            ]
            if self.n_samples == 1:
                d_hat = list(hzs)  # |z * Hz| = |Hz|: the product is skipped, it is exact anyway
            elif d_hat is None:
                d_hat = torch._foreach_mul(hzs, zs)
            else:
                torch._foreach_addcmul_(d_hat, hzs, zs)
        if self.n_samples > 1:
            torch._foreach_div_(d_hat, float(self.n_samples))
        torch._foreach_abs_(d_hat)
        group_of = {p: g for g in self.param_groups for p in g["params"]}
        for p, d in zip(params, d_hat, strict=True):
            if p.dim() == 4 and group_of[p]["average_conv_kernel"]:
                d = d.mean(dim=(2, 3), keepdim=True).expand_as(p).clone()
            self.state[p]["hessian_diag"] = d

    @torch.no_grad()
    def step(self, closure: Any = None) -> Tensor | None:
        """One AdaHessian step; see the module docstring for the update."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self._params_with_grad()
        if not params:
            return loss
        due = [p for p in params if self._due(p)]
        if due:
            self._set_hessian(due)
        for p in params:  # break the param <-> grad graph cycle of create_graph backward
            if p.grad.requires_grad:
                p.grad = p.grad.detach()

        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            beta1, beta2 = group["betas"]
            k, lr, wd = group["hessian_power"], group["lr"], group["weight_decay"]
            for p in ps:
                st = self.state[p]
                if "exp_avg" not in st:
                    st["step"] = st.get("step", 0)
                    st["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    st["exp_hessian_diag_sq"] = torch.zeros_like(
                        p, memory_format=torch.preserve_format
                    )
                st["step"] += 1
            states = [self.state[p] for p in ps]
            grads = [p.grad for p in ps]
            ms = [s["exp_avg"] for s in states]
            vs = [s["exp_hessian_diag_sq"] for s in states]
            ds = [s["hessian_diag"] for s in states]
            bc1 = [1.0 - beta1 ** s["step"] for s in states]
            sqrt_bc2 = [(1.0 - beta2 ** s["step"]) ** 0.5 for s in states]

            torch._foreach_mul_(ms, beta1)
            torch._foreach_add_(ms, grads, alpha=1.0 - beta1)
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, ds, ds, value=1.0 - beta2)

            denom = torch._foreach_sqrt(vs)
            torch._foreach_div_(denom, sqrt_bc2)
            if k != 1.0:
                torch._foreach_pow_(denom, k)
            torch._foreach_add_(denom, group["eps"])
            update = torch._foreach_div(ms, bc1)
            torch._foreach_div_(update, denom)
            if wd != 0.0:
                torch._foreach_add_(update, ps, alpha=wd)
            torch._foreach_add_(ps, update, alpha=-lr)
        return loss
