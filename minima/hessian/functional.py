"""A model's mean loss over a fixed dataset as a function of one flat parameter vector.

Every curvature analysis (Hessian-vector products, line searches, loss landscapes,
sharpness) needs the same object: ``theta -> L(theta)``, the *mean* loss over a fixed,
recorded list of ``(x, y)`` batches, evaluated with ``torch.func.functional_call`` so the
user's module is never written to. This module holds that object.

Evaluation mode: the model is run in eval mode (every module's ``training`` flag is set
to False for the call and restored afterwards). For batch norm this means the trained
*running* statistics normalise every input, so the loss, its gradient and its Hessian
are those of the eval-mode function (the network the test set sees), not of the
train-mode function whose per-batch statistics depend on the batch (Li et al. 2018 and
PyHessian both evaluate in eval mode). Dropout is the identity.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

LossFn = Callable[[Tensor, Tensor], Tensor]
Batches = Sequence[tuple[Tensor, Tensor]]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode and restore each one's own flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, flag in flags:
            module.training = flag


class FunctionalLoss:
    """``theta -> mean loss over fixed batches`` for a snapshot of ``model``'s weights.

    The trainable parameters (``requires_grad=True``) are copied once, in
    ``named_parameters()`` order, into the flat vector ``theta`` (``dtype`` on
    ``device``); frozen parameters and buffers are constants. Inputs are cast to ``dtype``
    when they are floating point; targets are left as given. The loss over several
    batches is the size-weighted mean of the per-batch losses, so with a mean-reduced
    ``loss_fn`` it is the mean loss over all samples, whatever the batch sizes.

    Args:
        model: the network; its weights are copied (later changes to it are not seen),
            and it is only ever run in eval mode.
        loss_fn: ``loss_fn(outputs, targets)`` returning the batch's *mean* loss.
        batches: the fixed data, a non-empty list of ``(x, y)`` pairs.
        dtype: floating dtype of the computation (float32 by default, float64 on request).
        device: where to compute; the device of the model's parameters by default.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batches: Batches,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        if not dtype.is_floating_point:
            raise ValueError(f"dtype must be floating point, got {dtype}")
        if len(batches) == 0:
            raise ValueError("batches is empty: the loss needs at least one (x, y) batch")
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not named:
            raise ValueError("model has no trainable parameters")
        self.model = model
        self.loss_fn = loss_fn
        self.dtype = dtype
        self.device = torch.device(device) if device is not None else named[0][1].device
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.numels = [p.numel() for _, p in named]
        self.theta = torch.cat(
            [p.detach().reshape(-1).to(self.device, dtype) for _, p in named]
        ).contiguous()
        trainable = set(self.names)
        constants = {
            n: p.detach() for n, p in model.named_parameters() if n not in trainable
        } | dict(model.named_buffers())
        self.constants = {n: self._cast(t) for n, t in constants.items()}
        self.batches = [(self._cast(x), y.to(self.device)) for x, y in batches]
        self.batch_sizes = [int(x.shape[0]) for x, _ in self.batches]
        self.n_samples = sum(self.batch_sizes)
        self.weights = [b / self.n_samples for b in self.batch_sizes]

    @property
    def n_params(self) -> int:
        """Length of the flat parameter vector."""
        return self.theta.numel()

    def _cast(self, t: Tensor) -> Tensor:
        t = t.detach()
        if t.is_floating_point():
            return t.to(self.device, self.dtype)
        return t.to(self.device)

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        """Split a flat vector into named tensors shaped like the parameters (views)."""
        parts = torch.split(flat, self.numels)
        return {n: t.view(s) for n, t, s in zip(self.names, parts, self.shapes, strict=True)}

    def outputs(self, theta: Tensor, x: Tensor) -> Tensor:
        """The network's outputs at parameters ``theta`` (eval-mode function)."""
        with eval_mode(self.model):
            return functional_call(self.model, (self.unflatten(theta), self.constants), (x,))

    def batch_loss(self, theta: Tensor, x: Tensor, y: Tensor) -> Tensor:
        """Mean loss of one batch at ``theta``."""
        return self.loss_fn(self.outputs(theta, x), y)

    def loss(self, theta: Tensor | None = None) -> Tensor:
        """Mean loss over all batches at ``theta`` (the snapshot by default)."""
        theta = self.theta if theta is None else theta
        with torch.no_grad():
            return sum(
                w * self.batch_loss(theta, x, y)
                for w, (x, y) in zip(self.weights, self.batches, strict=True)
            )

    def gradient(self, theta: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean loss and its gradient (flat) over all batches at ``theta``."""
        theta = (self.theta if theta is None else theta).detach()
        total_loss = torch.zeros((), dtype=self.dtype, device=self.device)
        total_grad = torch.zeros_like(theta)
        for w, (x, y) in zip(self.weights, self.batches, strict=True):
            leaf = theta.clone().requires_grad_(True)
            loss = self.batch_loss(leaf, x, y)
            (g,) = torch.autograd.grad(loss, leaf)
            total_loss += w * loss.detach()
            total_grad += w * g
        return total_loss, total_grad

    def evaluate(self, thetas: Tensor, *, chunk_size: int | None = 8) -> tuple[Tensor, Tensor]:
        """Mean loss and accuracy at each row of ``thetas`` (shape ``(P, n_params)``).

        The points are evaluated together with ``torch.func.vmap`` over parameter vectors,
        ``chunk_size`` at a time (memory grows with it); if the model cannot be vmapped the
        points are evaluated one by one. Accuracy is the share of argmax predictions equal
        to integer targets, NaN when the outputs are not class scores.

        Returns:
            ``(losses, accuracies)``, each of shape ``(P,)``.
        """
        if thetas.ndim != 2 or thetas.shape[1] != self.n_params:
            raise ValueError(
                f"thetas must have shape (P, {self.n_params}), got {tuple(thetas.shape)}"
            )
        thetas = thetas.to(self.device, self.dtype)
        losses = torch.zeros(thetas.shape[0], dtype=self.dtype, device=self.device)
        correct = torch.zeros(thetas.shape[0], dtype=self.dtype, device=self.device)
        is_classification = True
        with torch.no_grad():
            for w, (x, y) in zip(self.weights, self.batches, strict=True):
                out = self._outputs_at_points(thetas, x, chunk_size)
                losses += w * self._losses_of_outputs(out, y)
                if out.ndim == 3 and not y.is_floating_point() and y.ndim == 1:
                    correct += (out.argmax(dim=-1) == y).sum(dim=1).to(self.dtype)
                else:
                    is_classification = False
        acc = correct / self.n_samples if is_classification else torch.full_like(losses, torch.nan)
        return losses, acc

    def _outputs_at_points(self, thetas: Tensor, x: Tensor, chunk_size: int | None) -> Tensor:
        if getattr(self, "_vmap_ok", True):
            try:
                return vmap(lambda th: self.outputs(th, x), chunk_size=chunk_size)(thetas)
            except (RuntimeError, NotImplementedError) as err:
                warnings.warn(
                    f"vmap over parameter points failed ({err}); evaluating points one by one",
                    RuntimeWarning,
                    stacklevel=3,
                )
                self._vmap_ok = False
        return torch.stack([self.outputs(th, x) for th in thetas])

    def _losses_of_outputs(self, out: Tensor, y: Tensor) -> Tensor:
        try:
            return vmap(self.loss_fn, in_dims=(0, None))(out, y)
        except (RuntimeError, NotImplementedError):
            return torch.stack([self.loss_fn(o, y) for o in out])

    def per_batch_grad_fn(self, x: Tensor, y: Tensor) -> Callable[[Tensor], Tensor]:
        """``theta -> gradient of the batch's mean loss`` as a ``torch.func`` function."""
        return grad(lambda th: self.batch_loss(th, x, y))
