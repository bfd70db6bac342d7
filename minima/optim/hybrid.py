"""Hybrid optimizer: SGD with momentum, then AdaHessian once the validation loss is low.

The study's "hybrid" (PAPER_SPEC, E2): train with SGD-momentum until the validation loss
first drops below a threshold ``tl``, then switch to AdaHessian with its own lr/betas for
the rest of training. The switch is decided at the end of an epoch: the epoch whose
validation loss is the first one strictly below ``tl`` is recorded as ``switch_epoch``, and
every later step uses AdaHessian (its moments start from zero at the switch).
"""

from __future__ import annotations

import math
from typing import Any

from torch.optim import SGD, Optimizer

from .adahessian import AdaHessian

__all__ = ["Hybrid"]

SWITCH_EVENT = "sgd->adahessian"


class Hybrid:
    """Two optimizers on the same parameters and the rule that switches between them.

    Args:
        sgd: The first-phase optimizer (SGD with momentum).
        adahessian: The second-phase optimizer.
        tl: Validation-loss threshold; the switch happens after the first epoch with
            ``val_loss < tl``.
    """

    phases = ("sgd", "adahessian")

    def __init__(self, sgd: SGD, adahessian: AdaHessian, tl: float) -> None:
        self.sgd = sgd
        self.adahessian = adahessian
        self.tl = float(tl)
        self.phase = "sgd"
        self.switch_epoch: int | None = None

    @property
    def optimizers(self) -> dict[str, Optimizer]:
        """Both inner optimizers by phase name."""
        return {"sgd": self.sgd, "adahessian": self.adahessian}

    @property
    def active(self) -> Optimizer:
        """The optimizer of the current phase."""
        return self.optimizers[self.phase]

    def on_epoch_end(self, epoch: int, val_loss: float) -> str | None:
        """Switch to AdaHessian at the first epoch with ``val_loss < tl``.

        Returns:
            ``"sgd->adahessian"`` at the switch, else ``None`` (NaN never switches).
        """
        if self.phase == "sgd" and not math.isnan(val_loss) and val_loss < self.tl:
            self.phase = "adahessian"
            self.switch_epoch = int(epoch)
            return SWITCH_EVENT
        return None

    def state_dict(self) -> dict[str, Any]:
        """Phase, switch epoch and both optimizers' states."""
        return {
            "phase": self.phase,
            "switch_epoch": self.switch_epoch,
            "tl": self.tl,
            "sgd": self.sgd.state_dict(),
            "adahessian": self.adahessian.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`state_dict`."""
        if state["phase"] not in self.phases:
            raise ValueError(f"phase must be one of {self.phases}, got {state['phase']!r}")
        self.phase = state["phase"]
        self.switch_epoch = state["switch_epoch"]
        self.tl = float(state["tl"])
        self.sgd.load_state_dict(state["sgd"])
        self.adahessian.load_state_dict(state["adahessian"])
