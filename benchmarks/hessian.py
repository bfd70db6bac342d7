"""Hessian engines side by side: PyHessian 0.1 vs the native engine, in one run.

For each setting (LeNet-5 on 10,000 MNIST-shaped images; ResNet18 on 1,280 CIFAR-sized
images) and the same model, data and iteration counts:
- one gradient over the data, and one HVP: native forward-over-reverse, native double
  backward, native batched (per probe, ``--probe-batch`` probes per vmap call), PyHessian;
- top eigenvalue: PyHessian power iteration (``--eig-iters`` iterations at most, tol) vs
  native Lanczos (same step budget and tol); both report the eigenvalue and HVPs used;
- trace: ``--trace-probes`` Rademacher probes each;
- density: ``--density-steps`` Lanczos steps x ``--density-probes`` probes each.
Times are wall-clock medians (CUDA synchronised). MNIST images come from the repository's
``resources/mnist10k`` (MNIST's official test set) when present, else random; CIFAR-sized
images are random (shapes matter for timing, not content).

With ``--spectrum``: E1's whole spectrum analysis both ways, i.e. PyHessian's three
calls (top-k power iteration, Hutchinson trace, SLQ density) against the native joint
path (one set of SLQ runs, ``minima.hessian.joint``). Accuracy is checked before time is
reported: top-k residuals <= ``--spectrum-tol`` times the spectral norm, a trace standard
error no larger than PyHessian's, and the L1 distance between the two densities (same
probes x steps, same smoothing). HVPs are counted on both sides.

With ``--hvp-costs``: the cost of one product per probe for each way of computing it:
forward-over-reverse (one probe, batched probes), double backward (fresh graph per
product, cached graph), ``torch.compile`` of the forward-over-reverse product closure,
and two batch sizes; the table ``minima.hessian.hvp.AUTO_METHODS`` is read from it.

With ``--warm-sequence``: E5's eigenpairs over a checkpoint sequence, each checkpoint's
eigsh started cold (as the rule does) against started from the previous checkpoint's
eigenvectors: eigsh with ``v0`` their sum (``eigsh_eigenpairs(start=...)``) and scipy's
block ``lobpcg`` from the previous ``k + 3`` vectors (its residuals checked with the operator
afterwards, those products counted), plus cold eigsh at a looser ``tol`` (the eigenvalue
error is quadratic in the residual), so that what the stopping rule saves is not credited
to the start. The model, optimizer, batch size, checkpoint steps and la/sa come from
config.yaml's e5 section; the training images (MNIST test images, ``resources/mnist10k``),
the fixed Hessian images and the steps are cut down by the options. Per checkpoint it
prints the products of each method and its largest relative eigenvalue difference to cold
eigsh; then the totals over the checkpoints after the first.

Usage: ``python benchmarks/hessian.py [--device cuda] [--quick] [--spectrum] [--hvp-costs]
[--warm-sequence]``.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from minima.hessian import (  # noqa: E402
    FunctionalLoss,
    HessianOperator,
    PyHessianSession,
    hutchinson_trace,
    lanczos_eigen,
    slq_nodes,
)

# ----------------------------------------------------------------------------- models/data


def build(name: str) -> nn.Module:
    """LeNet-5 (ReLU, max-pool) or ResNet18 (CIFAR stem), from minima.models if present."""
    try:
        from minima.models import build_model
    except ImportError:
        build_model = None
    if name == "lenet5":
        if build_model is not None:
            return build_model(
                {"name": "lenet5", "activation": "relu", "pool": "max"},
                in_channels=1,
                image_size=28,
                num_classes=10,
            )
        return nn.Sequential(
            nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10),
        )  # fmt: skip
    if build_model is not None:
        return build_model(
            {"name": "resnet18", "stem": "cifar"}, in_channels=3, image_size=32, num_classes=10
        )
    import torchvision

    model = torchvision.models.resnet18(num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
    model.maxpool = nn.Identity()
    return model


def mnist_images(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, str]:
    folder = ROOT / "resources" / "mnist10k"
    images, labels = folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz"
    if images.exists() and labels.exists() and n <= 10000:
        with gzip.open(images) as fx, gzip.open(labels) as fy:
            x = np.frombuffer(fx.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
            y = np.frombuffer(fy.read(), np.uint8, offset=8)
        x = torch.from_numpy(x[:n].astype(np.float32) / 255.0)
        x = (x - x.mean()) / x.std()
        return x, torch.from_numpy(y[:n].astype(np.int64)), "MNIST test images (mnist10k)"
    x = torch.randn(n, 1, 28, 28, generator=gen)
    return x, torch.randint(0, 10, (n,), generator=gen), "random MNIST-shaped images"


def cifar_images(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, str]:
    x = torch.randn(n, 3, 32, 32, generator=gen)
    return x, torch.randint(0, 10, (n,), generator=gen), "random CIFAR-sized images"


# ----------------------------------------------------------------------------- timing


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device, repeats: int = 3) -> tuple[float, object]:
    """Median seconds over ``repeats`` calls after one warm-up call, and the last result."""
    out = fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def once(fn: Callable[[], object], device: torch.device) -> tuple[float, object]:
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - start, out


# ----------------------------------------------------------------------------- spectrum


def count_pyhessian_products() -> dict[str, int]:
    """Count PyHessian's data-loader HVPs (one per call) from now on."""
    from pyhessian import hessian as pyhessian_class

    counter = {"n": 0}
    inner = pyhessian_class.dataloader_hv_product
    if getattr(inner, "_counted", False):
        inner = inner._inner

    def counted(self, v):
        counter["n"] += 1
        return inner(self, v)

    counted._counted, counted._inner = True, inner
    pyhessian_class.dataloader_hv_product = counted
    return counter


