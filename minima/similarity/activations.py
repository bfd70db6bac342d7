"""Capture per-layer activations of a network with forward hooks.

"Layers" are the ``nn.Conv2d`` and ``nn.Linear`` modules; each one's output is flattened per
example to a row: a conv map (C, H, W) becomes C*H*W features (65,536 for ResNet18's first
conv on 32 x 32 inputs). Layers are listed in the order they run in the forward pass.

Batches: an iterable of input tensors, or of tuples/lists whose first item is the input
(a DataLoader's ``(images, labels)``). Models run in eval mode under ``torch.no_grad`` on
``device`` and are put back where they were afterwards (device, train/eval mode).

Capping features (for SVCCA/PWCCA/OPD, which need the activations themselves): see
:class:`FeatureReducer`. CKA over all examples needs none of this:
:func:`minima.similarity.layerwise.layerwise_cka` streams.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.Linear)

Transform = Callable[[str, Tensor], Tensor]


def layer_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Conv2d and Linear submodules of ``model`` by qualified name (registration order)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LAYER_TYPES)}


def batch_inputs(batch: Any) -> Tensor:
    """The input tensor of a batch: the batch itself, or its first item if a tuple/list."""
    if isinstance(batch, Tensor):
        return batch
    if isinstance(batch, Sequence) and batch and isinstance(batch[0], Tensor):
        return batch[0]
    raise TypeError(f"a batch must be a tensor or a (inputs, ...) sequence, got {type(batch)}")


class ActivationCapture:
    """Forward hooks that keep each layer's output, flattened to (batch, features).

    Use as a context manager (hooks are removed on exit). After each forward,
    :meth:`pop` returns ``{layer: (b, features) tensor}`` in execution order and clears it.

    Args:
        model: the network.
        layers: names to capture (default: every Conv2d/Linear layer).
        transform: optional ``f(name, output) -> output`` applied in the hook before
            flattening (pooling/projection to cap memory).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        layers: Sequence[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        modules = layer_modules(model)
        if layers is not None:
            missing = [name for name in layers if name not in modules]
            if missing:
                raise ValueError(f"no Conv2d/Linear layers named {missing}; have {list(modules)}")
            modules = {name: modules[name] for name in layers}
        if not modules:
            raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to capture")
        self.modules = modules
        self.transform = transform
        self._outputs: dict[str, Tensor] = {}
        self._handles: list[Any] = []

    def _hook(self, name: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: Any, output: Tensor) -> None:
            if name in self._outputs:
                raise RuntimeError(f"layer {name!r} ran twice in one forward: not supported")
            out = output.detach()
            if self.transform is not None:
                out = self.transform(name, out)
            self._outputs[name] = out.flatten(1)

        return hook

    def __enter__(self) -> ActivationCapture:
        self._handles = [m.register_forward_hook(self._hook(n)) for n, m in self.modules.items()]
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def pop(self) -> dict[str, Tensor]:
        """Outputs of the last forward, {layer: (b, features)}, in execution order."""
        outputs, self._outputs = self._outputs, {}
        missing = set(self.modules) - set(outputs)
        if missing:
            raise RuntimeError(f"layers {sorted(missing)} did not run in the forward pass")
        return outputs


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return None


@contextmanager
def evaluating(models: Sequence[nn.Module], device: torch.device | str) -> Iterator[None]:
    """Put models in eval mode on ``device`` for the block; restore mode and device after."""
    saved = [(m, m.training, _model_device(m)) for m in models]
    try:
        for m in models:
            m.eval().to(device)
        with torch.no_grad():
            yield
    finally:
        for m, training, old_device in saved:
            m.train(training)
            if old_device is not None:
                m.to(old_device)


class PairedForward:
    """Context manager that runs two models on the same batches and returns their activations.

    Inside the block both models are in eval mode on ``device`` under ``torch.no_grad`` with
    capture hooks on; on exit hooks are removed and each model's mode and device restored.
    Calling it with a batch returns (inputs, acts_a, acts_b), acts {layer: (b, features)}.
    If ``model_b is model_a`` with the same layers, it runs once and acts_b is acts_a.

    Args:
        model_a: first network.
        model_b: second network (may be model_a).
        device: where to run.
        layers_a: layer names of model_a to capture (default: all Conv2d/Linear).
        layers_b: the same for model_b.
        transform: optional per-layer reduction applied in the hooks (:class:`FeatureReducer`).
    """

    def __init__(
        self,
        model_a: nn.Module,
        model_b: nn.Module,
        *,
        device: torch.device | str,
        layers_a: Sequence[str] | None = None,
        layers_b: Sequence[str] | None = None,
        transform: Transform | None = None,
    ) -> None:
        self.same = model_b is model_a and layers_b == layers_a
        self.models = (model_a, model_b)
        self.device = torch.device(device)
        self.cap_a = ActivationCapture(model_a, layers=layers_a, transform=transform)
        self.cap_b = (
            self.cap_a
            if self.same
            else ActivationCapture(model_b, layers=layers_b, transform=transform)
        )
        self._stack = ExitStack()

    def __enter__(self) -> PairedForward:
        models = self.models[:1] if self.same else self.models
        self._stack.enter_context(evaluating(models, self.device))
        self._stack.enter_context(self.cap_a)
        if not self.same:
            self._stack.enter_context(self.cap_b)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def __call__(self, batch: Any) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """Forward one batch through both models: (inputs on device, acts_a, acts_b)."""
        x = batch_inputs(batch).to(self.device)
        self.models[0](x)
        acts_a = self.cap_a.pop()
        if self.same:
            return x, acts_a, acts_a
        self.models[1](x)
        return x, acts_a, self.cap_b.pop()


class FeatureReducer:
    """Caps the features per layer before activations are stored (optional, both steps).

    1. ``spatial_pool = s``: conv maps (C, H, W) with H or W above s are average-pooled to
       (C, s, s) (``adaptive_avg_pool2d``), so C*s*s features. A lossy summary: it keeps
       channel responses per region and changes the measure's value (not an estimator of the
       unpooled one).
    2. ``projection_dim = k``: layers still wider than k are multiplied by a Gaussian matrix
       G (features, k) with N(0, 1/k) entries (Johnson-Lindenstrauss): E[G G^T] = I, so each
       inner product x_i.x_j is kept in expectation, with error ~ |x_i| |x_j| / sqrt(k). The
       errors add up in Frobenius norms: ||G^T C G||_F^2 ~ ||C||_F^2 + tr(C)^2 / k for a
       covariance C, so linear CKA is biased downwards unless k is well above the layer's
       effective rank; CCA-based measures see a random k-dim view. Prefer pooling, or check
       on a few layers against the unprojected values. G is fixed per layer name and seed
       (drawn on the CPU, identical on every device), so two models of the same architecture
       get the same projections. Memory: features x k numbers per projected layer
       (65,536 x 2,048 float32 = 512 MiB).

    Args:
        spatial_pool: output side s of the pooling, or None.
        projection_dim: k, or None.
        seed: seed of the projections.
    """

    def __init__(
        self, *, spatial_pool: int | None = None, projection_dim: int | None = None, seed: int = 0
    ) -> None:
        self.spatial_pool = spatial_pool
        self.projection_dim = projection_dim
        self.seed = seed
        self._projections: dict[str, Tensor] = {}

    def projection(self, name: str, features: int, like: Tensor) -> Tensor:
        """The fixed (features, k) Gaussian projection of layer ``name``."""
        if name not in self._projections:
            gen = torch.Generator().manual_seed(self.seed * 1_000_003 + zlib.crc32(name.encode()))
            k = self.projection_dim
            G = torch.randn(features, k, generator=gen, dtype=torch.float64) / k**0.5
            self._projections[name] = G.to(device=like.device, dtype=like.dtype)
        return self._projections[name]

    def __call__(self, name: str, out: Tensor) -> Tensor:
        """Reduce one layer's output (b, ...) to (b, features <= cap)."""
        s = self.spatial_pool
        if s is not None and out.ndim == 4 and (out.shape[2] > s or out.shape[3] > s):
            out = F.adaptive_avg_pool2d(out, s)
        flat = out.flatten(1)
        k = self.projection_dim
        if k is not None and flat.shape[1] > k:
            flat = flat @ self.projection(name, flat.shape[1], flat)
        return flat


def gather_activations(
    model_a: nn.Module,
    model_b: nn.Module,
    batches: Iterable[Any],
    *,
    device: torch.device | str,
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    max_examples: int | None = None,
    spatial_pool: int | None = None,
    projection_dim: int | None = None,
    seed: int = 0,
    storage_dtype: torch.dtype = torch.float32,
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Activations of both models on the same examples, {layer: (n, features)} on the CPU.

    Takes the first ``max_examples`` examples of ``batches`` (all if None): pass a
    non-shuffling loader, or a fixed random subset, to choose which. Features can be capped
    by pooling and/or projection (:class:`FeatureReducer`, documented there). Stored in
    ``storage_dtype`` (float32 halves the memory; the measures compute in float64). Memory:
    n x (total features) x bytes per model, e.g. 2,000 examples of an unreduced ResNet18 on
    32 x 32 inputs (~0.6 M features) is 4.9 GB per model in float32.

    Returns:
        (acts_a, acts_b), each {layer name: (n, features)} in execution order.
    """
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples must be positive, got {max_examples}")
    reducer = None
    if spatial_pool is not None or projection_dim is not None:
        reducer = FeatureReducer(
            spatial_pool=spatial_pool, projection_dim=projection_dim, seed=seed
        )
    parts_a: dict[str, list[Tensor]] = {}
    parts_b: dict[str, list[Tensor]] = {}
    taken, shared = 0, False
    forward = PairedForward(
        model_a, model_b, device=device, layers_a=layers_a, layers_b=layers_b, transform=reducer
    )
    with forward:
        for batch in batches:
            x, acts_a, acts_b = forward(batch)
            keep = x.shape[0] if max_examples is None else min(x.shape[0], max_examples - taken)
            shared = acts_b is acts_a  # same model and layers: store once
            for acts, parts in ((acts_a, parts_a), (acts_b, parts_b))[: 1 if shared else 2]:
                for name, A in acts.items():
                    parts.setdefault(name, []).append(A[:keep].to("cpu", storage_dtype))
            taken += keep
            if max_examples is not None and taken >= max_examples:
                break
    if taken == 0:
        raise ValueError("batches yielded no examples")
    out_a = {name: torch.cat(p) for name, p in parts_a.items()}
    out_b = out_a if shared else {name: torch.cat(p) for name, p in parts_b.items()}
    return out_a, out_b
