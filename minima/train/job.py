"""One training job from files to files: what the `train` and `init_weights` rules call.

Reads the dataset manifest, the split and the starting weights, runs the loop in a private
``work_dir`` (resume state and checkpoints), and only when the run has ended puts its
checkpoints into place and writes the metrics table and the final weights, each atomically.

Crash safety, step by step (``tests/test_crash_safety.py`` kills the job at each one):

- one live job per run (``minima.train.lock``); a job first removes the temporary files a
  killed predecessor left;
- ``work_dir`` belongs to one fingerprint (run config + SHA-256 of initial weights, split and
  dataset manifest, recorded in ``fingerprint.json``): a work folder of anything else is
  deleted whole, checkpoints included, with one log line saying what changed;
- ``_finish`` first deletes an old ``final.json``, then hard-links the checkpoints (the work
  folder keeps its own until the very end, so a kill that makes Snakemake delete the outputs
  loses nothing), writes the metrics, the final weights, and ``final.json`` last: whenever
  ``final.json`` exists, every file it lists is in place.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from minima import data as datasets
from minima.device import check_gpu_job, resolve_device, seed_everything, set_deterministic
from minima.faults import fault_point
from minima.io import (
    TMP_SUFFIX,
    atomic_path,
    read_json,
    remove_stale_temporaries,
    sha256_file,
    write_json,
)
from minima.models import build_model, count_parameters, first_conv, last_linear
from minima.provenance import provenance
from minima.runs import RUNTIME_TRAINING_KEYS
from minima.train.checkpoint import export_weights, load_weights, sidecar_path
from minima.train.lock import run_lock
from minima.train.loop import LoopSettings, Split, train_loop
from minima.train.options import takes_full_gradient

log = logging.getLogger("minima.train")

FINGERPRINT_FILE = "fingerprint.json"

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

    @property
    def sidecar(self) -> Path:
        """``final.json``: written last, so it exists only when every output is in place."""
        return sidecar_path(self.weights)

    @property
    def lock(self) -> Path:
        """The run's lock file, next to the work folder (outside Snakemake's outputs)."""
        work_dir = Path(self.work_dir)
        return work_dir.with_name(work_dir.name + ".lock")


def run_fingerprint(run: dict[str, Any]) -> str:
    """SHA-256 of the resolved run config without the settings that change no number."""
    settings = json.loads(json.dumps(run, sort_keys=True, default=str))
    for key in RUNTIME_TRAINING_KEYS:  # listed, with reasons, in minima.runs
        settings.get("training", {}).pop(key, None)
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def fingerprint_parts(
    run: dict[str, Any], *, manifest: str | Path, split: str | Path, init_weights: str | Path
) -> dict[str, str]:
    """Everything a run's result depends on, each as a SHA-256: a resume must match them all.

    The config alone is not enough: a run started from another run's final weights
    (``init_from``) must start over when that source was retrained, though its own config is
    unchanged; likewise when the split or the dataset files changed.
    """
    return {
        "run_config": run_fingerprint(run),
        "init_weights": sha256_file(init_weights),
        "split": sha256_file(split),
        "dataset_manifest": sha256_file(manifest),
    }


def combined_fingerprint(parts: dict[str, str]) -> str:
    """One SHA-256 of :func:`fingerprint_parts` (stored in the resume state)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def open_work_dir(work_dir: str | Path, parts: dict[str, str], label: str) -> None:
    """Make ``work_dir`` this run's: one of another fingerprint is deleted whole, logged once."""
    work_dir = Path(work_dir)
    record = work_dir / FINGERPRINT_FILE
    if work_dir.is_dir() and any(work_dir.iterdir()):
        try:
            old = read_json(record)
        except (OSError, ValueError):
            old = None
        if not isinstance(old, dict):
            old = None
        if old != parts:
            if old is None:
                why = f"it has no readable {FINGERPRINT_FILE}"
            else:
                changed = [key for key in parts if old.get(key) != parts[key]]
                why = f"its {', '.join(changed) or 'fingerprint'} differ(s) from this run's"
            log.warning(
                "run %s: deleting %s (resume state and checkpoints of another start) because "
                "%s; training from the start",
                label,
                work_dir,
                why,
            )
            shutil.rmtree(work_dir)
    if not record.exists():
        write_json(record, parts, fault="fingerprint")