def train_briefly(model: nn.Module, batches, device: torch.device, epochs: int, lr: float) -> str:
    """SGD (momentum 0.9, batch 128) over the benchmark's own images for ``epochs``: an
    untrained network's Hessian has no outliers, so it says nothing about deflation or about
    how fast the top Ritz pairs converge. Returns what was done, for the printout."""
    from minima.optim.registry import build_train_step

    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    step = build_train_step(model, {"name": "sgd", "lr": lr, "momentum": 0.9})
    draw = torch.Generator().manual_seed(2)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=draw)
        for i in range(0, x.shape[0], 128):
            idx = order[i : i + 128]
            step(model, F.cross_entropy, x[idx].to(device), y[idx].to(device))
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(bx).argmax(1) == by).sum()) for bx, by in batches)
    return f"trained {epochs} epochs (SGD lr {lr}, momentum 0.9): {correct / x.shape[0]:.1%} fit"


def analysis_mem_mb() -> float:
    """config.yaml's ``resources.analysis.mem_mb``: the joint path decides ``cache_graph``
    from it, as the ``spectrum`` rule does."""
    import yaml

    return float(
        yaml.safe_load((ROOT / "config.yaml").read_text())["resources"]["analysis"]["mem_mb"]
    )


def bench_spectrum(name: str, model: nn.Module, batches, device: torch.device, args) -> dict:
    """E1's spectrum both ways: accuracy first, then time and products."""
    from minima.hessian.joint import density_l1
    from minima.hessian.spectrum import density, joint, top_eigen, trace

    loss_fn = F.cross_entropy
    k, tol = args.spectrum_top_k, args.spectrum_tol
    steps, probes, n_trace = args.spectrum_steps, args.spectrum_probes, args.spectrum_trace
    smooth = {"num_bins": 2000, "sigma_squared": 1e-5, "margin": 0.01}
    print(
        f"\n== spectrum, {name}: top-{k} (tol {tol}), {n_trace}-probe trace, "
        f"{probes} x {steps} SLQ =="
    )
    counter = count_pyhessian_products()
    t0 = time.perf_counter()
    py_top = top_eigen(
        model, loss_fn, batches, k, backend="pyhessian", tol=tol, max_iter=args.eig_iters,
        device=device,
    )  # fmt: skip
    n_py_eig = counter["n"]
    t1 = time.perf_counter()
    py_tr = trace(model, loss_fn, batches, n_probes=n_trace, backend="pyhessian", device=device)
    t2 = time.perf_counter()
    py_dens = density(
        model, loss_fn, batches, n_steps=steps, n_probes=probes, backend="pyhessian",
        device=device, **smooth,
    )  # fmt: skip
    sync(device)
    t3 = time.perf_counter()
    n_py = counter["n"]
    res = joint(
        model, loss_fn, batches, k, tol=tol, max_iter=args.eig_iters, n_steps=steps,
        n_probes=probes, trace_probes=n_trace, probe_batch=probes, device=device,
        cache_graph="auto", mem_mb=analysis_mem_mb(), **smooth,
    )  # fmt: skip
    sync(device)
    t4 = time.perf_counter()
    scale = float(np.abs(res.eigen.eigenvalues).max())
    rel_resid = float(res.eigen.residuals.max()) / scale
    l1 = density_l1(res.density, py_dens)
    checks = {
        "top_k_residual_ok": rel_resid <= tol,
        "trace_stderr_ok": res.trace.stderr <= py_tr.stderr,
    }
    t_py, t_joint = t3 - t0, t4 - t3
    print(f"  PyHessian: top {t1 - t0:.1f} s + trace {t2 - t1:.1f} s + density {t3 - t2:.1f} s")
    print(f"  PyHessian top-{k} {np.round(py_top.eigenvalues, 5)} ({n_py_eig} HVPs)")
    print(
        f"  joint     top-{k} {np.round(res.eigen.eigenvalues, 5)} (max residual / |lambda_1| "
        f"{rel_resid:.2e}, {res.details['eigen_from_slq']} from SLQ alone)"
    )
    print(
        f"  trace: PyHessian {py_tr.estimate:.5g} +- {py_tr.stderr:.3g} ({n_trace} probes) | "
        f"joint {res.trace.estimate:.5g} +- {res.trace.stderr:.3g} ({res.trace.n_probes} "
        f"deflated probes)"
    )
    print(f"  density L1 distance joint vs PyHessian: {l1:.3f} (of at most 2)")
    print(f"  accuracy checks: {checks}")
    print(
        f"  HVPs: PyHessian {n_py} | joint {res.n_hvp['total']} {res.n_hvp}\n"
        f"  time: PyHessian {t_py:.1f} s | joint {t_joint:.1f} s | ratio {t_py / t_joint:.2f}x"
        + ("" if all(checks.values()) else "  (accuracy NOT equal: ratio not comparable)")
    )
    return {
        "name": name,
        "seconds": {"pyhessian": t_py, "joint": t_joint},
        "hvp": {"pyhessian": n_py, "joint": res.n_hvp},
        "checks": checks,
        "density_l1": l1,
    }


