"""Accumulators behind :func:`minima.similarity.layerwise.layerwise_cka`.

The math (feature form, Gram form over blocks, shifting, the choice between them) is in the
docstring of :mod:`minima.similarity.layerwise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

Acts = dict[str, Tensor]


@dataclass
class Block:
    """Consecutive batches held together for the Gram pass: their Gram layers' outputs
    (concatenated) and (batch index, size) of each batch, in order."""

    acts_a: Acts
    acts_b: Acts
    parts: list[tuple[int, int]]

    @property
    def size(self) -> int:
        return sum(b for _, b in self.parts)

    @staticmethod
    def merge(blocks: list[Block]) -> Block:
        """One block from consecutive ones; frees their tensors layer by layer as it goes,
        so the extra memory is one layer's block, not a second copy of everything."""
        if len(blocks) == 1:
            return blocks[0]

        def cat(side: list[Acts]) -> Acts:
            return {k: torch.cat([acts.pop(k) for acts in side]) for k in list(side[0])}

        return Block(
            cat([b.acts_a for b in blocks]),
            cat([b.acts_b for b in blocks]),
            [part for b in blocks for part in b.parts],
        )


class _Side:
    """Per-model accumulators: shifts, column sums, self terms, Gram row sums."""

    def __init__(self, first: Acts, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.names = list(first)
        self.dims = {k: v.shape[1] for k, v in first.items()}
        self.device = next(iter(first.values())).device
        self.shift = {k: v.to(dtype).mean(0) for k, v in first.items()}
        self.sums = {k: self.zeros(p) for k, p in self.dims.items()}
        self.self_feature: dict[str, Tensor] = {}  # p x p sums, layers whose self term fits
        self.gram: list[str] = []  # layers in some Gram-form term
        self.tr_self = self.zeros(0)
        self.rows: dict[int, Tensor] = {}  # batch index -> (len(gram), b) row sums of K
        self._row_sums: Tensor | None = None  # all of them, concatenated once at the end

    def zeros(self, *shape: int) -> Tensor:
        return torch.zeros(*shape, dtype=self.dtype, device=self.device)

    def plan(self, self_feature: set[str], gram: set[str]) -> None:
        self.self_feature = {k: self.zeros(self.dims[k], self.dims[k]) for k in self_feature}
        self.gram = [k for k in self.names if k in gram]
        self.tr_self = self.zeros(len(self.gram))

    def shifted(self, acts: Acts, name: str) -> Tensor:
        return acts[name].to(self.dtype) - self.shift[name]

    def add_features(self, acts: Acts, keep: set[str]) -> Acts:
        """Add a batch's column sums and feature-form self terms; return the shifted
        activations of the layers in ``keep`` (one layer at a time otherwise, to bound memory).
        """
        kept = {}
        for k in self.names:
            X = self.shifted(acts, k)
            self.sums[k] += X.sum(0)
            if k in self.self_feature:
                self.self_feature[k] += X.T @ X
            if k in keep:
                kept[k] = X
        return kept

    def keep(self, acts: Acts) -> Acts:
        return {k: acts[k] for k in self.gram}

    def gram_block(self, acts_i: Acts, acts_j: Acts, b_i: int, b_j: int) -> Tensor:
        """K^{ij} = X^i X^j^T of every Gram layer, stacked: (len(gram), b_i, b_j)."""
        if not self.gram:
            return self.zeros(0, b_i, b_j)
        return torch.stack([self.shifted(acts_i, k) @ self.shifted(acts_j, k).T for k in self.gram])

    def _add_rows(self, sums: Tensor, parts: list[tuple[int, int]]) -> None:
        pieces = sums.split([b for _, b in parts], dim=1)
        for (index, _), piece in zip(parts, pieces, strict=True):
            self.rows[index] = self.rows[index] + piece if index in self.rows else piece

    def add_gram(
        self, K: Tensor, parts_i: list[tuple[int, int]], parts_j: list[tuple[int, int]] | None
    ) -> None:
        """Add a Gram block: a diagonal one (``parts_j`` None) counts once, any other twice
        (its transpose, the block (j, i), has the same traces and mirrored row sums)."""
        self._row_sums = None
        self.tr_self += (1.0 if parts_j is None else 2.0) * K.flatten(1).square().sum(1)
        self._add_rows(K.sum(2), parts_i)
        if parts_j is not None:
            self._add_rows(K.sum(1), parts_j)

    def row_sums(self) -> Tensor:
        """r = K 1 of every Gram layer over all examples: (len(gram), n)."""
        if self._row_sums is None:
            self._row_sums = torch.cat([self.rows[b] for b in sorted(self.rows)], 1)
        return self._row_sums

    def self_frob_sq(self, name: str, n: int) -> float:
        """||Xc^T Xc||_F^2 = tr(Kc Kc) of one layer."""
        if name in self.self_feature:
            s = self.sums[name]
            return float((self.self_feature[name] - torch.outer(s, s) / n).square().sum())
        t, r = self.gram.index(name), self.row_sums()
        return _centred_trace(self.tr_self[t], r[t], r[t], n)


def _centred_trace(tr_kl: Tensor, r_k: Tensor, r_l: Tensor, n: int) -> float:
    """tr(H K H L) from tr(K L), row sums r_K, r_L: tr(KL) - 2/n r_K.r_L + S_K S_L / n^2."""
    return float(tr_kl - 2.0 / n * (r_k @ r_l) + r_k.sum() * r_l.sum() / n**2)


class LayerwiseCKA:
    """Exact layer x layer linear CKA accumulators; see the module docstring."""

    def __init__(
        self, first_a: Acts, first_b: Acts, *, dtype: torch.dtype, max_feature_elements: int
    ) -> None:
        self.a, self.b = _Side(first_a, dtype), _Side(first_b, dtype)
        da, db = self.a.dims, self.b.dims
        terms = [(("a", k), p * p) for k, p in da.items()]
        terms += [(("b", k), q * q) for k, q in db.items()]
        terms += [(("ab", (ka, kb)), da[ka] * db[kb]) for ka in da for kb in db]
        used, feature = 0, set()
        for key, size in sorted(terms, key=lambda t: t[1]):  # smallest first, while they fit
            if used + size <= max_feature_elements:
                feature.add(key)
                used += size
        gram_cross = [
            pair for (kind, pair), _ in terms if kind == "ab" and (kind, pair) not in feature
        ]
        self_a = {k for k in da if ("a", k) in feature}
        self_b = {k for k in db if ("b", k) in feature}
        self.a.plan(self_a, (set(da) - self_a) | {ka for ka, _ in gram_cross})
        self.b.plan(self_b, (set(db) - self_b) | {kb for _, kb in gram_cross})
        self.needs_gram = bool(self.a.gram or self.b.gram)
        self.cross_feature = {
            pair: self.a.zeros(da[pair[0]], db[pair[1]]) for (kind, pair) in feature if kind == "ab"
        }
        self.tr_cross = self.a.zeros(len(self.a.gram), len(self.b.gram))
        self.n = 0
        self.forms = {
            (ka, kb): "feature" if (ka, kb) in self.cross_feature else "gram"
            for ka in da
            for kb in db
        }

    def add_features(self, acts_a: Acts, acts_b: Acts) -> None:
        """Feature-form sums; call once per batch."""
        Xa = self.a.add_features(acts_a, {ka for ka, _ in self.cross_feature})
        Xb = self.b.add_features(acts_b, {kb for _, kb in self.cross_feature})
        self.n += next(iter(acts_a.values())).shape[0]
        for (ka, kb), M in self.cross_feature.items():
            M += Xa[ka].T @ Xb[kb]

    def block(self, index: int, acts_a: Acts, acts_b: Acts) -> Block:
        """What the Gram pass needs of batch ``index``: its Gram layers' outputs."""
        b = next(iter(acts_a.values())).shape[0]
        return Block(self.a.keep(acts_a), self.b.keep(acts_b), [(index, b)])

    def add_gram_block(self, block_i: Block, block_j: Block | None) -> None:
        """Gram block (i, j) of the Gram-form layers of both models; j None: (i, i)."""
        other = block_i if block_j is None else block_j
        parts_j = None if block_j is None else block_j.parts
        KA = self.a.gram_block(block_i.acts_a, other.acts_a, block_i.size, other.size)
        KB = self.b.gram_block(block_i.acts_b, other.acts_b, block_i.size, other.size)
        weight = 1.0 if block_j is None else 2.0
        self.tr_cross += weight * (KA.flatten(1) @ KB.flatten(1).T)
        self.a.add_gram(KA, block_i.parts, parts_j)
        self.b.add_gram(KB, block_i.parts, parts_j)

    def cross_frob_sq(self, ka: str, kb: str) -> float:
        """||Xc_a^T Xc_b||_F^2 = tr(Kc_a Kc_b)."""
        n = self.n
        if (ka, kb) in self.cross_feature:
            M = self.cross_feature[(ka, kb)]
            return float((M - torch.outer(self.a.sums[ka], self.b.sums[kb]) / n).square().sum())
        ia, ib = self.a.gram.index(ka), self.b.gram.index(kb)
        return _centred_trace(
            self.tr_cross[ia, ib], self.a.row_sums()[ia], self.b.row_sums()[ib], n
        )

    def matrix(self) -> Tensor:
        """The (L_a, L_b) linear-CKA matrix, float64 on the CPU (NaN for constant layers)."""
        self_a = {k: self.a.self_frob_sq(k, self.n) for k in self.a.names}
        self_b = {k: self.b.self_frob_sq(k, self.n) for k in self.b.names}
        out = torch.empty(len(self_a), len(self_b), dtype=torch.float64)
        for s, ka in enumerate(self.a.names):
            for t, kb in enumerate(self.b.names):
                denom = self_a[ka] * self_b[kb]
                out[s, t] = self.cross_frob_sq(ka, kb) / math.sqrt(denom) if denom > 0 else math.nan
        return out
