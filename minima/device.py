"""Choosing the torch device and making its kernels reproducible."""

from __future__ import annotations

import os
import random
import re
import subprocess

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
            f"device: {name!r} asks for CUDA, but torch sees no GPU here ({cuda_report()}); "
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


class NoGpuError(RuntimeError):
    """A job that asked for a GPU finds none that torch can use."""


def nvidia_driver_version() -> str | None:
    """The NVIDIA kernel driver's version (e.g. ``550.54.15``) if this machine shows one.

    Read from ``/proc/driver/nvidia/version`` (present when the driver is loaded), else from
    ``nvidia-smi``; None when neither is there.
    """
    try:
        with open("/proc/driver/nvidia/version") as handle:
            version = parse_driver_version(handle.read())
        if version:
            return version
    except OSError:
        pass
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
    except (OSError, subprocess.SubprocessError):
        return None
    return out[0] if out else None


def parse_driver_version(text: str) -> str | None:
    """The version in ``/proc/driver/nvidia/version``'s text (proprietary or open module)."""
    match = re.search(r"Kernel Module\s+(?:for \S+\s+)?([0-9]+\.[0-9.]+)", text)
    return match.group(1) if match else None


def cuda_report() -> str:
    """What torch sees of CUDA, in one line (for errors about a missing GPU)."""
    build = torch.version.cuda
    driver = nvidia_driver_version()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return (
        f"torch {torch.__version__} "
        f"({'built for CUDA ' + build if build else 'a CPU-only build, no CUDA'}), "
        f"torch.cuda.is_available() = {torch.cuda.is_available()}, "
        f"NVIDIA driver: {driver or 'none visible'}"
        + (f", CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else "")
    )


def check_gpu_job(gpus: int, device: str, *, cpu_fallback: bool = False) -> None:
    """Fail at once when a job asked for ``gpus`` GPUs but torch can use none.

    A GPU job that quietly trains on the CPU takes days and records CPU numbers as the GPU
    run; so it is an error unless the config says so: ``device: cpu``, or ``cpu_fallback``
    (config key ``gpu_fallback: cpu``).

    Raises:
        NoGpuError: saying what torch sees (CUDA build, availability, driver) and the ways out.
    """
    if gpus <= 0 or device == "cpu" or cpu_fallback or torch.cuda.is_available():
        return
    raise NoGpuError(
        f"this job asked for {gpus} GPU(s) (resources gpu: {gpus}) but torch can use none: "
        f"{cuda_report()}. Install a torch build for this machine's driver (README, "
        "'GPU drivers'), or run on the CPU on purpose: set device: cpu, gpu: 0 in resources, "
        "or gpu_fallback: cpu in the config."
    )