# ----------------------------------------------------------------------------- HVP costs


def bench_hvp_costs(name: str, model: nn.Module, batches, device: torch.device, args) -> None:
    """Milliseconds per probe of each way to compute one product, side by side."""
    from torch.func import jvp

    loss_fn = F.cross_entropy
    p = args.probe_batch
    rows = []

    def per_probe(op: HessianOperator, n: int) -> float:
        V = torch.randn(n, op.n_params, device=device)
        t, _ = timed(lambda: op.matmat(V), device, args.repeats)
        return t / n

    kinds = {
        "fwd-over-rev": {"method": "forward_over_reverse"},
        "double backward": {"method": "double_backward"},
        "double backward, cached graph": {"method": "double_backward", "cache_graph": True},
    }
    for label, kw in kinds.items():
        op = HessianOperator(model, loss_fn, batches, device=device, **kw)
        rows.append((f"{label}, 1 probe", per_probe(op, 1)))
        rows.append((f"{label}, {p} probes/call", per_probe(op, p)))
        if kw["method"] == "double_backward":  # the other way of batching probes
            op.batched_backward = not op.batched_backward
            how = "is_grads_batched" if op.batched_backward else "one backward per probe"
            rows.append((f"{label}, {p} probes/call, {how}", per_probe(op, p)))
    # batch size: the same examples in batches half as large
    half = max(1, int(batches[0][0].shape[0]) // 2)
    small = [(x[i : i + half], y[i : i + half]) for x, y in batches for i in range(0, len(x), half)]
    for method in ("forward_over_reverse", "double_backward"):
        op = HessianOperator(model, loss_fn, small, device=device, method=method)
        rows.append((f"{method}, batch {half}, {p} probes/call", per_probe(op, p)))
    # torch.compile of the product closure (one probe)
    op = HessianOperator(model, loss_fn, batches, device=device, method="forward_over_reverse")
    try:
        fns = [op.per_batch_grad_fn(x, y) for x, y in op.batches]

        def product(v, fns=fns):
            return sum(
                w * jvp(f, (op.theta,), (v,))[1] for w, f in zip(op.weights, fns, strict=True)
            )

        compiled = torch.compile(product)
        v = torch.randn(op.n_params, device=device)
        t_compile, _ = once(lambda: compiled(v), device)
        t, _ = timed(lambda: compiled(v), device, args.repeats)
        rows.append((f"torch.compile fwd-over-rev, 1 probe (compile {t_compile:.0f} s)", t))
    except Exception as err:  # noqa: BLE001 - report, do not stop the benchmark
        rows.append((f"torch.compile failed: {type(err).__name__}", float("nan")))
    print(f"\n== HVP cost per probe, {name} ==")
    base = rows[0][1]
    for label, t in rows:
        print(f"  {label:58s} {t * 1e3:9.1f} ms  {t / base:5.2f} x fwd-over-rev")


# ----------------------------------------------------------------------------- warm starts


def e5_sequence(args, device: torch.device) -> tuple[list[nn.Module], list, dict]:
    """E5's run (config.yaml: model, optimizer, batch size), cut down: trained on
    ``--warm-train-images`` MNIST test images, float64 copies at ``--warm-steps`` (default: the
    config's steps up to 50), and the fixed Hessian images (the first ``--warm-images``)."""
    import yaml

    from minima.models import build_model
    from minima.optim.registry import build_train_step

    e5 = yaml.safe_load((ROOT / "config.yaml").read_text())["experiments"]["e5"]
    run = {**e5["defaults"], **next(iter(e5["runs"].values()))}
    steps = args.warm_steps or [s for s in run["checkpoints"]["steps"] if s <= 50]
    gen = torch.Generator().manual_seed(0)
    x, y, source = mnist_images(args.warm_train_images, gen)
    torch.manual_seed(0)
    model = build_model(e5["models"][0], in_channels=1, image_size=28, num_classes=10).to(device)
    step = build_train_step(model, run["optimizer"])
    batch, models = run["batch_size"], []
    draw = torch.Generator().manual_seed(1)
    for t in range(max(steps) + 1):
        if t in steps:
            models.append(copy.deepcopy(model).double())
        idx = torch.randint(0, x.shape[0], (batch,), generator=draw)
        step(model, F.cross_entropy, x[idx].to(device), y[idx].to(device))
    fixed = [(x[: args.warm_images].double().to(device), y[: args.warm_images].to(device))]
    eig = e5["analyses"]["eigenpairs"]
    info = {
        "model": e5["models"][0]["name"],
        "optimizer": run["optimizer"],
        "steps": steps,
        "source": source,
        "la": args.warm_la if args.warm_la is not None else eig["la"],
        "sa": args.warm_sa if args.warm_sa is not None else eig["sa"],
        "tol": eig["tol"],
    }
    return models, fixed, info


def lobpcg_from(op: HessianOperator, start: np.ndarray, k: int, which: str, rtol: float):
    """scipy's lobpcg from ``start`` (all its columns), stopped at residual ``rtol`` times the
    smallest |eigenvalue| of the start's Rayleigh-Ritz; returns the k wanted values, their
    true residuals and the products (lobpcg's and the residual check's)."""
    from scipy.sparse.linalg import lobpcg

    n0 = op.n_hvp
    A = op.to_scipy()
    Q, _ = np.linalg.qr(start)
    theta = np.linalg.eigvalsh(Q.T @ A.matmat(Q))
    tol = rtol * float(np.abs(theta).min())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # lobpcg warns when it stops at maxiter
        values, vectors = lobpcg(A, Q, largest=(which == "LA"), tol=tol, maxiter=500)
    order = np.argsort(-values) if which == "LA" else np.argsort(values)
    values, vectors = values[order][:k], vectors[:, order][:, :k]
    residuals = np.linalg.norm(A.matmat(vectors) - vectors * values, axis=0)
    return values, residuals, op.n_hvp - n0


def bench_warm_sequence(device: torch.device, args) -> dict:
    """Products per checkpoint: cold eigsh vs eigsh/lobpcg started from the previous vectors."""
    from minima.hessian.eigsh import eigsh_eigenpairs

    models, fixed, info = e5_sequence(args, device)
    tol, loose = info["tol"], args.warm_loose_tol
    n_params = sum(p.numel() for p in models[0].parameters())
    print(
        f"\n== E5 checkpoint sequence: {info['model']} ({n_params:,} parameters), "
        f"{info['optimizer']}, steps {info['steps']}, {args.warm_train_images} training and "
        f"{args.warm_images} Hessian images ({info['source']}), float64, eigsh tol {tol} =="
    )
    totals = {}
    for which, k in (("LA", info["la"]), ("SA", info["sa"])):
        if k == 0:
            continue
        previous, sums, worst = None, {}, {}
        for t, model in zip(info["steps"], models, strict=True):
            op = HessianOperator(model, F.cross_entropy, fixed, dtype=torch.float64, device=device)
            ref = eigsh_eigenpairs(op, k + 3, which, tol=tol, seed=0)  # the next start
            cold = eigsh_eigenpairs(op, k, which, tol=tol, seed=0)
            runs = {"cold": (cold.n_hvp, cold.eigenvalues)}
            r = eigsh_eigenpairs(op, k, which, tol=loose, seed=0)
            runs[f"cold tol {loose:g}"] = (r.n_hvp, r.eigenvalues)
            if previous is not None:
                r = eigsh_eigenpairs(op, k, which, tol=tol, start=previous[:, :k])
                runs["eigsh v0 warm"] = (r.n_hvp, r.eigenvalues)
                r = eigsh_eigenpairs(op, k, which, tol=loose, start=previous[:, :k])
                runs[f"eigsh v0 warm, tol {loose:g}"] = (r.n_hvp, r.eigenvalues)
                values, _, n = lobpcg_from(op, previous, k, which, args.warm_lobpcg_rtol)
                runs["lobpcg warm"] = (n, values)
            line = f"  {which}({k}) step {t:5d}:"
            for name, (n, values) in runs.items():
                rel = float(np.max(np.abs(values - cold.eigenvalues) / np.abs(cold.eigenvalues)))
                line += f" {name} {n} ({rel:.0e})"
                line += " |" if name != list(runs)[-1] else ""
                if previous is not None:
                    sums[name] = sums.get(name, 0) + n
                    worst[name] = max(worst.get(name, 0.0), rel)
            print(line, flush=True)
            previous = ref.eigenvectors
        base = sums.get("cold", 0)
        print(f"  {which}({k}) over the steps after the first:")
        for name, n in sums.items():
            print(
                f"    {name:28s} {n:6d} products  {base / max(n, 1):5.2f}x fewer than cold  "
                f"max rel. eigenvalue difference {worst[name]:.0e}"
            )
        totals[which] = {"products": sums, "max_rel_diff": worst}
    return totals


# ----------------------------------------------------------------------------- one setting


def bench(name: str, model: nn.Module, batches, device: torch.device, args) -> None:
    n = sum(int(x.shape[0]) for x, _ in batches)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"\n== {name}: {n_params:,} parameters, {n} images in {len(batches)} batches ==")
    loss_fn = F.cross_entropy
    op = HessianOperator(model, loss_fn, batches, device=device)
    op_db = HessianOperator(model, loss_fn, batches, device=device, method="double_backward")
    v = torch.randn(1, op.n_params, device=device)
    V = torch.randn(args.probe_batch, op.n_params, device=device)
    t_grad, _ = timed(lambda: FunctionalLoss.gradient(op), device, args.repeats)
    t_fr, _ = timed(lambda: op.matmat(v), device, args.repeats)
    print(f"  HVP method chosen by auto: {op.method}")
    t_db, _ = timed(lambda: op_db.matmat(v), device, args.repeats)
    t_batch, _ = timed(lambda: op.matmat(V), device, args.repeats)
    with PyHessianSession(model, loss_fn, batches, device=device) as session:
        hess = session.hessian
        vv = [
            t.reshape(p.shape)
            for t, p in zip(torch.split(v[0], op.numels), hess.params, strict=True)
        ]
        if len(batches) > 1:
            t_py, _ = timed(lambda: hess.dataloader_hv_product(vv), device, args.repeats)
        else:
            from pyhessian.utils import hessian_vector_product

            t_py, _ = timed(
                lambda: hessian_vector_product(hess.gradsH, hess.params, vv), device, args.repeats
            )
    print(f"  one gradient (all data)           {t_grad * 1e3:9.1f} ms")
    rows = [
        ("native fwd-over-rev", t_fr),
        ("native double backward", t_db),
        (f"native batched ({args.probe_batch}/call), per probe", t_batch / args.probe_batch),
        ("PyHessian", t_py),
    ]
    for label, t in rows:
        print(f"  one HVP: {label:38s} {t * 1e3:9.1f} ms  = {t / t_grad:5.2f} x gradient")

    print(f"  {'analysis':12s} {'PyHessian s':>12s} {'native s':>10s} {'ratio':>7s}   values")
    # top eigenvalue: same budget of iterations and the same tolerance
    calls = {"n": 0}
    with PyHessianSession(model, loss_fn, batches, device=device, seed=0) as session:
        inner = session.hessian.dataloader_hv_product

        def counted(w):
            calls["n"] += 1
            return inner(w)

        session.hessian.dataloader_hv_product = counted
        t_pe, (pe, _) = once(
            lambda: session.eigenvalues(1, tol=args.tol, max_iter=args.eig_iters), device
        )
    op = HessianOperator(model, loss_fn, batches, device=device)
    t_ne, ne = once(
        lambda: lanczos_eigen(op, 1, which="LM", tol=args.tol, max_iter=args.eig_iters), device
    )
    n_py = calls["n"] if len(batches) > 1 else "?"
    print(
        f"  {'top eig':12s} {t_pe:12.2f} {t_ne:10.2f} {t_pe / t_ne:7.2f}   "
        f"PyHessian {pe[0]:.5g} ({n_py} HVPs) | native {ne.eigenvalues[0]:.5g} "
        f"({ne.n_hvp} HVPs incl. residual, converged={ne.converged})"
    )
    # trace: the same number of probes
    with PyHessianSession(model, loss_fn, batches, device=device, seed=0) as session:
        t_pt, pt = once(lambda: session.trace_samples(args.trace_probes), device)
    t_nt, nt = once(
        lambda: hutchinson_trace(op, args.trace_probes, probe_batch=args.probe_batch), device
    )
    pse = pt.std(ddof=1) / np.sqrt(pt.size) if pt.size > 1 else float("nan")
    print(
        f"  {'trace':12s} {t_pt:12.2f} {t_nt:10.2f} {t_pt / t_nt:7.2f}   "
        f"PyHessian {pt.mean():.5g} +- {pse:.2g} | native {nt.estimate:.5g} +- {nt.stderr:.2g}"
        f" ({args.trace_probes} probes each)"
    )
    # density: the same steps and probes
    with PyHessianSession(model, loss_fn, batches, device=device, seed=0) as session:
        t_pd, (pn, _) = once(
            lambda: session.density_nodes(args.density_steps, args.density_probes), device
        )
    t_nd, (nn_, _) = once(
        lambda: slq_nodes(
            op, args.density_steps, args.density_probes, probe_batch=args.density_probes
        ),
        device,
    )
    print(
        f"  {'density':12s} {t_pd:12.2f} {t_nd:10.2f} {t_pd / t_nd:7.2f}   "
        f"largest node PyHessian {max(t.max() for t in pn):.5g} | native "
        f"{max(t.max() for t in nn_):.5g} ({args.density_steps} steps x "
        f"{args.density_probes} probes each)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--quick", action="store_true", help="tiny smoke version")
    parser.add_argument("--lenet-images", type=int, default=10000)
    parser.add_argument("--lenet-batch", type=int, default=1000)
    parser.add_argument("--resnet-images", type=int, default=1280)
    parser.add_argument("--resnet-batch", type=int, default=128)
    parser.add_argument("--eig-iters", type=int, default=100)
    parser.add_argument("--tol", type=float, default=1e-4)
    parser.add_argument("--trace-probes", type=int, default=50)
    parser.add_argument("--density-steps", type=int, default=50)
    parser.add_argument("--density-probes", type=int, default=2)
    parser.add_argument("--probe-batch", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip", choices=["lenet5", "resnet18"], action="append", default=[])
    parser.add_argument("--spectrum", action="store_true", help="E1's spectrum both ways")
    parser.add_argument("--spectrum-top-k", type=int, default=5)
    parser.add_argument("--spectrum-tol", type=float, default=1e-6)
    parser.add_argument("--spectrum-steps", type=int, default=100)
    parser.add_argument("--spectrum-probes", type=int, default=10)
    parser.add_argument("--spectrum-trace", type=int, default=100)
    parser.add_argument(
        "--spectrum-train-epochs", type=int, default=0, help="train before the spectrum"
    )
    parser.add_argument("--spectrum-train-lr", type=float, default=0.05)
    parser.add_argument("--hvp-costs", action="store_true", help="per-product cost table")
    parser.add_argument("--skip-basic", action="store_true", help="only --spectrum/--hvp-costs")
    parser.add_argument("--warm-sequence", action="store_true", help="E5 warm starts, products")
    parser.add_argument("--warm-train-images", type=int, default=2000)
    parser.add_argument("--warm-images", type=int, default=32, help="fixed Hessian images")
    parser.add_argument("--warm-steps", type=int, nargs="+", default=None)
    parser.add_argument("--warm-la", type=int, default=None, help="default: config's la")
    parser.add_argument("--warm-sa", type=int, default=None, help="default: config's sa")
    parser.add_argument("--warm-loose-tol", type=float, default=1e-6)
    parser.add_argument("--warm-lobpcg-rtol", type=float, default=1e-5)
    args = parser.parse_args()
    if args.quick:
        args.lenet_images, args.lenet_batch = 512, 256
        args.resnet_images, args.resnet_batch = 16, 8
        args.eig_iters, args.trace_probes = 8, 4
        args.density_steps, args.density_probes = 5, 2
        args.probe_batch, args.repeats = 2, 1
        args.warm_train_images, args.warm_images, args.warm_steps = 256, 8, [0, 10, 20]
        args.warm_la, args.warm_sa = 3, 2
    device = torch.device(args.device)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(
        f"torch {torch.__version__}, device {device} ({gpu}), threads "
        f"{torch.get_num_threads()}, float32, eval mode{', QUICK' if args.quick else ''}"
    )
    settings = [
        ("lenet5", mnist_images, args.lenet_images, args.lenet_batch),
        ("resnet18", cifar_images, args.resnet_images, args.resnet_batch),
    ]
    if args.warm_sequence:
        bench_warm_sequence(device, args)
        if args.skip_basic and not (args.spectrum or args.hvp_costs):
            return
    for name, data, n, batch in settings:
        if name in args.skip:
            continue
        x, y, source = data(n, gen)
        batches = [
            (x[i : i + batch].to(device), y[i : i + batch].to(device)) for i in range(0, n, batch)
        ]
        model = build(name).to(device)
        if not args.skip_basic:
            bench(f"{name}, {source}", model, batches, device, args)
        if args.hvp_costs:
            bench_hvp_costs(f"{name}, {source}", model, batches, device, args)
        if args.spectrum:
            if args.spectrum_train_epochs:
                print(
                    train_briefly(
                        model, batches, device, args.spectrum_train_epochs, args.spectrum_train_lr
                    )
                )
            bench_spectrum(f"{name}, {source}", model, batches, device, args)


if __name__ == "__main__":
    main()
