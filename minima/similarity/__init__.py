"""Similarity of network representations: CKA, SVCCA, PWCCA, Procrustes; layer x layer.

Measures take activation matrices (n_examples, n_features) and compute in float64:
:func:`linear_cka` (biased HSIC), :func:`linear_cka_unbiased` (unbiased HSIC),
:class:`StreamingLinearCKA` (exact, batch by batch), :class:`MinibatchCKA` (Nguyen et al.
2021), :func:`cca`, :func:`svcca`, :func:`pwcca`, :func:`procrustes_distance`.
Networks: :func:`layerwise_cka` (exact, streamed over a whole dataset) and
:func:`layerwise_similarity` (any measure on a subset). Figures: :mod:`.plots`.
"""

from minima.similarity.activations import (
    ActivationCapture,
    FeatureReducer,
    PairedForward,
    gather_activations,
    layer_modules,
)
from minima.similarity.cca import CCAResult, cca, pwcca, svcca
from minima.similarity.cka import (
    cka_from_grams,
    gram_linear,
    hsic_biased,
    hsic_unbiased,
    linear_cka,
    linear_cka_unbiased,
)
from minima.similarity.filters import conv_weight, filter_grid
from minima.similarity.layerwise import layerwise_cka, layerwise_similarity
from minima.similarity.measures import MEASURES, Measure, get_measure, similarity_matrix
from minima.similarity.procrustes import procrustes_distance
from minima.similarity.streaming import MinibatchCKA, StreamingLinearCKA

__all__ = [
    "MEASURES",
    "ActivationCapture",
    "CCAResult",
    "FeatureReducer",
    "Measure",
    "MinibatchCKA",
    "PairedForward",
    "StreamingLinearCKA",
    "cca",
    "cka_from_grams",
    "conv_weight",
    "filter_grid",
    "gather_activations",
    "get_measure",
    "gram_linear",
    "hsic_biased",
    "hsic_unbiased",
    "layer_modules",
    "layerwise_cka",
    "layerwise_similarity",
    "linear_cka",
    "linear_cka_unbiased",
    "procrustes_distance",
    "pwcca",
    "similarity_matrix",
    "svcca",
]
