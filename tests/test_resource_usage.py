"""Benchmark files summarized per rule family and experiment against config `resources`."""

from __future__ import annotations

import csv
import math

import pytest

from minima import resource_usage as ru
from tests.workflow_helpers import REPO

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
RESOURCES = {
    "data": {"threads": 1, "mem_mb": 1000, "runtime": 10, "gpu": 0},
    "train": {"threads": 4, "mem_mb": 16000, "runtime": 60, "gpu": 1},
    "analysis": {"threads": 2, "mem_mb": 4000, "runtime": 100, "gpu": 1},
    "paper": {"threads": 1, "mem_mb": 1000, "runtime": 10, "gpu": 0},
    "experiments": {"e4": {"train": {"runtime": 1000}}},
}


def _write(root, relative, wall, rss, cpu):
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:00\t{rss}\t0\t0\t0\t0\t0\t0\t{cpu}\n")


def test_verdicts_follow_the_stated_rule(tmp_path):
    root = tmp_path / "benchmarks"
    # E1 training: 2 jobs; the larger uses 14,000 of 16,000 MB (> 80 %), 20 of 60 min
    _write(root, "train/e1/lenet5/sgd/seed0.tsv", 1200, 14000, 4000)
    _write(root, "train/e1/lenet5/adam/seed0.tsv", 600, 9000, 2000)
    # E4 training: 55 of 1000 min (< 10 %), 6,000 MB (37 %), one core of four busy
    _write(root, "train/e4/vgg16/sgd/seed0.tsv", 3300, 6000, 3300)
    # analyses: sweep_train counts as train, spectrum/eigenpairs as analysis
    _write(root, "spectrum/e1/lenet5/sgd/seed0.tsv", 5700, 500, 11000)
    _write(root, "eigenpairs/e5/lenet_big/rmsprop/seed0/step10.tsv", 90, 2000, 170)
    _write(root, "sweep_train/e1/lr/lenet5/sgd/p0/seed0.tsv", 60, 1000, 200)
    _write(root, "init_weights/e1/lenet5/seed0.tsv", 1, 100, 1)  # no config family: ignored
    rows = {(r.family, r.experiment): r for r in ru.summarize(ru.read_benchmarks(root), RESOURCES)}
    assert list(rows) == [("analysis", "e1"), ("analysis", "e5"), ("train", "e1"), ("train", "e4")]

    e1 = rows["train", "e1"]
    assert e1.jobs == 3 and e1.max_rss_mb == 14000 and e1.max_wall_s == 1200
    assert e1.memory == "too tight" and e1.suggestion["mem_mb"] == 21000  # 1.5 x 14,000
    assert e1.time == "ok" and e1.threads == "ok"  # 6,200 CPU s / (1,860 s x 4) = 83 %
    assert e1.cpu_efficiency == pytest.approx(6200 / (1860 * 4))

    e4 = rows["train", "e4"]
    assert e4.request["runtime"] == 1000 and e4.time == "too loose"
    assert e4.suggestion["runtime"] == 110  # 2 x 55 min
    assert e4.memory == "ok" and e4.threads == "ok"  # 25 % exactly is not below 25 %

    spectrum = rows["analysis", "e1"]
    assert spectrum.time == "too tight"  # 95 of 100 min
    assert spectrum.memory == "too loose" and spectrum.suggestion["mem_mb"] == 1000
    assert spectrum.threads == "ok"  # 11,000 / (5,700 x 2) = 96 %
    e5 = rows["analysis", "e5"]
    assert e5.time == "too loose" and e5.threads == "ok" and e5.memory == "ok"

    table = ru.format_summary(list(rows.values()))
    assert "| train | e1 | 3 | 14000 / 16000 | 20.0 / 60 |" in table
    assert "GPU memory is not measured" in table


def test_idle_threads_are_too_loose(tmp_path):
    root = tmp_path / "benchmarks"
    _write(root, "train/e2/resnet18/sgd/seed0.tsv", 1000, 8000, 600)  # 15 % of 4 threads
    (row,) = ru.summarize(ru.read_benchmarks(root), RESOURCES)
    assert row.threads == "too loose" and row.suggestion["threads"] == 2


def test_unmeasured_values_are_said_so(tmp_path):
    path = tmp_path / "b" / "train" / "e1" / "x.tsv"
    path.parent.mkdir(parents=True)
    path.write_text(HEADER + "0.5\t0:00:00\tNA\tNA\tNA\tNA\tNA\tNA\tNA\tNA\n")
    (row,) = ru.summarize(ru.read_benchmarks(tmp_path / "b"), RESOURCES)
    assert row.memory == "not measured" and math.isnan(row.max_rss_mb)


@pytest.mark.slow
def test_summary_of_a_tiny_run(tiny_built, monkeypatch, capsys):
    """The tiny workflow's benchmark files (one per train and analysis job), read back
    exactly: each family's largest wall time, memory and CPU time are those of its files."""
    work = tiny_built  # the whole tiny workflow, built once for the session (conftest)
    root = work / "results" / "benchmarks"
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.tsv"))
    assert "train/e1/lenet5/sgd/seed0.tsv" in files
    assert "spectrum/e1/lenet5/sgd/seed0.tsv" in files
    assert {f.split("/")[0] for f in files} <= set(ru.RULE_FAMILIES)
    measured = {}  # (family, experiment) -> Snakemake's own columns of each of its files
    for name in files:
        rule, exp = name.split("/")[:2]
        with (root / name).open() as handle:
            (row,) = list(csv.DictReader(handle, delimiter="\t"))
        measured.setdefault((ru.RULE_FAMILIES[rule], exp), []).append(row)
    resources = ru.load_resources([REPO / "config.yaml", REPO / "tests/configs/tiny.yaml"])
    rows = {(r.family, r.experiment): r for r in ru.summarize(ru.read_benchmarks(root), resources)}
    assert set(rows) == set(measured)
    for key, items in measured.items():
        usage = rows[key]
        assert usage.jobs == len(items)
        assert usage.max_wall_s == max(float(r["s"]) for r in items) > 0
        assert usage.max_cpu_s == max(float(r["cpu_time"]) for r in items) > 0
    train = rows[("train", "e1")]
    assert train.max_rss_mb == max(float(r["max_rss"]) for r in measured[("train", "e1")])
    assert train.max_rss_mb > 50  # torch alone is more than this
    # tiny.yaml asks 2,000 MB and 1 thread; config.yaml's E1 override 30 min: seconds used
    assert train.request == {"threads": 1, "mem_mb": 2000, "runtime": 30, "gpu": 0}
    assert train.time == "too loose" and train.suggestion["runtime"] == 5
    assert rows[("analysis", "e1")].request["mem_mb"] == 4000  # E1's analysis override
    # the command line of `make resources`
    monkeypatch.chdir(work)
    configs = [str(REPO / "config.yaml"), str(REPO / "tests/configs/tiny.yaml")]
    assert ru.main(["--config", *configs]) == 0
    assert f"| train | e1 | {train.jobs} |" in capsys.readouterr().out
