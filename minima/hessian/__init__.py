"""Hessian engine and curvature analyses: HVPs, eigenpairs, trace, density, E5 tools.

Everything is the Hessian of the *mean* loss over a fixed list of ``(x, y)`` batches,
with the model in eval mode (batch norm normalises with its running statistics).
"""

from minima.hessian.data import make_batches, subset_indices
from minima.hessian.eigen import EigenResult, lanczos_eigen
from minima.hessian.eigsh import EigshResult, eigsh_eigenpairs, subset_agreement
from minima.hessian.functional import FunctionalLoss, eval_mode
from minima.hessian.hvp import HVP_METHODS, HessianOperator
from minima.hessian.lanczos import LanczosResult, lanczos
from minima.hessian.line_search import eigen_line_search, line_search_summary
from minima.hessian.params import load_weights
from minima.hessian.pyhessian_backend import PyHessianSession, torch_eig_shim
from minima.hessian.slq import DensityResult, slq_density, slq_nodes, smooth_density
from minima.hessian.spectrum import BACKENDS, density, top_eigen, trace
from minima.hessian.trace import TraceResult, hutchinson_trace, rademacher

__all__ = [
    "BACKENDS",
    "HVP_METHODS",
    "DensityResult",
    "EigenResult",
    "EigshResult",
    "FunctionalLoss",
    "HessianOperator",
    "LanczosResult",
    "PyHessianSession",
    "TraceResult",
    "density",
    "eigen_line_search",
    "eigsh_eigenpairs",
    "eval_mode",
    "hutchinson_trace",
    "lanczos",
    "lanczos_eigen",
    "line_search_summary",
    "load_weights",
    "make_batches",
    "rademacher",
    "slq_density",
    "slq_nodes",
    "smooth_density",
    "subset_agreement",
    "subset_indices",
    "top_eigen",
    "torch_eig_shim",
    "trace",
]
