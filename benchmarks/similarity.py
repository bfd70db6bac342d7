"""Benchmark: layer x layer linear CKA of two ResNet18s, streamed vs full activations.

Compares, side by side in one run, on the same random CIFAR-sized inputs:

- ``streaming``: :func:`minima.similarity.layerwise_cka` (exact; feature-form sums for
  narrow layers, Gram blocks over pairs of batches for wide ones; no whole-dataset tensor).
- ``full``: the straightforward way: keep every layer's activations for all inputs
  (float32, on the device), form each layer's centred n x n Gram matrix in float64, and take
  HSIC(K, L) = sum(Kc * Lc) for every pair.

Each runs in its own subprocess, so peak host memory (ru_maxrss) and, on CUDA,
``torch.cuda.max_memory_allocated`` are measured per implementation; both are reported
above the level after setup (models and inputs built). Also prints the largest difference
between the two CKA matrices (they compute the same number).

Usage (on demand; not part of the tests):
    python benchmarks/similarity.py --quick                    # tiny: 256 inputs, CPU
    python benchmarks/similarity.py --quick --device cuda
    python benchmarks/similarity.py --device cuda --n 10000    # the E3 setting
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from minima.similarity import PairedForward, layerwise_cka  # noqa: E402


def resnet18(seed: int) -> nn.Module:
    """ResNet18 with the CIFAR stem (3x3 conv, no max-pool), 10 classes, seeded init."""
    torch.manual_seed(seed)
    try:
        from minima.models import build_model

        spec = {"name": "resnet18", "stem": "cifar"}
        return build_model(spec, in_channels=3, image_size=32, num_classes=10)
    except ImportError:  # models package not available: torchvision with the same stem
        import torchvision

        model = torchvision.models.resnet18(num_classes=10)
        model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
        return model


def straightforward_cka(model_a, model_b, batches, device) -> torch.Tensor:
    """All activations kept; one centred Gram matrix per layer; HSIC for every pair."""
    parts_a: dict[str, list[torch.Tensor]] = {}
    parts_b: dict[str, list[torch.Tensor]] = {}
    with PairedForward(model_a, model_b, device=device) as forward:
        for batch in batches:
            _, acts_a, acts_b = forward(batch)
            for acts, parts in ((acts_a, parts_a), (acts_b, parts_b)):
                for name, A in acts.items():
                    parts.setdefault(name, []).append(A)
    grams = []
    for parts in (parts_a, parts_b):
        side = []
        for name in list(parts):
            X = torch.cat(parts.pop(name)).double()
            X -= X.mean(0)
            side.append(X @ X.T)  # centred Gram Kc = Xc Xc^T
            del X
        grams.append(side)
    norms = [[float(K.square().sum().sqrt()) for K in side] for side in grams]
    out = torch.empty(len(grams[0]), len(grams[1]), dtype=torch.float64)
    for i, K in enumerate(grams[0]):
        for j, L in enumerate(grams[1]):
            out[i, j] = float((K * L).sum()) / (norms[0][i] * norms[1][j])
    return out


def worker(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.INFO, format=f"  [{args.worker}] %(message)s", stream=sys.stderr
    )
    device = torch.device(args.device)
    model_a, model_b = resnet18(0), resnet18(1)
    gen = torch.Generator().manual_seed(2)
    inputs = torch.randn(args.n, 3, args.image_size, args.image_size, generator=gen)
    batches = list(inputs.to(device).split(args.batch_size))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        model_a.to(device), model_b.to(device)
        sync()
        torch.cuda.reset_peak_memory_stats(device)
        cuda_base = torch.cuda.memory_allocated(device)
    rss_base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    start = time.perf_counter()
    if args.worker == "streaming":
        table = layerwise_cka(
            model_a, model_b, batches, device=device, block_examples=args.block_examples
        )
        matrix = torch.tensor(table.pivot(index="index_a", columns="index_b", values="cka").values)
        forms = table["form"].value_counts().to_dict()
    else:
        matrix = straightforward_cka(model_a, model_b, batches, device)
        forms = {}
    sync()
    seconds = time.perf_counter() - start

    result = {
        "seconds": seconds,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "rss_base_mb": rss_base,
        "cuda_peak_mb": (
            (torch.cuda.max_memory_allocated(device) - cuda_base) / 2**20
            if device.type == "cuda"
            else None
        ),
        "layers": list(matrix.shape),
        "forms": forms,
        "matrix": matrix.tolist(),
    }
    print("RESULT " + json.dumps(result))


def full_memory_estimate(args: argparse.Namespace) -> tuple[float, str]:
    """Bytes the straightforward implementation holds at its peak: every layer's float32
    activations of both models for all inputs, plus one float64 n x n Gram matrix per layer."""
    model_a, model_b = resnet18(0), resnet18(1)
    probe = torch.randn(2, 3, args.image_size, args.image_size)
    with PairedForward(model_a, model_b, device=torch.device("cpu")) as forward:
        _, acts_a, acts_b = forward(probe)
    features = sum(A[0].numel() for acts in (acts_a, acts_b) for A in acts.values())
    layers = len(acts_a) + len(acts_b)
    activations = args.n * features * 4
    grams = args.n**2 * 8 * layers
    return activations + grams, (
        f"activations {activations / 1e9:.1f} GB + {layers} Gram matrices {grams / 1e9:.1f} GB"
    )


def available_memory(device: str) -> float:
    """Free bytes where the full implementation keeps its tensors (GPU or host)."""
    if device.startswith("cuda"):
        return float(torch.cuda.mem_get_info(torch.device(device))[0])
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return float(line.split()[1]) * 1024
    return float("inf")


def run_worker(impl: str, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--worker", impl, "--device", args.device, "--n", str(args.n)]
    cmd += ["--batch-size", str(args.batch_size), "--image-size", str(args.image_size)]
    cmd += ["--block-examples", str(args.block_examples)]
    # stderr is the terminal's: the streaming worker's progress lines (one per Gram block,
    # minutes apart at 10,000 inputs on a CPU) and any traceback show as they come
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"error": f"exit code {proc.returncode} (its error is printed above)"}
    return json.loads(lines[-1][len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--n", type=int, default=10_000, help="number of inputs")
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument(
        "--block-examples", type=int, default=1024, help="layerwise_cka's block_examples"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny run: 256 inputs, batch 32, blocks of 64"
    )
    parser.add_argument("--worker", choices=["streaming", "full"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.n, args.batch_size, args.block_examples = 256, 32, 64
    if args.worker:
        worker(args)
        return

    print(
        f"linear CKA, all Conv2d/Linear layer pairs of two ResNet18 (CIFAR stem), "
        f"n={args.n} inputs 3x{args.image_size}x{args.image_size}, batch {args.batch_size}, "
        f"streaming blocks of {args.block_examples}, device {args.device}"
    )
    print(
        f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} CPU threads"
        + (f", {torch.cuda.get_device_name(args.device)}" if args.device.startswith("cuda") else "")
    )
    need, parts = full_memory_estimate(args)
    have = available_memory(args.device)
    print(
        f"full implementation needs about {need / 1e9:.1f} GB ({parts}); "
        f"{have / 1e9:.1f} GB available on {args.device}"
    )
    results = {"streaming": run_worker("streaming", args)}
    if need > 0.9 * have:  # it would be killed for memory (or take the machine down with it)
        results["full"] = {"error": f"not run: needs ~{need / 1e9:.1f} GB > 90% of available"}
    else:
        results["full"] = run_worker("full", args)
    header = ("impl", "time_s", "host_peak_MB", "(+ over setup)", "cuda_peak_MB")
    print("{:<10} {:>9} {:>13} {:>15} {:>13}".format(*header))
    for impl, r in results.items():
        if "error" in r:
            print(f"{impl:<10} failed: {r['error']}")
            continue
        cuda = "-" if r["cuda_peak_mb"] is None else f"{r['cuda_peak_mb']:.0f}"
        extra = r["rss_peak_mb"] - r["rss_base_mb"]
        print(
            f"{impl:<10} {r['seconds']:>9.2f} {r['rss_peak_mb']:>13.0f} {extra:>+15.0f} {cuda:>13}"
        )
    s, f = results["streaming"], results["full"]
    if "error" in s or "error" in f:
        return
    print(f"layers: {s['layers'][0]} x {s['layers'][1]}; streaming term forms: {s['forms']}")
    host_s = max(s["rss_peak_mb"] - s["rss_base_mb"], 1.0)
    host_f = f["rss_peak_mb"] - f["rss_base_mb"]
    ratios = (
        f"time {f['seconds'] / s['seconds']:.2f}x, host memory over setup {host_f / host_s:.2f}x"
    )
    if s["cuda_peak_mb"]:
        ratios += f", cuda memory {f['cuda_peak_mb'] / s['cuda_peak_mb']:.2f}x"
    print(f"ratio full/streaming: {ratios}")
    as64 = torch.tensor  # JSON floats are float64; keep them so
    diff = (as64(s["matrix"], dtype=torch.float64) - as64(f["matrix"], dtype=torch.float64)).abs()
    diff = diff.max()
    print(f"max |CKA_streaming - CKA_full| = {float(diff):.2e}")


if __name__ == "__main__":
    main()
