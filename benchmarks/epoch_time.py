"""Benchmark: time per training epoch of each experiment's models and optimizers, and the
compute of the whole paper that follows.

For every experiment of the config, every model and every optimizer its runs use, times a few
real training steps (the workflow's model, batch size and train step, on random inputs of the
dataset's shape) and one evaluation batch, then extrapolates to one epoch: steps per epoch x
step time + (val + test images) x evaluation time per image. Multiplying by each run's epochs,
its seeds and models gives the compute of the full paper per experiment (every run, including
those skipped for want of pretrained weights). Data loading is not timed: the workflow keeps
the whole dataset on the device.

Usage (on demand; not part of the tests; docs/cluster.md quotes its output):
    python benchmarks/epoch_time.py                     # CPU, one thread, config.yaml
    python benchmarks/epoch_time.py --device cuda --steps 20
    python benchmarks/epoch_time.py --only e1 e2 --steps 2
Writes benchmarks/out/epoch_time.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml
from torch.nn import functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minima import plan  # noqa: E402
from minima.data import get_info  # noqa: E402
from minima.optim.registry import build_train_step  # noqa: E402
from minima.train.job import build_for_dataset  # noqa: E402

# Images of the training pool each dataset's split draws from (train_size null: all but val).
TRAIN_POOL = {"mnist": 60_000, "cifar10": 50_000}
OFFICIAL_TEST = {"mnist": 10_000, "cifar10": 10_000}


def split_sizes(config: dict, exp: str) -> tuple[int, int]:
    """(train images, val + test images) of an experiment's split."""
    entry = config["experiments"][exp]
    data, dataset = entry["data"], entry["dataset"]
    if dataset == "mnist10k":
        pool, test = 10_000 - data["val_size"] - (data["test_size"] or 0), data["test_size"]
    elif dataset == "cifar10_synthetic":
        pool = config["synthetic_cifar10"]["n_train"] - data["val_size"]
        test = config["synthetic_cifar10"]["n_test"]
    else:
        pool, test = TRAIN_POOL[dataset] - data["val_size"], OFFICIAL_TEST[dataset]
    train = data["train_size"] or pool
    return train, data["val_size"] + (data["test_size"] or test)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(
    model: torch.nn.Module,
    optimizer: dict,
    batch: tuple,
    steps: int,
    device: torch.device,
    min_seconds: float = 1.0,
) -> float:
    """Median seconds per training step, after two untimed warm-up steps.

    At least ``steps`` steps and at least ``min_seconds`` of them (at most 200): the median of
    many short steps resists the noise of a shared machine.
    """
    step = build_train_step(model, optimizer, generator=torch.Generator(device=device))
    x, y = batch
    model.train()
    for _ in range(2):
        step(model, F.cross_entropy, x, y)
    times: list[float] = []
    while len(times) < 200 and (len(times) < steps or sum(times) < min_seconds):
        _sync(device)
        start = time.perf_counter()
        step(model, F.cross_entropy, x, y)
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_eval(model: torch.nn.Module, x: torch.Tensor, device: torch.device) -> float:
    """Seconds per image of an evaluation forward pass."""
    model.eval()
    with torch.no_grad():
        model(x)
        _sync(device)
        start = time.perf_counter()
        model(x)
        _sync(device)
    return (time.perf_counter() - start) / len(x)


def optimizer_cost_key(spec: dict) -> str:
    """Runs whose steps cost the same share a timing (lr, momentum etc. do not matter)."""
    if spec["name"] == "sam":
        return f"sam({spec['base']['name']})"
    return spec["name"]


def measure(config: dict, exp: str, steps: int, device: torch.device, eval_batch: int) -> dict:
    """Epoch seconds per (model, optimizer kind) of one experiment, and the paper's compute."""
    entry = config["experiments"][exp]
    info = get_info(entry["dataset"])
    n_train, n_eval = split_sizes(config, exp)
    keys = plan.run_keys(config, [exp], include_skipped=True)
    timings: dict[tuple[str, str], dict] = {}
    total_seconds = 0.0
    for key in keys:
        run = plan.resolve_run(config, key)
        optimizer = run["optimizer"]
        # hybrid: SGD until the switch, AdaHessian after; timed as AdaHessian (upper bound)
        if optimizer["name"] == "hybrid":
            optimizer = {"name": "adahessian", **optimizer["adahessian"]}
        cost = (key.model, optimizer_cost_key(optimizer), run["batch_size"])
        if cost not in timings:
            torch.manual_seed(0)
            model = build_for_dataset(run["model"], entry["dataset"]).to(device)
            shape = (info.channels, info.image_size, info.image_size)
            x = torch.randn(run["batch_size"], *shape, device=device)
            y = torch.randint(0, info.num_classes, (run["batch_size"],), device=device)
            step_seconds = time_steps(model, optimizer, (x, y), steps, device)
            xe = torch.randn(min(eval_batch, n_eval), *shape, device=device)
            eval_seconds = time_eval(model, xe, device)
            steps_per_epoch = max(1, n_train // run["batch_size"])
            timings[cost] = {
                "model": key.model,
                "optimizer": cost[1],
                "batch_size": run["batch_size"],
                "steps_per_epoch": steps_per_epoch,
                "step_seconds": step_seconds,
                "epoch_seconds": steps_per_epoch * step_seconds + n_eval * eval_seconds,
            }
            print(f"  {exp} {cost}: {timings[cost]['epoch_seconds']:.1f} s/epoch", flush=True)
        total_seconds += run["epochs"] * timings[cost]["epoch_seconds"]
    return {
        "experiment": exp,
        "runs": len(keys),
        "train_images": n_train,
        "eval_images": n_eval,
        "timings": list(timings.values()),
        "paper_seconds": total_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", nargs="+", default=[str(ROOT / "config.yaml")])
    parser.add_argument("--only", nargs="*", help="experiments to time (default: all)")
    parser.add_argument("--steps", type=int, default=5, help="least timed steps per combination")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: steady on a shared machine)"
    )
    parser.add_argument("--eval-batch", type=int, default=250)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "epoch_time.json"))
    args = parser.parse_args()

    config: dict = {}
    for path in args.config:
        config = plan.deep_merge(config, yaml.safe_load(Path(path).read_text()))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    experiments = args.only or list(config["experiments"])
    results = [measure(config, exp, args.steps, device, args.eval_batch) for exp in experiments]
    report = {
        "device": str(device),
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "steps_timed": args.steps,
        "experiments": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))

    print(f"\n{device}, {torch.get_num_threads()} threads, {args.steps} timed steps each\n")
    print("| experiment | model | optimizer | batch | steps/epoch | s/step | s/epoch |")
    print("|---|---|---|---|---|---|---|")
    for result in results:
        for t in result["timings"]:
            print(
                f"| {result['experiment']} | {t['model']} | {t['optimizer']} | {t['batch_size']}"
                f" | {t['steps_per_epoch']} | {t['step_seconds']:.3f} | {t['epoch_seconds']:.0f} |"
            )
    print("\n| experiment | runs | compute of the full paper (hours on this device) |")
    print("|---|---|---|")
    for result in results:
        print(
            f"| {result['experiment']} | {result['runs']} | {result['paper_seconds'] / 3600:.1f} |"
        )
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
