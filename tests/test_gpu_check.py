"""The prepared GPU check's dry run: it lists its steps and catches broken inputs on a CPU."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")  # one module: its --help answers are cached between tests
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop("gpu_check", None)


def test_dry_run_lists_every_step_within_budget_and_its_inputs_pass(gpu_check, tmp_path):
    out = tmp_path / "summary.json"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    summary = json.loads(out.read_text())
    assert summary["ok"] and summary["dry_run"] and summary["planned_s"] <= 600
    names = [s["name"] for s in summary["steps"]]
    benchmarks = sorted(
        p.name for p in (ROOT / "benchmarks").glob("*.py") if p.name != "gpu_check.py"
    )
    assert names == [
        "cuda tests",
        *[f"benchmark {b}" for b in gpu_check.BENCHMARKS],
        "e2 one run per optimizer",
    ]
    assert sorted(gpu_check.BENCHMARKS) == benchmarks  # every benchmark is in the check
    for step in summary["steps"][1:-1]:
        assert "--device" in step["command"] and "cuda" in step["command"]
    e2 = summary["steps"][-1]
    assert len([c for c in e2["command"] if c.endswith("final.json")]) == 5 and not e2["problems"]


def test_dry_run_reports_a_flag_a_benchmark_does_not_take(gpu_check, tmp_path, monkeypatch):
    monkeypatch.setitem(gpu_check.BENCHMARKS, "hessian.py", ["--device", "cuda", "--no-such-flag"])
    monkeypatch.setattr(gpu_check, "E2_OPTIMIZERS", ("sgd", "no_such_optimizer"))
    steps = gpu_check.plan(tmp_path)
    steps[-1].command = ["true"]  # the workflow plan is checked in the test above
    gpu_check.check_inputs(steps)
    problems = [p for s in steps for p in s.problems]
    assert any("--no-such-flag" in p for p in problems)
    assert any("no_such_optimizer" in p for p in problems)
    assert gpu_check.main(["--budget", "100", "--dry-run", "--out", str(tmp_path / "x.json")]) == 2
