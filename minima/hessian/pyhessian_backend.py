"""PyHessian 0.1 as a backend, with its faults on current torch worked around.

PyHessian (Yao et al. 2020) is the reference the paper's E1 densities come from. Used
as is with current torch it goes wrong in five ways; each is handled here:

1. ``density()`` calls ``torch.eig``, which torch now keeps only as an error raised
   after all the HVPs ran. While PyHessian runs, ``torch.eig`` is replaced by a
   symmetric solver (``torch.linalg.eigh``) returning the old ``(n, 2)`` real/imaginary
   layout; PyHessian only ever passes it its symmetric Lanczos tridiagonal. The original
   attribute is restored afterwards (not thread-safe while it runs).
2. ``trace()`` stops when ``|mean - previous| / (previous + 1e-6) < tol``: a negative
   first sample makes the left side negative, so it returns after two samples even at
   ``tol=0``. We pass ``tol=-inf`` (the test can never pass) so exactly ``maxIter``
   samples are drawn, and compute the mean and standard error ourselves.
3. Its constructor runs ``backward(create_graph=True)`` on a single batch, which
   *accumulates* into ``.grad``: a second ``hessian`` object on the same model sees the
   sum of two gradients and a doubled Hessian. Gradients are saved and set to None
   before, and restored after (which also frees the graph PyHessian left in ``.grad``).
4. It switches the model to eval mode and leaves it there: every module's mode is
   restored afterwards.
5. ``eigenvalues()``'s default ``tol=1e-3`` (relative change of the Rayleigh quotient
   between power iterations) stops visibly short of the eigenvalue: callers pass a tight
   ``tol`` (1e-6 by default here) and enough iterations.

A small bias remains and is documented rather than corrected: PyHessian normalises by
``||v|| + 1e-6``, so its Rayleigh quotients are low by about ``2e-6`` relative.

PyHessian draws its random vectors from the global torch RNG with the default dtype;
both are set for the call (``fork_rng`` keeps the caller's RNG state) so results are
reproducible and float64 models work. Its ``cuda`` flag is set from ``device``.
"""

from __future__ import annotations

import contextlib
import copy
import warnings
from collections.abc import Iterator

import numpy as np
import torch
from torch import Tensor, nn

from minima.hessian.functional import Batches, LossFn


def _symmetric_eig(A: Tensor, eigenvectors: bool = False) -> tuple[Tensor, Tensor]:
    """``torch.eig``'s old return layout computed by ``eigh`` (``A`` must be symmetric)."""
    values, vectors = torch.linalg.eigh(A)
    packed = torch.stack([values, torch.zeros_like(values)], dim=1)
    return packed, (vectors if eigenvectors else A.new_empty(0))


@contextlib.contextmanager
def torch_eig_shim() -> Iterator[None]:
    """Temporarily give torch a working ``torch.eig`` for PyHessian's symmetric tridiagonal."""
    had = hasattr(torch, "eig")
    original = getattr(torch, "eig", None)
    torch.eig = _symmetric_eig
    try:
        yield
    finally:
        if had:
            torch.eig = original
        else:
            del torch.eig


@contextlib.contextmanager
def preserved_model_state(model: nn.Module) -> Iterator[None]:
    """Clear ``.grad`` before and restore gradients and every module's mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    grads = [(p, p.grad) for p in model.parameters()]
    for p, _ in grads:
        p.grad = None
    try:
        yield
    finally:
        for p, g in grads:
            p.grad = g
        for m, flag in modes:
            m.training = flag


@contextlib.contextmanager
def _seeded(seed: int, dtype: torch.dtype, device: torch.device) -> Iterator[None]:
    devices = [device.index or 0] if device.type == "cuda" else []
    previous = torch.get_default_dtype()
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        torch.set_default_dtype(dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(previous)


class PyHessianSession:
    """A PyHessian ``hessian`` object built and used safely on a model and fixed batches.

    Use as a context manager; the model's gradients and modes are restored on exit. A
    single batch uses PyHessian's single-batch mode (one ``create_graph`` gradient reused
    for every product); several batches its data-loader mode (size-weighted mean).

    Args:
        model: the network; used in place when it already has ``dtype`` and ``device``,
            else a converted copy is used.
        loss_fn: ``loss_fn(outputs, targets)``, the batch's mean loss.
        batches: the fixed data.
        dtype: floating dtype of the computation.
        device: ``cuda`` or ``cpu``; PyHessian moves data with ``.cuda()`` when CUDA.
        seed: seed of PyHessian's random vectors.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batches: Batches,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        seed: int = 0,
    ) -> None:
        first = next(model.parameters())
        self.device = torch.device(device) if device is not None else first.device
        if first.dtype != dtype or first.device != self.device:
            model = copy.deepcopy(model).to(self.device, dtype)
        self.model = model
        self.loss_fn = loss_fn
        self.batches = [
            (
                x.to(self.device, dtype) if x.is_floating_point() else x.to(self.device),
                y.to(self.device),
            )
            for x, y in batches
        ]
        self.dtype = dtype
        self.seed = seed
        self._stack: contextlib.ExitStack | None = None
        self.hessian = None

    def __enter__(self) -> PyHessianSession:
        from pyhessian import hessian  # imported here: optional dependency of one backend

        stack = contextlib.ExitStack()
        stack.enter_context(warnings.catch_warnings())
        # PyHessian's backward(create_graph=True) warns of a grad/param reference cycle;
        # preserved_model_state breaks it by restoring .grad on exit.
        warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
        stack.enter_context(preserved_model_state(self.model))
        if self.device.type == "cuda":  # PyHessian's .cuda() targets the current device
            stack.enter_context(torch.cuda.device(self.device))
        stack.enter_context(_seeded(self.seed, self.dtype, self.device))
        stack.enter_context(torch_eig_shim())
        self._stack = stack
        cuda = self.device.type == "cuda"
        try:
            if len(self.batches) == 1:
                self.hessian = hessian(self.model, self.loss_fn, data=self.batches[0], cuda=cuda)
            else:
                self.hessian = hessian(self.model, self.loss_fn, dataloader=self.batches, cuda=cuda)
        except BaseException:
            stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.hessian = None
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def eigenvalues(self, k: int, *, tol: float, max_iter: int) -> tuple[np.ndarray, Tensor]:
        """Top-``k`` (by magnitude) eigenpairs by PyHessian's power iteration with deflation."""
        values, vectors = self.hessian.eigenvalues(maxIter=max_iter, tol=tol, top_n=k)
        flat = torch.stack([torch.cat([t.reshape(-1) for t in v]) for v in vectors])
        return np.asarray(values, dtype=np.float64), flat.detach()

    def trace_samples(self, n_probes: int) -> np.ndarray:
        """Exactly ``n_probes`` Hutchinson samples (``tol=-inf`` disables the early stop)."""
        return np.asarray(self.hessian.trace(maxIter=n_probes, tol=float("-inf")), np.float64)

    def density_nodes(
        self, n_steps: int, n_probes: int
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """SLQ nodes and weights per probe (``torch.eig`` shimmed)."""
        nodes, weights = self.hessian.density(iter=n_steps, n_v=n_probes)
        return (
            [np.asarray(t, dtype=np.float64) for t in nodes],
            [np.asarray(w, dtype=np.float64) for w in weights],
        )
