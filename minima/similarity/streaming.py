"""Linear CKA accumulated over minibatches of examples, for datasets too big to hold at once.

Two different estimators, not interchangeable:

- :class:`StreamingLinearCKA`: the *exact* full-data biased linear CKA (same number as
  :func:`~minima.similarity.cka.linear_cka` on all rows stacked), from running sums of
  X^T X (p x p), Y^T Y (q x q), X^T Y (p x q) and the column sums; centring is done
  algebraically at the end (Xc^T Yc = X^T Y - s_x s_y^T / n). Memory (p + q)^2 float64
  numbers, independent of n; suited to layers with up to a few thousand features. For wider
  layers, :func:`~minima.similarity.layerwise.layerwise_cka` switches to an exact Gram form.
- :class:`MinibatchCKA`: the minibatch estimator of Nguyen, Raghu & Kornblith (2021): the
  unbiased HSIC_1 averaged over fixed minibatches, CKA = mean HSIC_1(K, L) /
  sqrt(mean HSIC_1(K, K) mean HSIC_1(L, L)). It depends on the batch composition.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from minima.similarity._matrix import ArrayLike, check_pair
from minima.similarity.cka import hsic_unbiased


class StreamingLinearCKA:
    """Exact full-data linear CKA (biased HSIC_0 form) from batches X_b (b, p), Y_b (b, q).

    Every batch is shifted by the column means of the first batch before accumulation: the
    result is unchanged (centring removes any constant shift), but the running sums no longer
    carry the large mean component whose subtraction at the end would cost precision.

    Args:
        device: where the accumulators live; defaults to the first batch's device.
    """

    def __init__(self, *, device: torch.device | str | None = None) -> None:
        self.device = None if device is None else torch.device(device)
        self.n = 0
        self._shift: tuple[Tensor, Tensor] | None = None

    def _zeros(self, *shape: int) -> Tensor:
        return torch.zeros(*shape, dtype=torch.float64, device=self.device)

    def update(self, X: ArrayLike, Y: ArrayLike) -> None:
        """Add a batch: X (b, p) and Y (b, q), the same b examples in the same order."""
        Xt, Yt = check_pair(X, Y, min_examples=1)
        if self.device is None:
            self.device = Xt.device
        Xt, Yt = Xt.to(self.device), Yt.to(self.device)
        if self._shift is None:
            self._shift = (Xt.mean(0), Yt.mean(0))
            p, q = Xt.shape[1], Yt.shape[1]
            self.sx, self.sy = self._zeros(p), self._zeros(q)
            self.xx, self.yy, self.xy = self._zeros(p, p), self._zeros(q, q), self._zeros(p, q)
        elif Xt.shape[1] != self.sx.shape[0] or Yt.shape[1] != self.sy.shape[0]:
            raise ValueError(
                f"X has shape {tuple(Xt.shape)} and Y has shape {tuple(Yt.shape)}: earlier "
                f"batches had {self.sx.shape[0]} and {self.sy.shape[0]} features"
            )
        Xt, Yt = Xt - self._shift[0], Yt - self._shift[1]
        self.n += Xt.shape[0]
        self.sx += Xt.sum(0)
        self.sy += Yt.sum(0)
        self.xx += Xt.T @ Xt
        self.yy += Yt.T @ Yt
        self.xy += Xt.T @ Yt

    def compute(self) -> float:
        """Linear CKA over all examples seen so far (NaN if a side has no variance)."""
        if self.n < 2:
            raise ValueError(f"StreamingLinearCKA saw {self.n} examples: needs at least 2")
        n = self.n
        cross = (self.xy - torch.outer(self.sx, self.sy) / n).square().sum()
        self_x = (self.xx - torch.outer(self.sx, self.sx) / n).square().sum()
        self_y = (self.yy - torch.outer(self.sy, self.sy) / n).square().sum()
        denom = float(self_x * self_y)
        return float(cross) / math.sqrt(denom) if denom > 0 else math.nan


class MinibatchCKA:
    """Minibatch linear CKA of Nguyen, Raghu & Kornblith (2021): unbiased HSIC_1 averaged.

    Each :meth:`update` with a batch X_b (b, p), Y_b (b, q), b >= 4, adds HSIC_1 of the
    batch's linear Gram matrices; :meth:`compute` returns the ratio of the averages. Not the
    full-data CKA: it estimates the population CKA with an unbiased numerator and
    denominators, and its value depends on how the examples are split into batches.
    """

    def __init__(self) -> None:
        self.batches = 0
        self._sums = [0.0, 0.0, 0.0]

    def update(self, X: ArrayLike, Y: ArrayLike) -> None:
        """Add one minibatch: X (b, p), Y (b, q) with the same b >= 4 examples."""
        Xt, Yt = check_pair(X, Y, min_examples=4)
        K, L = Xt @ Xt.T, Yt @ Yt.T
        for i, (A, B) in enumerate(((K, L), (K, K), (L, L))):
            self._sums[i] += hsic_unbiased(A, B)
        self.batches += 1

    def compute(self) -> float:
        """Mean HSIC_1(K, L) / sqrt(mean HSIC_1(K, K) mean HSIC_1(L, L)) over the batches."""
        if self.batches == 0:
            raise ValueError("MinibatchCKA saw no batches")
        cross, self_x, self_y = self._sums
        denom = self_x * self_y
        return cross / math.sqrt(denom) if denom > 0 else math.nan
