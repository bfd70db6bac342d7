"""Choosing the torch device and making its kernels reproducible."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def resolve_device(name: str) -> torch.device:
    """Map the config's ``device`` (auto | cpu | cuda | cuda:N) to a torch device.

    ``auto`` takes CUDA when torch sees a GPU (under SLURM or our local GPU slots, the job only
    sees the GPU it was given), else the CPU. Asking for CUDA where there is none is an error,
    not a silent fall-back: a run must never claim hardware it did not use.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device: {name!r} asks for CUDA, but torch sees no GPU here; "
            "set device: auto or cpu in the config"
        )
    return device


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from one integer."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask torch for deterministic kernels (bitwise-repeatable runs on one machine).

    On CUDA, cuBLAS needs a fixed workspace for that, which must be set before its first use;
    ops without a deterministic kernel warn rather than fail (``warn_only``), so the run goes on.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    torch.backends.cudnn.benchmark = not enabled
