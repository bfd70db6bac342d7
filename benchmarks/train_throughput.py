"""Training throughput, side by side in one run, printed as ratios.

(a) Images per second: our device-resident loop (``minima.train.loop``) vs the usual code
    (torchvision dataset with ToTensor/Normalize transforms, DataLoader with 4 workers), for
    LeNet-5 on MNIST-sized data (batch 128) and ResNet18 on CIFAR-sized data (batch 256).
(b) One training step on ResNet18: our AdaHessian vs an SGD step vs torch-optimizer's
    Adahessian vs the bare curvature cost (a create_graph backward plus one Hessian-vector
    product); AdaHessian with ``update_each`` k = 1, 5, 10 (amortized per step).

Usage: ``python benchmarks/train_throughput.py [--device cuda] [--quick]``. On a CPU the
defaults shrink (smaller ResNet batch, fewer steps) and the output says so.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minima import data as datasets  # noqa: E402
from minima.device import resolve_device  # noqa: E402
from minima.models import build_model, first_conv, last_linear  # noqa: E402
from minima.optim import build_train_step  # noqa: E402
from minima.train.loop import LoopSettings, Split, train_loop  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


# --------------------------------------------------------------------------- (a) data loops


def usual_loop_images_per_second(
    dataset, model_spec, in_channels, image_size, batch_size, device, max_steps: int
) -> float:
    """The common tutorial loop: DataLoader (4 workers) over a transformed torchvision dataset."""
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=4,
        pin_memory=device.type == "cuda",
        drop_last=True,
        persistent_workers=True,
    )
    torch.manual_seed(0)
    model = build_model(
        model_spec, in_channels=in_channels, image_size=image_size, num_classes=10
    ).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def epoch(steps: int) -> int:
        seen = 0
        for step, (x, y) in enumerate(loader):
            if step >= steps:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
            seen += y.shape[0]
        return seen

    epoch(3)  # warm-up: workers start, kernels load
    sync(device)
    start = time.perf_counter()
    seen = epoch(max_steps)
    sync(device)
    return seen / (time.perf_counter() - start)


def our_loop_images_per_second(
    x, y, model_spec, batch_size, device, compile_model: bool, workdir: Path
) -> float:
    """Our loop, one warm-up epoch then one timed epoch (the second row's images/s)."""
    torch.manual_seed(0)
    model = build_model(
        model_spec, in_channels=x.shape[1], image_size=x.shape[-1], num_classes=10
    ).to(device)
    split = Split(x.to(device), y.to(device))
    tiny = Split(split.x[:batch_size], split.y[:batch_size])
    settings = LoopSettings(
        seed=0,
        epochs=2,
        batch_size=batch_size,
        optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9},
        schedule={"name": "constant"},
        progress_seconds=0,
        compile=compile_model,
        resume_every_epochs=10**6,
    )
    result = train_loop(
        model,
        split,
        tiny,
        tiny,
        settings,
        first_conv=first_conv(model),
        last_linear=last_linear(model),
        work_dir=workdir,
        checkpoint_meta=lambda extra: extra,
    )
    return result.rows[-1]["images_per_second"]