def remove_leftovers(files: RunFiles) -> list[Path]:
    """Delete temporary files of a killed job of this run (outputs and work folder)."""
    outputs = [files.weights, files.sidecar, files.metrics, files.checkpoints]
    if files.steps is not None:
        outputs.append(files.steps)
    removed = remove_stale_temporaries(outputs)
    work_dir = Path(files.work_dir)
    if work_dir.is_dir():
        for tmp in list(work_dir.rglob(f".*{TMP_SUFFIX}")):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


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
        fault="init",
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
        fault="init",
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
    gpus: int = 0,
    cpu_fallback: bool = False,
) -> dict[str, Any]:
    """Train one run as resolved by ``minima.plan.resolve_run``; returns the final metadata.

    ``gpus`` is what the job asked for (the rule's ``gpu`` resource): with no usable CUDA the
    job fails at once unless ``run["device"]`` is ``cpu`` or ``cpu_fallback`` is set.

    Raises:
        NoGpuError: ``gpus`` > 0 and torch can use no GPU.
        RunLockedError: another live job trains this run.
    """
    check_gpu_job(gpus, run["device"], cpu_fallback=cpu_fallback)
    device = resolve_device(run["device"])
    label = f"{run['experiment']}/{run['model_label']}/{run['run']}/seed{run['seed']}"
    with run_lock(files.lock, label):
        return _train_locked(run, label, device, manifest, split, init_weights, files, threads)


def _train_locked(
    run: dict[str, Any],
    label: str,
    device: torch.device,
    manifest: str | Path,
    split: str | Path,
    init_weights: str | Path,
    files: RunFiles,
    threads: int,
) -> dict[str, Any]:
    started = time.perf_counter()
    removed = remove_leftovers(files)
    if removed:
        log.info("removed %d temporary file(s) of a killed job: %s", len(removed), removed)
    sources = fingerprint_parts(run, manifest=manifest, split=split, init_weights=init_weights)
    open_work_dir(files.work_dir, sources, label)
    torch.set_num_threads(max(1, threads))
    training = run["training"]
    set_deterministic(training["deterministic"])
    seed_everything(run["seed"])
    log.info("run %s on %s (%d threads)", label, device, torch.get_num_threads())

    data = run["data"]
    parts, data_info = load_splits(run["dataset"], manifest, split, device, data["std_scale"])
    train, val, test = (Split(parts[n].x, parts[n].y) for n in ("train", "val", "test"))
    log.info("data %s: %s", run["dataset"], data_info["sizes"])
    model = build_for_dataset(run["model"], run["dataset"])
    load_weights(model, init_weights)
    model.to(device)

    fingerprint = combined_fingerprint(sources)
    base_meta = {
        "run": run,
        "fingerprint": fingerprint,
        "fingerprint_parts": sources,
        "data": data_info,
        "init_weights": {"file": str(init_weights), "sha256": sources["init_weights"]},
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
    """Put the run's results into the declared outputs, ``final.json`` last.

    Every step may be the last (a kill); the next job then redoes ``_finish`` from the work
    folder, which keeps the finished resume state and its own links to the checkpoints until
    everything else is written.

    Raises:
        RuntimeError: the work folder lacks (or holds an altered copy of) a checkpoint its
            resume state lists; nothing is written then.
    """
    work_dir = Path(files.work_dir)
    source = work_dir / "checkpoints"
    names = list(meta["checkpoints"])
    _check_checkpoints(source, names)
    fault_point("finish:start")
    for stale in (files.sidecar, Path(files.weights)):  # an older final.json must not survive
        stale.unlink(missing_ok=True)
    fault_point("finish:old_final_removed")
    checkpoints = Path(files.checkpoints)
    if checkpoints.exists():
        shutil.rmtree(checkpoints)
        fault_point("finish:checkpoints_cleared")
    checkpoints.mkdir(parents=True)
    for name in names:
        for file in (source / name, sidecar_path(source / name)):
            _link_or_copy(file, checkpoints / file.name)
        fault_point("finish:checkpoint_linked")
    with atomic_path(files.metrics, fault="finish.metrics") as tmp:
        pd.DataFrame(rows).to_parquet(tmp, index=False)
    if files.steps is not None:
        with atomic_path(files.steps, fault="finish.steps") as tmp:
            pd.DataFrame(list(step_rows), columns=STEP_COLUMNS).to_parquet(tmp, index=False)
    export_weights(model, files.weights, meta, fault="final")
    shutil.rmtree(work_dir, ignore_errors=True)
    fault_point("finish:work_dir_removed")


def _check_checkpoints(folder: Path, names: list[str]) -> None:
    """Refuse to finish with a checkpoint missing or altered (its SHA-256 vs its sidecar)."""
    for name in names:
        path = folder / name
        if not path.exists() or not sidecar_path(path).exists():
            raise RuntimeError(
                f"{path} (or its sidecar) is missing, though the resume state in {folder.parent} "
                "lists it; delete that folder to train the run again"
            )
        if read_json(sidecar_path(path)).get("sha256") != sha256_file(path):
            raise RuntimeError(
                f"{path}: SHA-256 differs from its sidecar; delete {folder.parent} to train the "
                "run again"
            )


def _link_or_copy(source: Path, destination: Path) -> None:
    """Hard-link ``source`` (no copy, and the work folder keeps it); copy where links fail."""
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)
