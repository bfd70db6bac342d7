"""Optimizers of the study behind one interface: ``build_train_step(model, spec)``.

First order (torch.optim): sgd, adagrad, rmsprop, adam. Second order: :class:`AdaHessian`.
Switching: :class:`Hybrid` (SGD-momentum, then AdaHessian). Sharpness-aware: :class:`SAM`.
LR schedules as per-epoch factors: :func:`lr_factor`.
"""

from .adahessian import AdaHessian
from .hybrid import Hybrid
from .registry import REGISTRY, build_train_step, resolve_spec
from .sam import SAM, disable_running_stats, enable_running_stats, frozen_bn_stats
from .schedules import lr_factor, validate_schedule
from .train_step import TrainStep

__all__ = [
    "REGISTRY",
    "SAM",
    "AdaHessian",
    "Hybrid",
    "TrainStep",
    "build_train_step",
    "disable_running_stats",
    "enable_running_stats",
    "frozen_bn_stats",
    "lr_factor",
    "resolve_spec",
    "validate_schedule",
]