def bench_loops(device: torch.device, args: argparse.Namespace, tmp: Path) -> None:
    print("\n(a) training images per second, our loop vs the usual DataLoader loop")
    mnist_dir = tmp / "mnist10k"
    datasets.prepare_dataset("mnist10k", mnist_dir)
    pools = datasets.load_pools("mnist10k", mnist_dir)
    images, labels = pools["all"]
    mean, std = datasets.channel_stats(images, range(len(labels)))
    cifar_dir = tmp / "cifar"
    datasets.write_synthetic_cifar10(cifar_dir, n_train=args.cifar_images, n_test=10)
    cifar_images, cifar_labels = datasets.load_pools("cifar10_synthetic", cifar_dir)["train"]
    cmean, cstd = datasets.channel_stats(cifar_images, range(len(cifar_labels)))

    from torchvision import transforms

    from minima.data.layouts import MNIST_TEST_PAIR, cifar10_class, mnist_class

    mnist_usual = mnist_class(MNIST_TEST_PAIR)(
        str(mnist_dir),
        train=False,
        transform=transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize(mean.tolist(), std.tolist())]
        ),
    )
    cifar_usual = cifar10_class({})(
        str(cifar_dir),
        train=True,
        transform=transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize(cmean.tolist(), cstd.tolist())]
        ),
    )
    cases = [
        (
            "LeNet-5, MNIST-sized",
            {"name": "lenet5"},
            mnist_usual,
            datasets.normalize(images, mean, std),
            labels,
            128,
            1,
            28,
        ),
        (
            "ResNet18, CIFAR-sized",
            {"name": "resnet18", "stem": "cifar"},
            cifar_usual,
            datasets.normalize(cifar_images, cmean, cstd),
            cifar_labels,
            args.resnet_batch,
            3,
            32,
        ),
    ]
    print(
        f"{'case':24} {'batch':>5} {'usual img/s':>12} {'ours img/s':>11} {'ratio':>6}"
        + (f" {'compiled':>9} {'ratio':>6}" if args.compile else "")
    )
    for name, spec, usual_ds, x, y, batch, channels, size in cases:
        steps = max(4, min(len(y) // batch, args.loop_steps))
        n = steps * batch
        usual = usual_loop_images_per_second(usual_ds, spec, channels, size, batch, device, steps)
        ours = our_loop_images_per_second(
            x[:n], y[:n], spec, batch, device, False, tmp / f"ours-{channels}"
        )
        line = f"{name:24} {batch:5d} {usual:12.0f} {ours:11.0f} {ours / usual:5.2f}x"
        if args.compile:
            compiled = our_loop_images_per_second(
                x[:n], y[:n], spec, batch, device, True, tmp / f"compiled-{channels}"
            )
            line += f" {compiled:9.0f} {compiled / usual:5.2f}x"
        print(line, flush=True)


# --------------------------------------------------------------------------- (b) one step


def bench_steps(device: torch.device, args: argparse.Namespace) -> None:
    batch = args.resnet_batch
    print(
        f"\n(b) one training step, ResNet18 (cifar stem), batch {batch}, median of "
        f"{args.step_repeats}"
    )
    torch.manual_seed(0)
    model = build_model(
        {"name": "resnet18", "stem": "cifar"}, in_channels=3, image_size=32, num_classes=10
    ).to(device)
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    results: dict[str, float] = {}

    sgd = build_train_step(model, {"name": "sgd", "lr": 1e-3, "momentum": 0.9})
    results["SGD step"] = timed(
        lambda: sgd(model, F.cross_entropy, x, y), device, args.step_repeats
    )

    generator = torch.Generator(device=device).manual_seed(0)

    def bare() -> None:
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        zs = [
            torch.randint(0, 2, p.shape, generator=generator, device=device, dtype=p.dtype) * 2 - 1
            for p in params
        ]
        torch.autograd.grad(grads, params, grad_outputs=zs)

    results["bare grad+HVP"] = timed(bare, device, args.step_repeats)

    for k in (1, 5, 10):
        ours = build_train_step(
            model, {"name": "adahessian", "lr": 1e-3, "update_each": k}, generator=generator
        )
        # amortized over a full cycle of k steps
        cycle = timed(
            lambda ours=ours, k=k: [ours(model, F.cross_entropy, x, y) for _ in range(k)],
            device,
            max(1, args.step_repeats // k),
        )
        results[f"ours AdaHessian k={k}"] = cycle / k

    import torch_optimizer

    reference = torch_optimizer.Adahessian(params, lr=1e-3, hessian_power=1.0)

    def their_step() -> None:
        reference.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward(create_graph=True)
        reference.step()

    results["torch-optimizer Adahessian"] = timed(their_step, device, args.step_repeats)

    sgd_time = results["SGD step"]
    bare_time = results["bare grad+HVP"]
    print(f"{'step':28} {'ms':>9} {'/ SGD':>7} {'/ bare':>7}")
    for name, seconds in results.items():
        print(
            f"{name:28} {seconds * 1e3:9.1f} {seconds / sgd_time:6.2f}x {seconds / bare_time:6.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--resnet-batch", type=int, default=None)
    parser.add_argument("--loop-steps", type=int, default=None)
    parser.add_argument("--step-repeats", type=int, default=None)
    parser.add_argument("--cifar-images", type=int, default=None)
    parser.add_argument("--part", choices=("all", "loops", "steps"), default="all")
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    defaults = {
        "resnet_batch": 256 if gpu else 32,
        "loop_steps": 200 if gpu else 20,
        "step_repeats": 20 if gpu else 3,
        "cifar_images": 10240 if gpu else 1280,
    }
    if args.quick:
        defaults = {"resnet_batch": 8, "loop_steps": 4, "step_repeats": 1, "cifar_images": 64}
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    hardware = torch.cuda.get_device_name(device) if gpu else "CPU"
    print(
        f"device: {device} ({hardware}), torch {torch.__version__}, "
        f"threads {torch.get_num_threads()}"
    )
    if not gpu:
        print("note: CPU run with reduced sizes; the issue's targets are GPU figures")
    if args.part in ("all", "loops"):
        with tempfile.TemporaryDirectory() as tmp:
            bench_loops(device, args, Path(tmp))
    if args.part in ("all", "steps"):
        bench_steps(device, args)


if __name__ == "__main__":
    main()
