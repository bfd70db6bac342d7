"""One training job from files to files: what the `train` and `init_weights` rules call.

Reads the dataset manifest, the split and the starting weights, runs the loop in a private
``work_dir`` (resume state and checkpoints), and only when the run has ended moves its
checkpoints into place and writes the metrics table and the final weights, each atomically.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from minima import data as datasets
from minima.device import resolve_device, seed_everything, set_deterministic
from minima.io import atomic_path, read_json
from minima.models import build_model, count_parameters, first_conv, last_linear
from minima.provenance import provenance
from minima.train.checkpoint import export_weights, load_weights
from minima.train.loop import LoopSettings, Split, train_loop
from minima.train.options import takes_full_gradient

log = logging.getLogger("minima.train")

# Settings that change how a run is logged, not what it computes: left out of the fingerprint
# so that changing them does not throw away a resume state.
_COSMETIC = ("progress_seconds",)

# Columns of steps.parquet (minima.train.gradstats.StepRecorder), also when it has no rows.
STEP_COLUMNS = (
    "experiment",
    "model",
    "run",
    "seed",
    "step",
    "epoch",
    "grad_norm",
    "sam_sharpness",
    "batch_loss",
    "lr",
)


@dataclass
class RunFiles:
    """Where one run's outputs go (the `train` rule's outputs) and its private work folder.

    ``steps``: the per-step table (none: not written, as for sweep points)."""

    weights: str | Path
    metrics: str | Path
    checkpoints: str | Path
    work_dir: str | Path
    steps: str | Path | None = None


def run_fingerprint(run: dict[str, Any]) -> str:
    """SHA-256 of everything that determines the run's numbers (a resume must match it)."""
    settings = json.loads(json.dumps(run, sort_keys=True, default=str))
    for key in _COSMETIC:
        settings.get("training", {}).pop(key, None)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def build_for_dataset(model_spec: dict[str, Any], dataset: str) -> torch.nn.Module:
    """The model sized for ``dataset``'s images and classes."""
    info = datasets.get_info(dataset)
    return build_model(
        model_spec,
        in_channels=info.channels,
        image_size=info.image_size,
        num_classes=info.num_classes,
    )


def write_initial_weights(
    model_spec: dict[str, Any], *, dataset: str, seed: int, path: str | Path
) -> None:
    """Seeded initial weights, exported once so every optimizer of a seed starts from them."""
    seed_everything(seed)
    model = build_for_dataset(model_spec, dataset)
    export_weights(
        model,
        path,
        {
            "kind": "initial weights",
            "model": model_spec,
            "dataset": dataset,
            "seed": seed,
            "parameters": count_parameters(model),
            **provenance(torch.device("cpu")),
        },
    )
    log.info(
        "initial weights of %s (seed %d, %d parameters) -> %s",
        model_spec["name"],
        seed,
        count_parameters(model),
        path,
    )


def write_pretrained_weights(
    model_spec: dict[str, Any], *, dataset: str, seed: int, source: str | Path, path: str | Path
) -> None:
    """ImageNet-pretrained ResNet18 weights with a fresh, seeded head for ``dataset``'s classes.

    Raises a clear error when ``source`` is not torchvision's ResNet18 state dict; nothing else
    is ever used in its place.
    """
    from minima.models import load_pretrained_resnet18

    seed_everything(seed)
    model = build_for_dataset(model_spec, dataset)
    fresh = load_pretrained_resnet18(model, source)
    export_weights(
        model,
        path,
        {
            "kind": "initial weights (ImageNet-pretrained)",
            "model": model_spec,
            "dataset": dataset,
            "seed": seed,
            "source": str(source),
            "fresh_keys": fresh,
            "parameters": count_parameters(model),
            **provenance(torch.device("cpu")),
        },
    )
    log.info("pretrained weights from %s (fresh: %s) -> %s", source, fresh, path)


def load_splits(
    dataset: str,
    manifest: str | Path,
    split: str | Path,
    device: torch.device,
    std_scale: float | list[float] = 1.0,
    parts: tuple[str, ...] = ("train", "val", "test"),
) -> tuple[dict[str, datasets.DeviceData], dict[str, Any]]:
    """Parts of a prepared dataset's split on ``device``, normalized by the train split's stats.

    ``std_scale`` multiplies the std used to normalize (E3's normalization study).
    """
    pools = datasets.load_pools(dataset, datasets.manifest_root(manifest))
    indices = datasets.load_split(split)
    mean, std = datasets.load_split_stats(split)
    loaded = {}
    for name in parts:
        images, labels = pools[indices.pools[name]]
        loaded[name] = datasets.DeviceData(
            images, labels, indices[name], mean=mean, std=std, std_scale=std_scale, device=device
        )
    info = {
        "description": datasets.get_info(dataset).description,
        "sizes": indices.sizes(),
        "mean": mean.tolist(),
        "std": std.tolist(),
        "std_scale": std_scale,
        "split_seed": indices.seed,
        "split_sha256": hashlib.sha256(Path(split).read_bytes()).hexdigest(),
    }
    return loaded, info


