"""One prepared check on a CUDA machine: CUDA-only tests, every benchmark, one E2 run per optimizer.

Within ``--budget`` seconds (10 minutes by default) it runs, each step under its own share
of the budget:
1. the tests that skip without CUDA (``pytest -k cuda`` over the files that have them);
2. every benchmark under ``benchmarks/`` with ``--device cuda`` at a size that fits;
3. one E2 training run per optimizer (the tiny E2 config, MNIST-shaped sample, one
   epoch) through the workflow with ``device: cuda``;
and writes one JSON summary (``--out``): per step its command, exit status, seconds and
the last lines of its output.

``--dry-run`` runs on a CPU machine: it lists the steps and checks their inputs (the test
files exist and hold CUDA-only tests; each benchmark accepts every flag it is given,
read from its ``--help``; each optimizer is an E2 run of ``config.yaml``; snakemake
plans the E2 runs), without running any step. Exit status: 0 when every step (or, dry,
every check) passed.

Usage: ``python benchmarks/gpu_check.py [--dry-run] [--out FILE] [--budget SECONDS]``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

CUDA_TEST_FILES = ("tests/test_data_device.py", "tests/test_optim_registry.py")
# benchmark -> arguments at a size that runs in about a minute on one GPU
BENCHMARKS = {
    "hessian.py": ["--device", "cuda", "--lenet-images", "10000", "--resnet-images", "1280"],
    "train_throughput.py": ["--device", "cuda", "--quick"],
    "epoch_time.py": ["--device", "cuda", "--steps", "5", "--only", "e1", "e2"],
    "similarity.py": ["--device", "cuda", "--n", "2000"],
}
E2_OPTIMIZERS = ("sgd", "sgd_momentum", "adam", "adahessian", "hybrid")
# seconds per step, in order; the rest of the budget is slack
SHARES = {"tests": 60, "benchmark": 75, "e2": 150}


@dataclass
class Step:
    """One thing the check runs."""

    name: str
    command: list[str]
    timeout: int
    checks: list[str] = field(default_factory=list)  # what the dry run verified
    problems: list[str] = field(default_factory=list)


def _flags(args: list[str]) -> list[str]:
    return [a for a in args if a.startswith("--")]


@functools.cache
def _help_text(script: Path) -> str:
    """The script's ``--help`` output (what it printed, should it not exit in time); asked
    once per script and process (each start imports torch: seconds)."""
    try:
        out = subprocess.run(
            [PYTHON, str(script), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=300
        )
        return out.stdout + out.stderr
    except subprocess.TimeoutExpired as err:
        text = err.stdout or b""
        return text.decode(errors="replace") if isinstance(text, bytes) else text


def e2_override(tmp: Path) -> Path:
    """A config file on top of the tiny test config: E2 only, on the GPU, one epoch."""
    path = tmp / "gpu_e2.yaml"
    path.write_text(
        "build_experiments: [e2]\ndevice: cuda\n"
        "resources: {train: {gpu: 1}}\n"
        "experiments: {e2: {seeds: [0], defaults: {epochs: 1}}}\n"
    )
    return path


def e2_targets(config: dict) -> list[str]:
    models = config["experiments"]["e2"]["models"]
    label = str(models[0].get("label", models[0]["name"]))
    return [f"results/runs/e2/{label}/{run}/seed0/final.json" for run in E2_OPTIMIZERS]


def plan(tmp: Path) -> list[Step]:
    """Every step, with its command and share of the budget."""
    steps = [
        Step(
            "cuda tests",
            [PYTHON, "-m", "pytest", "-q", "-rs", "-k", "cuda", *CUDA_TEST_FILES],
            SHARES["tests"],
        )
    ]
    for script, args in BENCHMARKS.items():
        steps.append(
            Step(
                f"benchmark {script}",
                [PYTHON, str(ROOT / "benchmarks" / script), *args],
                SHARES["benchmark"],
            )
        )
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    work = tmp / "e2_work"
    command = [PYTHON, "-m", "snakemake", *e2_targets(config)]
    command += ["--snakefile", str(ROOT / "Snakefile"), "--directory", str(work), "--cores", "4"]
    command += ["--configfile", str(ROOT / "config.yaml"), str(ROOT / "tests/configs/tiny.yaml")]
    command += [str(e2_override(tmp))]
    steps.append(Step("e2 one run per optimizer", command, SHARES["e2"]))
    return steps


def check_inputs(steps: list[Step]) -> None:
    """What the dry run verifies, step by step (problems are recorded, not raised)."""
    for path in CUDA_TEST_FILES:
        text = (ROOT / path).read_text() if (ROOT / path).exists() else ""
        ok = re.search(r"skipif\(not torch\.cuda\.is_available\(\)", text) is not None
        steps[0].checks.append(f"{path} has a CUDA-only test")
        if not ok:
            steps[0].problems.append(f"{path}: missing, or no test skipped without CUDA")
    for step in steps[1 : 1 + len(BENCHMARKS)]:
        script = Path(step.command[1])
        if not script.exists():
            step.problems.append(f"{script.name} does not exist")
            continue
        text = _help_text(script)
        for flag in _flags(step.command[2:]):
            step.checks.append(f"{script.name} accepts {flag}")
            if flag not in text:
                step.problems.append(f"{script.name} --help does not list {flag}")
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    runs = config["experiments"]["e2"]["runs"]
    for name in E2_OPTIMIZERS:
        steps[-1].checks.append(f"e2 run {name} exists in config.yaml")
        if name not in runs:
            steps[-1].problems.append(f"config.yaml has no e2 run {name!r} (it has {list(runs)})")
    steps[-1].checks.append("the workflow plans the e2 runs (snakemake --dry-run)")
    planned = subprocess.run(
        [*steps[-1].command, "--dry-run", "--quiet", "rules"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    if planned.returncode != 0:
        tail = (planned.stdout + planned.stderr)[-600:]
        steps[-1].problems.append(f"snakemake --dry-run failed: {tail}")
    missing = set(runs) - set(E2_OPTIMIZERS)
    if missing:
        steps[-1].problems.append(f"e2 runs not checked: {sorted(missing)}")


def run_step(step: Step, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    try:
        out = subprocess.run(
            step.command, capture_output=True, text=True, cwd=ROOT, timeout=step.timeout, env=env
        )
        rc, text = out.returncode, out.stdout + out.stderr
    except subprocess.TimeoutExpired as err:
        rc, text = 124, f"timed out after {step.timeout} s\n{err.stdout or ''}"
        text = text if isinstance(text, str) else text.decode(errors="replace")
    return {
        **asdict(step),
        "rc": rc,
        "seconds": round(time.perf_counter() - started, 1),
        "output_tail": text[-4000:],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="list and check, run nothing")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "gpu_check.json"))
    parser.add_argument("--budget", type=int, default=600, help="seconds in all")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    steps = plan(tmp)
    total = sum(s.timeout for s in steps)
    if total > args.budget:
        print(f"the steps' shares ({total} s) exceed the budget ({args.budget} s)")
        return 2
    summary: dict = {"dry_run": args.dry_run, "budget_s": args.budget, "planned_s": total}
    if args.dry_run:
        check_inputs(steps)
        for s in steps:
            print(f"[{'ok' if not s.problems else 'PROBLEM'}] {s.name} ({s.timeout} s): "
                  f"{' '.join(s.command[1:])}")  # fmt: skip
            for p in s.problems:
                print(f"    problem: {p}")
        summary["steps"] = [asdict(s) for s in steps]
        ok = not any(s.problems for s in steps)
    else:
        import torch

        if not torch.cuda.is_available():
            print("no CUDA device: run with --dry-run on a CPU machine")
            return 2
        summary["device"] = torch.cuda.get_device_name(0)
        env = dict(os.environ)
        results = []
        for s in steps:
            print(f"== {s.name}", flush=True)
            results.append(run_step(s, env))
            print(f"   rc={results[-1]['rc']} in {results[-1]['seconds']} s", flush=True)
        summary["steps"] = results
        ok = all(r["rc"] == 0 for r in results)
    summary["ok"] = ok
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(f"summary: {out} ({'ok' if ok else 'FAILED'})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
