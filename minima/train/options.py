"""Training settings read per experiment, kept free of torch so that the workflow's start-up
(which checks the config against them) stays light."""

from __future__ import annotations

from collections.abc import Sequence


def takes_full_gradient(setting: bool | Sequence[str], experiment: str) -> bool:
    """Config ``training.full_grad_norm`` for one experiment's runs: true (every experiment),
    false, or the experiments whose runs take it (a backward pass per epoch costs time)."""
    if isinstance(setting, bool):
        return setting
    return experiment in setting
