"""Matrix-free Hessian of a model's mean loss over fixed data: Hessian-vector products.

``H v`` is accumulated over the batches, each batch weighted by its share of the samples,
so ``H`` is the Hessian of the *mean* loss over the whole fixed dataset (the quantity
PyHessian's data-loader mode computes). Two ways to get one product:

- ``forward_over_reverse``: ``torch.func.jvp`` of ``torch.func.grad`` through
  ``functional_call``. No graph is kept between products, and several probes go through
  one ``torch.func.vmap`` call (the main speed lever for trace and density estimates).
- ``double_backward``: ``autograd.grad`` of a ``create_graph`` gradient (PyHessian's way).
  Works for every op with a double backward. With ``cache_graph=True`` the gradient's
  graph over all batches is built once and reused for every product (fast, but it holds
  every batch's graph in memory). Several probes reuse one graph per batch: on CUDA in one
  ``is_grads_batched`` call; on CPU one ``autograd.grad`` per probe, which
  ``benchmarks/hessian.py --hvp-costs`` measured 1.65x faster there (LeNet-5, 2,000 MNIST
  images: 420-445 vs 690-730 ms per probe; vmap over the backward does not pay on CPU).

``method="auto"`` first looks up ``AUTO_METHODS``, a static table by model family and
device type read from ``benchmarks/hessian.py --hvp-costs`` (static, so that a rerun
picks the same method whatever the machine's load): where the table says double backward
it is used directly. Otherwise it tries forward-over-reverse and falls back to double backward,
with a warning, when the model or loss has an op without (working) forward-mode AD
(e.g. a custom ``autograd.Function`` without ``jvp``; ``F.mse_loss`` raises a ZeroTensor
error under forward-over-reverse in torch 2.x). The model runs in
eval mode (see ``minima.hessian.functional``): with batch norm the Hessian is that of
the eval-mode function, with the trained running statistics.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch import Tensor, nn
from torch.func import jvp, vmap

from minima.hessian.functional import Batches, FunctionalLoss, LossFn

HVP_METHODS = ("auto", "forward_over_reverse", "double_backward")

# (model family, device type) -> the faster product, per benchmarks/hessian.py --hvp-costs
# (see benchmarks/README.md). Families not listed use forward-over-reverse (with its
# fallback). On CPU, double backward was faster for both families measured: ResNet18 1.2x,
# LeNet-5 over 5,000 MNIST images 1.25x uncached and 1.9x with the cached graph
# (``cache_graph``), which only double backward has.
AUTO_METHODS: dict[tuple[str, str], str] = {
    ("resnet", "cpu"): "double_backward",
    ("lenet", "cpu"): "double_backward",
}


def model_family(model: nn.Module) -> str:
    """``"resnet"``, ``"lenet"``, ``"vgg"`` or ``"other"``, from the model's class name."""
    name = type(model).__name__.lower()
    return next((f for f in ("resnet", "lenet", "vgg") if f in name), "other")


def auto_method(model: nn.Module, device: torch.device) -> str:
    """The method ``"auto"`` starts with for this model on this device (``AUTO_METHODS``)."""
    return AUTO_METHODS.get((model_family(model), device.type), "forward_over_reverse")


# Share of an analysis job's memory request (resources.analysis.mem_mb) that a cached
# double-backward graph may take: the rest holds the model, the data, the probes and the
# Krylov vectors, and absorbs the estimate's error.
CACHE_GRAPH_SHARE = 0.5


def cached_graph_bytes(op: HessianOperator) -> int:
    """Bytes a cached double-backward graph over all of ``op``'s batches would hold.

    Measured, not modelled: the storages autograd saves while it builds the first batch's
    ``create_graph`` gradient (the batch's inputs and the weights excluded: they are held
    anyway), scaled to every batch by its number of examples.
    """
    x, y = op.batches[0]
    held = {x.untyped_storage().data_ptr(), op.theta.untyped_storage().data_ptr()}
    saved: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in held:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    leaf = op.theta.clone().requires_grad_(True)
    held.add(leaf.untyped_storage().data_ptr())
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        (g,) = torch.autograd.grad(op.batch_loss(leaf, x, y), leaf, create_graph=True)
    del g
    examples = sum(op.batch_sizes)
    per_example = sum(saved.values()) / max(int(x.shape[0]), 1)
    return int(per_example * examples) + 2 * op.theta.numel() * op.theta.element_size()


