"""Layer x layer similarity of two networks on the same inputs.

:func:`layerwise_cka` computes the exact full-data linear CKA (biased HSIC_0 form, Kornblith
et al. 2019) for every pair of Conv2d/Linear layers without ever holding a whole-dataset
activation tensor. It needs, per layer pair (a, b), ||Xc_a^T Xc_b||_F^2 = tr(Kc_a Kc_b)
(and the same for (a, a) and (b, b)), and for each such term picks one of two exact forms:

- feature form: running sums of X_a^T X_b (p_a x p_b) and column sums over one pass,
  centred at the end: Xc_a^T Xc_b = X_a^T X_b - s_a s_b^T / n. Memory p_a p_b numbers.
- Gram form, for wide layers: tr(Kc_a Kc_b) = tr(K_a K_b) - (2/n) r_a.r_b + S_a S_b / n^2,
  with K = X X^T, r = K 1 its row sums and S = 1^T K 1 (since Kc = H K H). tr(K_a K_b) is
  summed over Gram blocks K^{ij} = X^i X^j^T: consecutive batches are held together as a
  block of about ``block_examples`` examples, which is paired with itself and then with
  every later batch (off-diagonal blocks count twice, for their transposes). No n x n
  matrix is ever stored; the price is recomputation: later batches are run through the
  models again for every block, about (n / block_examples - 1) / 2 extra passes over the
  data (4.5 for n = 10,000 and blocks of 1,024).

Terms go to the feature form, smallest first, while their matrices fit in
``max_feature_elements`` numbers in total (default 2**25: 256 MiB in float64); the rest use
the Gram form. Memory of the Gram form: one block of wide-layer outputs per model, in the
models' dtype (ResNet18 on 32 x 32 inputs: ~0.6 M features per example over its 21 layers,
2.5 MB per example in float32, so 2.5 GB per model for 1,024 examples), a transient float64
copy of one layer's block (0.5 GB for the first conv), the stacked Gram blocks
(layers x block x batch float64 numbers) and n row sums per wide layer. Compute: about
n^2 x (wide layers' features) multiply-adds per model, against n p^2 for the feature form
of a p-feature layer: the Gram form is also the cheaper one once p > n.

Every batch is shifted by the first batch's per-feature mean before any product (exactly
neutral, centring removes it) so the final centring subtracts small numbers.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pandas as pd
import torch
from torch import Tensor, nn

from minima.similarity._layer_cka import Block, LayerwiseCKA
from minima.similarity.activations import PairedForward, gather_activations
from minima.similarity.measures import similarity_matrix

log = logging.getLogger("minima.similarity")


def _fingerprint(x: Tensor) -> tuple[int, float, float]:
    xd = x.detach().to(torch.float64)
    return x.shape[0], float(xd.sum()), float(xd.square().sum())


def _check_same_batch(seen: dict[int, tuple[int, float, float]], j: int, x: Tensor) -> None:
    fp = _fingerprint(x)
    if j not in seen:
        seen[j] = fp
    elif fp[0] != seen[j][0] or not all(
        math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9)
        for u, v in zip(fp[1:], seen[j][1:], strict=True)
    ):
        raise ValueError(
            f"batch {j} changed between passes over `batches`: the exact Gram form needs the "
            "same batches in the same order every time (no shuffling, no random augmentation)"
        )


def layerwise_cka(
    model_a: nn.Module,
    model_b: nn.Module,
    batches: Iterable[Any],
    *,
    device: torch.device | str,
    dtype: torch.dtype = torch.float64,
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    max_feature_elements: int = 2**25,
    block_examples: int = 1024,
) -> pd.DataFrame:
    """Exact linear CKA (biased HSIC_0 form) between every Conv2d/Linear layer of two models.

    Both models run in eval mode on the same inputs; outputs are flattened per example and
    streamed into per-layer-pair accumulators (feature or Gram form per term, see the module
    docstring), never into a whole-dataset activation tensor. The value equals
    :func:`~minima.similarity.cka.linear_cka` on the stacked activations of all examples.

    Args:
        model_a: first network.
        model_b: second network (may be ``model_a``).
        batches: inputs, as tensors (b, ...) or ``(inputs, labels, ...)`` tuples. When a
            layer is wide enough to need the Gram form it is iterated several times and must
            give the same batches in the same order (a list, or a DataLoader without
            shuffling or random augmentation); this is checked.
        device: where the models run and the sums accumulate.
        dtype: accumulation dtype (the models run in their own dtype; outputs are cast).
        layers_a: layer names of model_a (default: all Conv2d/Linear, in execution order).
        layers_b: the same for model_b.
        max_feature_elements: budget, in numbers of ``dtype``, for all feature-form sum
            matrices together (2**25: 256 MiB in float64); terms beyond it use the Gram form.
        block_examples: examples whose wide-layer outputs are held at once for the Gram
            form (whole batches, at least one): larger blocks mean fewer passes over the
            data (about n / (2 block_examples) extra) but more memory (see module doc).

    Returns:
        Tidy DataFrame with columns layer_a, layer_b, index_a, index_b (execution order),
        cka, and form ("feature" or "gram": how the cross term was computed); ``attrs``
        holds n_examples and the estimator.
    """
    one_shot = isinstance(batches, Iterator)
    seen: dict[int, tuple[int, float, float]] = {}
    acc: LayerwiseCKA | None = None
    pending: list[Block] = []
    forward = PairedForward(model_a, model_b, device=device, layers_a=layers_a, layers_b=layers_b)

    total = len(batches) if hasattr(batches, "__len__") else None
    start = time.perf_counter()

    def gram_pass(last: int) -> None:
        """Gram blocks of the held batches with themselves and with every later batch."""
        block = Block.merge(pending)
        pending.clear()
        acc.add_gram_block(block, None)
        for j, batch_j in enumerate(batches):
            if j > last:
                xj, aj, bj = forward(batch_j)
                _check_same_batch(seen, j, xj)
                acc.add_gram_block(block, acc.block(j, aj, bj))
        # one line per block: with 10,000 test images on a CPU, each block takes minutes
        log.info(
            "linear CKA: Gram block of batches %d-%d paired with every later batch "
            "(%d of %s batches, %.0f s)",
            block.parts[0][0],
            last,
            last + 1,
            total if total is not None else "?",
            time.perf_counter() - start,
        )

    with forward:
        for i, batch in enumerate(batches):
            x, acts_a, acts_b = forward(batch)
            _check_same_batch(seen, i, x)
            if acc is None:
                acc = LayerwiseCKA(
                    acts_a, acts_b, dtype=dtype, max_feature_elements=max_feature_elements
                )
                if acc.needs_gram and one_shot:
                    raise ValueError(
                        "`batches` is a one-shot iterator, but layers "
                        f"{acc.a.gram + acc.b.gram} are too wide for the feature form within "
                        f"max_feature_elements={max_feature_elements} and need several passes: "
                        "pass a list or a non-shuffling DataLoader, or raise the budget"
                    )
            acc.add_features(acts_a, acts_b)
            if acc.needs_gram:
                pending.append(acc.block(i, acts_a, acts_b))
                if sum(b.size for b in pending) >= block_examples:
                    gram_pass(i)
        if pending:
            gram_pass(i)
    if acc is None:
        raise ValueError("`batches` yielded no examples")
    cka = acc.matrix()
    rows = [
        (ka, kb, s, t, float(cka[s, t]), acc.forms[(ka, kb)])
        for s, ka in enumerate(acc.a.names)
        for t, kb in enumerate(acc.b.names)
    ]
    df = pd.DataFrame(rows, columns=["layer_a", "layer_b", "index_a", "index_b", "cka", "form"])
    df.attrs.update(
        n_examples=acc.n, estimator="linear CKA, biased HSIC_0, exact over all examples"
    )
    return df


def layerwise_similarity(
    model_a: nn.Module,
    model_b: nn.Module,
    batches: Iterable[Any],
    *,
    measure: str,
    device: torch.device | str,
    layers_a: Sequence[str] | None = None,
    layers_b: Sequence[str] | None = None,
    max_examples: int | None = None,
    spatial_pool: int | None = None,
    projection_dim: int | None = None,
    seed: int = 0,
    **options: Any,
) -> pd.DataFrame:
    """Layer x layer table of ``measure`` (svcca, pwcca, opd, cka, cka_unbiased) of two models.

    Gathers the activations of the first ``max_examples`` examples (optionally pooled and/or
    randomly projected, see :class:`~minima.similarity.activations.FeatureReducer`), then
    calls :func:`~minima.similarity.measures.similarity_matrix` on ``device`` in float64.
    For CKA over a whole dataset prefer :func:`layerwise_cka`, which streams.

    Returns:
        Tidy DataFrame: layer_a, layer_b, index_a, index_b, and a column named ``measure``;
        ``attrs`` records n_examples and the feature reduction.
    """
    acts_a, acts_b = gather_activations(
        model_a,
        model_b,
        batches,
        device=device,
        layers_a=layers_a,
        layers_b=layers_b,
        max_examples=max_examples,
        spatial_pool=spatial_pool,
        projection_dim=projection_dim,
        seed=seed,
    )
    df = similarity_matrix(acts_a, acts_b, measure=measure, device=device, **options)
    df.attrs.update(
        n_examples=next(iter(acts_a.values())).shape[0],
        spatial_pool=spatial_pool,
        projection_dim=projection_dim,
        seed=seed,
        options=dict(options),
    )
    return df