def load_trained(
    model_spec: dict[str, Any], dataset: str, weights: str | Path, device: torch.device
) -> torch.nn.Module:
    """A trained model from exported weights (checksum-verified), on ``device``, in eval mode."""
    model = build_for_dataset(model_spec, dataset)
    load_weights(model, weights)
    return model.to(device).eval()


def train_run(
    run: dict[str, Any],
    *,
    manifest: str | Path,
    split: str | Path,
    init_weights: str | Path,
    files: RunFiles,
    threads: int = 1,
) -> dict[str, Any]:
    """Train one run as resolved by ``minima.plan.resolve_run``; returns the final metadata."""
    started = time.perf_counter()
    torch.set_num_threads(max(1, threads))
    training = run["training"]
    set_deterministic(training["deterministic"])
    device = resolve_device(run["device"])
    seed_everything(run["seed"])
    label = f"{run['experiment']}/{run['model_label']}/{run['run']}/seed{run['seed']}"
    log.info("run %s on %s (%d threads)", label, device, torch.get_num_threads())

    data = run["data"]
    parts, data_info = load_splits(run["dataset"], manifest, split, device, data["std_scale"])
    train, val, test = (Split(parts[n].x, parts[n].y) for n in ("train", "val", "test"))
    log.info("data %s: %s", run["dataset"], data_info["sizes"])
    model = build_for_dataset(run["model"], run["dataset"])
    load_weights(model, init_weights)
    model.to(device)

    fingerprint = run_fingerprint(run)
    base_meta = {
        "run": run,
        "fingerprint": fingerprint,
        "data": data_info,
        "init_weights": {
            "file": str(init_weights),
            "sha256": read_json(Path(init_weights).with_suffix(".json")).get("sha256"),
        },
        "parameters": count_parameters(model),
        **provenance(device),
    }
    settings = LoopSettings(
        seed=run["seed"],
        epochs=run["epochs"],
        batch_size=run["batch_size"],
        optimizer=run["optimizer"],
        schedule=run["schedule"],
        checkpoint_steps=run["checkpoints"].get("steps", []),
        checkpoint_every_epochs=run["checkpoints"].get("every_epochs"),
        eval_batch_size=training["eval_batch_size"],
        grad_stats_every=training["grad_stats_every"],
        progress_seconds=training["progress_seconds"],
        resume_every_epochs=training["resume_every_epochs"],
        sharpness_rho=training["sharpness_rho"],
        step_stats_every=training["step_stats_every"],
        train_eval_examples=training["train_eval_examples"],
        full_grad_norm=takes_full_gradient(training["full_grad_norm"], run["experiment"]),
        compile=training["compile"],
        fingerprint=fingerprint,
        labels={
            "experiment": run["experiment"],
            "model": run["model_label"],
            "run": run["run"],
            "seed": run["seed"],
        },
    )
    augment = None
    if data["augment"] == "flip_crop":
        augment = functools.partial(datasets.random_flip_crop, fill=parts["train"].pad_fill)

    result = train_loop(
        model,
        train,
        val,
        test,
        settings,
        first_conv=first_conv(model),
        last_linear=last_linear(model),
        work_dir=Path(files.work_dir),
        checkpoint_meta=lambda extra: {**base_meta, **extra, "kind": "checkpoint"},
        augment=augment,
    )
    meta = {
        **base_meta,
        "kind": "final weights",
        "status": result.status,
        "diverged_at": result.diverged_at,
        "steps": result.steps,
        "epochs_run": len(result.rows),
        "switch_epoch": result.switch_epoch,
        "train_seconds": result.train_seconds,
        "job_seconds": time.perf_counter() - started,
        "checkpoints": [p.name for p in result.checkpoints],
    }
    _finish(model, result.rows, files, meta, result.step_rows)
    log.info(
        "run %s %s after %d steps (%.1f s training)",
        label,
        result.status,
        result.steps,
        result.train_seconds,
    )
    return meta


def _finish(
    model: torch.nn.Module,
    rows: list[dict[str, Any]],
    files: RunFiles,
    meta: dict[str, Any],
    step_rows: list[dict[str, Any]] = (),
) -> None:
    """Move the run's results into the declared outputs; the final weights are written last."""
    work_dir = Path(files.work_dir)
    checkpoints = Path(files.checkpoints)
    if checkpoints.exists():
        shutil.rmtree(checkpoints)
    (work_dir / "checkpoints").rename(checkpoints)
    with atomic_path(files.metrics) as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    if files.steps is not None:
        with atomic_path(files.steps) as tmp:
            pd.DataFrame(list(step_rows), columns=STEP_COLUMNS).to_parquet(tmp, index=False)
    export_weights(model, files.weights, meta)
    shutil.rmtree(work_dir, ignore_errors=True)
