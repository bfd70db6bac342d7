"""What made an output: versions, device, code commit, host and time.

Recorded in every JSON sidecar, so a figure can always be traced to the software and hardware
that produced it.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch

from minima.device import nvidia_driver_version

PACKAGES = (
    "torch",
    "torchvision",
    "numpy",
    "scipy",
    "pandas",
    "safetensors",
    "snakemake",
    "pyhessian",
    "matplotlib",
)


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``names`` (None where a package is absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    from minima import __version__

    versions["minima"] = __version__
    return versions


def device_description(device: torch.device) -> dict[str, Any]:
    """Human-readable name of the device a job ran on (GPU model, or the CPU)."""
    info: dict[str, Any] = {"device": str(device)}
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        info["name"] = torch.cuda.get_device_name(index)
        info["cuda"] = torch.version.cuda  # the CUDA torch was built for
        info["cudnn"] = torch.backends.cudnn.version()
        info["driver"] = nvidia_driver_version()  # the NVIDIA driver it ran on
        info["cuda_runtime_driver"] = _cuda_driver_api()
    else:
        info["name"] = _cpu_model()
        info["threads"] = torch.get_num_threads()
        info["torch_cuda_build"] = torch.version.cuda
    return info


def git_commit(repo_dir: str | Path | None = None) -> dict[str, Any]:
    """Commit of the code that ran, and whether the work tree had uncommitted changes."""
    cwd = Path(repo_dir) if repo_dir else Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(status)}


def provenance(device: torch.device) -> dict[str, Any]:
    """The full provenance record written next to every output."""
    return {
        "versions": package_versions(),
        "hardware": device_description(device),
        "code": git_commit(),
        "host": socket.gethostname(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _cuda_driver_api() -> int | None:
    """The CUDA version the driver supports, as CUDA encodes it (12040 = 12.4), if torch says."""
    getter = getattr(torch._C, "_cuda_getDriverVersion", None)
    try:
        return int(getter()) if getter else None
    except RuntimeError:
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
