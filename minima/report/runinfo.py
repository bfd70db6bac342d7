"""What was run, read from the runs' final.json: the facts every caption and the paper state.

The paper must say honestly which data, how many seeds, which hardware and which code made
each number (PAPER_SPEC, Output). These facts are taken from the runs' own metadata, never from
the config, so a figure built from old runs cannot claim a newer setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Datasets that are stand-ins, not the paper's data: said in every caption that uses them.
STAND_INS = {
    "mnist10k": "the embedded mnist10k sample (10,000 official MNIST test images, re-split; "
    "not full MNIST)",
    "cifar10_synthetic": "generated images in CIFAR-10's format (a code-path test; not CIFAR-10, "
    "the numbers mean nothing)",
}
DATASET_NAMES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def dataset_phrase(dataset: str) -> str:
    """How a caption names a dataset (stand-ins say that they are)."""
    return STAND_INS.get(dataset, DATASET_NAMES.get(dataset, dataset))


def _unique(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def hardware_name(meta: Mapping[str, Any]) -> str:
    """A run's device in words: the GPU model, or the CPU model with 'CPU'."""
    hw = meta.get("hardware") or {}
    device = str(hw.get("device", "?"))
    name = hw.get("name") or device
    return f"{name} (GPU)" if device.startswith("cuda") else f"{name} (CPU)"


def describe_sweeps(finals: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What an experiment's hyper-parameter sweeps ran, from their points' final.json dicts:
    sweep names, runs, completed runs, training and job seconds (JSON-able)."""
    return {
        "names": _unique([m["run"]["sweep"]["name"] for m in finals]),
        "n_runs": len(finals),
        "completed": sum(m.get("status") == "completed" for m in finals),
        "train_seconds": float(sum(m.get("train_seconds") or 0.0 for m in finals)),
        "job_seconds": float(sum(m.get("job_seconds") or 0.0 for m in finals)),
    }


def describe_experiment(
    finals: Sequence[Mapping[str, Any]],
    *,
    experiment: str,
    title: str = "",
    sweep_finals: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """The facts of one experiment's runs, from their final.json dicts (JSON-able).

    Returns a dict with: experiment, title, datasets, stand_in (a stand-in dataset was used),
    data_descriptions, sizes (train/val/test per distinct split), models (label and parameter
    count), runs (labels in order of first appearance), seeds, n_runs, epochs, batch_sizes,
    completed/diverged counts and the diverged runs, hardware, train_seconds and job_seconds
    (sums over runs), commits (commit, dirty) and torch versions; and ``sweeps``
    (:func:`describe_sweeps` of ``sweep_finals``, None without sweeps), whose time is not in
    train_seconds/job_seconds.
    """
    if not finals:
        raise ValueError(f"{experiment}: no final.json given")
    runs = [m["run"] for m in finals]
    diverged = [
        f"{r['model_label']}/{r['run']}/seed{r['seed']}"
        for m, r in zip(finals, runs, strict=True)
        if m.get("status") != "completed"
    ]
    models = {}
    for m, r in zip(finals, runs, strict=True):
        models.setdefault(r["model_label"], {"name": r["model"]["name"], "parameters": None})
        models[r["model_label"]]["parameters"] = m.get("parameters")
    sizes = _unique([tuple(sorted((m.get("data") or {}).get("sizes", {}).items())) for m in finals])
    code = _unique(
        [((m.get("code") or {}).get("commit"), (m.get("code") or {}).get("dirty")) for m in finals]
    )
    return {
        "experiment": experiment,
        "title": title,
        "datasets": _unique([r["dataset"] for r in runs]),
        "stand_in": any(r["dataset"] in STAND_INS for r in runs),
        "data_descriptions": _unique(
            [
                (m.get("data") or {}).get("description") or dataset_phrase(r["dataset"])
                for m, r in zip(finals, runs, strict=True)
            ]
        ),
        "sizes": [dict(s) for s in sizes],
        "models": [{"label": k, **v} for k, v in models.items()],
        "runs": _unique([r["run"] for r in runs]),
        "seeds": sorted(_unique([int(r["seed"]) for r in runs])),
        "n_runs": len(finals),
        "epochs": sorted(_unique([int(r["epochs"]) for r in runs])),
        "batch_sizes": sorted(_unique([int(r["batch_size"]) for r in runs])),
        "completed": len(finals) - len(diverged),
        "diverged": diverged,
        "hardware": sorted(_unique([hardware_name(m) for m in finals])),
        "train_seconds": float(sum(m.get("train_seconds") or 0.0 for m in finals)),
        "job_seconds": float(sum(m.get("job_seconds") or 0.0 for m in finals)),
        "commits": [{"commit": c, "dirty": d} for c, d in code],
        "torch": _unique([(m.get("versions") or {}).get("torch") for m in finals]),
        "sweeps": describe_sweeps(sweep_finals) if sweep_finals else None,
    }


def format_duration(seconds: float) -> str:
    """Seconds in words a reader can compare: 42 s, 12.5 min, 3.2 h."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _count(values: Sequence[Any], noun: str) -> str:
    return f"{len(values)} {noun}{'' if len(values) == 1 else 's'}"


def caption_sentence(info: Mapping[str, Any]) -> str:
    """One plain-text sentence for captions: data, seeds, epochs, hardware (no LaTeX)."""
    data = "; ".join(dataset_phrase(d) for d in info["datasets"])
    sizes = "; ".join(
        "/".join(f"{s.get(k, '?'):,}" for k in ("train", "val", "test")) for s in info["sizes"]
    )
    epochs = "/".join(str(e) for e in info["epochs"])
    plural = "" if info["epochs"] == [1] else "s"
    text = (
        f"{info['experiment'].upper()}: {data}, {sizes} train/val/test images; "
        f"{_count(info['seeds'], 'seed')}, {epochs} epoch{plural}; {', '.join(info['hardware'])}."
    )
    if info["diverged"]:
        text += f" Diverged: {', '.join(info['diverged'])}."
    return text
