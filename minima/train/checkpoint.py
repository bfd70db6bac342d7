"""Exported weights (safetensors + JSON sidecar) and the private resume state of a run.

Exported checkpoints are what analyses read: plain tensors, no pickle, each with a sidecar
that says how they were made and the SHA-256 of the weights file. The resume state is a
``torch.save`` of everything needed to continue a run bit-identically (optimizer moments,
RNG states, running sums); it lives outside the declared outputs so Snakemake does not delete
it when a killed job is rerun.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from minima.io import atomic_path, read_json, sha256_file, write_json


def sidecar_path(weights_path: str | Path) -> Path:
    """``x.safetensors`` -> ``x.json``."""
    return Path(weights_path).with_suffix(".json")


def export_weights(
    model: nn.Module, path: str | Path, metadata: Mapping[str, Any], *, fault: str = "checkpoint"
) -> str:
    """Write the model's state dict as safetensors plus a JSON sidecar; return the SHA-256.

    The weights are written first, the sidecar last: a sidecar always describes the weights
    file next to it. ``fault`` names the writes for fault injection (``<fault>.weights:...``,
    ``<fault>.sidecar:...``, see ``minima.faults``).
    """
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(path, fault=f"{fault}.weights") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    digest = sha256_file(path)
    write_json(
        sidecar_path(path),
        {**metadata, "weights_file": Path(path).name, "sha256": digest},
        fault=f"{fault}.sidecar",
    )
    return digest


def load_weights(model: nn.Module, path: str | Path, *, verify: bool = True) -> nn.Module:
    """Load exported weights into ``model``, checking the sidecar's SHA-256 and every key/shape.

    Raises:
        ValueError: the file was altered since export, or does not fit the model; the message
            names the file and the keys that do not match.
    """
    path = Path(path)
    if verify and sidecar_path(path).exists():
        expected = read_json(sidecar_path(path)).get("sha256")
        if expected and expected != sha256_file(path):
            raise ValueError(f"{path}: SHA-256 differs from its sidecar; the file was altered")
    state = load_file(str(path))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in sorted(set(own) & set(state))
        if state[k].shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path} does not fit the model ({type(model).__name__}): missing keys {missing[:5]}, "
            f"unexpected keys {unexpected[:5]}, shape mismatches {wrong[:5]}"
        )
    model.load_state_dict(state)
    return model


def save_resume_state(path: str | Path, state: Mapping[str, Any]) -> None:
    """Atomically save the resume state (a kill during the write keeps the previous one)."""
    with atomic_path(path, fault="resume") as tmp:
        torch.save(dict(state), tmp)


def load_resume_state(path: str | Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved resume state if it belongs to this exact run configuration, else None."""
    path = Path(path)
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("fingerprint") != fingerprint:
        return None
    return state