def choose_cache_graph(op: HessianOperator, setting: bool | str, mem_mb: float | None) -> bool:
    """Whether ``op`` should cache its graph: ``setting`` True/False is obeyed (True only
    matters for double backward); ``"auto"`` caches when the product is double backward and
    the graph fits ``CACHE_GRAPH_SHARE`` of the job's ``mem_mb`` (no request: no cache)."""
    if setting != "auto":
        return bool(setting)
    if op.method != "double_backward" or not mem_mb:
        return False
    return cached_graph_bytes(op) <= CACHE_GRAPH_SHARE * mem_mb * 2**20


class HessianOperator(FunctionalLoss):
    """The Hessian of the mean loss over fixed batches, at a snapshot of the weights.

    Vectors are flat, in the order of ``model.named_parameters()`` restricted to trainable
    parameters (see ``FunctionalLoss``); ``matmat`` takes probes as rows, shape
    ``(p, n_params)``. ``n_hvp`` counts Hessian-vector products (one per probe per pass
    over the data).

    Args:
        model: the network (weights copied; run in eval mode only).
        loss_fn: ``loss_fn(outputs, targets)``, the batch's mean loss.
        batches: the fixed data, a list of ``(x, y)`` batches.
        dtype: float32 by default; float64 on request (the weights and inputs are cast).
        device: where to compute; the model's device by default.
        method: ``"auto"``, ``"forward_over_reverse"`` or ``"double_backward"``.
        cache_graph: double backward only: build the ``create_graph`` gradient once and
            reuse it for every product (memory: every batch's double-backward graph).
        probe_chunk: at most this many probes go through one vmap call (bounds memory);
            None means all of them at once.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        batches: Batches,
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        method: str = "auto",
        cache_graph: bool = False,
        probe_chunk: int | None = None,
    ) -> None:
        if method not in HVP_METHODS:
            raise ValueError(f"method must be one of {HVP_METHODS}, got {method!r}")
        super().__init__(model, loss_fn, batches, dtype=dtype, device=device)
        if method == "auto" and auto_method(model, self.device) == "double_backward":
            method = "double_backward"
        self.method = method
        self.cache_graph = cache_graph
        self.probe_chunk = probe_chunk
        self.n_hvp = 0
        self._graph: tuple[Tensor, Tensor] | None = None
        self._batched_backward_ok = True
        self._vmap_probes_ok = True
        # several probes in one is_grads_batched call: faster on CUDA, slower on CPU
        self.batched_backward = self.device.type != "cpu"

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_params, n_params)``."""
        return (self.n_params, self.n_params)

    def matvec(self, v: Tensor) -> Tensor:
        """``H v`` for one flat vector ``v``."""
        return self.matmat(v.reshape(1, -1))[0]

    def matmat(self, V: Tensor) -> Tensor:
        """``H v`` for every row ``v`` of ``V`` (shape ``(p, n_params)``), batched."""
        if V.ndim != 2 or V.shape[1] != self.n_params:
            raise ValueError(f"probes must have shape (p, {self.n_params}), got {tuple(V.shape)}")
        V = V.to(self.device, self.dtype)
        if self.method == "auto":
            try:
                out = self._forward_over_reverse(V)
                self.method = "forward_over_reverse"
            except (RuntimeError, NotImplementedError) as err:
                if isinstance(err, torch.OutOfMemoryError):
                    raise  # not a missing rule: lower probe_chunk or the batch size
                warnings.warn(
                    f"forward-over-reverse HVP failed ({type(err).__name__}: {err}); "
                    "falling back to double backward",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.method = "double_backward"
                out = self._double_backward(V)
        elif self.method == "forward_over_reverse":
            out = self._forward_over_reverse(V)
        else:
            out = self._double_backward(V)
        self.n_hvp += V.shape[0]
        return out

    def _forward_over_reverse(self, V: Tensor) -> Tensor:
        with warnings.catch_warnings():
            # torch's first forward-AD call scripts its jvp decompositions and warns that
            # torch.jit.script is deprecated: torch's own business, not the caller's.
            warnings.filterwarnings("ignore", message=".*torch.jit.script", category=FutureWarning)
            return self._forward_over_reverse_products(V)

    def _forward_over_reverse_products(self, V: Tensor) -> Tensor:
        out = torch.zeros_like(V)
        for w, (x, y) in zip(self.weights, self.batches, strict=True):
            grad_fn = self.per_batch_grad_fn(x, y)

            def hvp(v: Tensor, grad_fn=grad_fn) -> Tensor:
                return jvp(grad_fn, (self.theta,), (v,))[1]

            if V.shape[0] > 1 and self._vmap_probes_ok:
                try:
                    out += w * vmap(hvp, chunk_size=self.probe_chunk)(V)
                    continue
                except (RuntimeError, NotImplementedError) as err:
                    hvp(V[0])  # raises if jvp itself fails: then "auto" falls back instead
                    warnings.warn(
                        f"vmap over probes failed ({err}); looping over probes",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                    self._vmap_probes_ok = False
            out += w * torch.stack([hvp(v) for v in V])
        return out

    def _double_backward(self, V: Tensor) -> Tensor:
        if self.cache_graph:
            if self._graph is None:
                leaf = self.theta.clone().requires_grad_(True)
                total = torch.zeros_like(leaf)
                for w, (x, y) in zip(self.weights, self.batches, strict=True):
                    (g,) = torch.autograd.grad(self.batch_loss(leaf, x, y), leaf, create_graph=True)
                    total = total + w * g
                self._graph = (leaf, total)
            leaf, total = self._graph
            return self._backward_products(total, leaf, V)
        out = torch.zeros_like(V)
        for w, (x, y) in zip(self.weights, self.batches, strict=True):
            leaf = self.theta.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(self.batch_loss(leaf, x, y), leaf, create_graph=True)
            out += w * self._backward_products(g, leaf, V)
        return out

    def _backward_products(self, g: Tensor, leaf: Tensor, V: Tensor) -> Tensor:
        chunk = self.probe_chunk or V.shape[0]
        rows = []
        for start in range(0, V.shape[0], chunk):
            block = V[start : start + chunk]
            if block.shape[0] > 1 and self._batched_backward_ok and self.batched_backward:
                try:
                    (hv,) = torch.autograd.grad(
                        g, leaf, grad_outputs=block, is_grads_batched=True, retain_graph=True
                    )
                    rows.append(hv.detach())
                    continue
                except RuntimeError as err:
                    warnings.warn(
                        f"batched double backward failed ({err}); looping over probes",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                    self._batched_backward_ok = False
            for v in block:
                (hv,) = torch.autograd.grad(g, leaf, grad_outputs=v, retain_graph=True)
                rows.append(hv.detach().unsqueeze(0))
        return torch.cat(rows)

    def release_graph(self) -> None:
        """Free the cached double-backward graph (``cache_graph=True``)."""
        self._graph = None

    def to_scipy(self) -> LinearOperator:
        """This operator as a float64 ``scipy.sparse.linalg.LinearOperator`` (e.g. for eigsh).

        The HVPs themselves run in ``self.dtype`` on ``self.device``; only the vectors
        exchanged with scipy are float64 numpy arrays.
        """

        def matvec(x: np.ndarray) -> np.ndarray:
            v = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64).reshape(-1))
            return self.matvec(v).detach().to("cpu", torch.float64).numpy()

        def matmat(X: np.ndarray) -> np.ndarray:
            V = torch.from_numpy(np.ascontiguousarray(np.asarray(X, dtype=np.float64).T))
            return self.matmat(V).detach().to("cpu", torch.float64).numpy().T

        n = self.n_params
        return LinearOperator(
            (n, n), matvec=matvec, rmatvec=matvec, matmat=matmat, dtype=np.float64
        )


def make_operator(
    model: nn.Module,
    loss_fn: LossFn,
    batches: Batches,
    *,
    cache_graph: bool | str = False,
    mem_mb: float | None = None,
    **kwargs,
) -> HessianOperator:
    """A ``HessianOperator`` whose ``cache_graph`` is decided by ``choose_cache_graph``
    (``"auto"``: cache when the graph fits the job's memory request)."""
    op = HessianOperator(model, loss_fn, batches, **kwargs)
    op.cache_graph = choose_cache_graph(op, cache_graph, mem_mb)
    return op
