"""Partial reruns (dry runs): one target plans only what it needs; a changed optimizer setting
reruns only that optimizer's runs and what is made from them (Snakemake's params trigger)."""

from __future__ import annotations

import os
import re
import time

from tests.workflow_helpers import snakemake

E1_ONLY = "build_experiments: [e1]\n"
# E1's adam with another learning rate (tests/configs/tiny.yaml keeps config.yaml's runs)
ADAM_LR_CHANGED = """\
experiments:
  e1:
    runs:
      adam: {optimizer: {name: adam, lr: 0.001, betas: [0.675, 0.999]}}
"""


def planned(output: str) -> list[dict[str, str]]:
    """The jobs of a dry run: rule, output, reason and wildcards of each (group members too)."""
    jobs: list[dict[str, str]] = []
    for line in output.splitlines():
        rule = re.match(r"^\s*(?:local)?rule (\w+):$", line)
        if rule:
            jobs.append({"rule": rule.group(1), "output": "", "reason": "", "wildcards": ""})
            continue
        field = re.match(r"^\s+(output|reason|wildcards): (.*)$", line)
        if field and jobs:
            jobs[-1][field.group(1)] = field.group(2)
    return jobs


def outputs(output: str) -> list[str]:
    """Every output file of the jobs a run printed."""
    files = []
    for match in re.finditer(r"^\s+output: (.*)$", output, re.MULTILINE):
        files += [name.strip() for name in match.group(1).split(",")]
    return files


def test_one_runs_final_weights_plan_only_its_data_and_training_jobs(tmp_path):
    target = "results/runs/e2/resnet18/adam/seed3/final.safetensors"
    jobs = planned(snakemake(tmp_path, "-n", target).stdout)
    assert sorted(job["rule"] for job in jobs) == ["download", "init_weights", "split", "train"]
    wildcards = {job["rule"]: job["wildcards"] for job in jobs}
    assert wildcards["download"] == "dataset=mnist"
    assert wildcards["split"] == "dataset=mnist, exp=e2, seed=0"  # E2's split seed
    assert wildcards["init_weights"] == "exp=e2, model=resnet18, seed=3"
    assert wildcards["train"] == "exp=e2, model=resnet18, run=adam, seed=3"


def test_changed_optimizer_setting_reruns_only_that_optimizers_runs_and_descendants(tmp_path):
    e1_only = tmp_path / "e1_only.yaml"
    e1_only.write_text(E1_ONLY)
    changed = tmp_path / "adam_lr.yaml"
    changed.write_text(ADAM_LR_CHANGED)
    configs = ("tests/configs/tiny.yaml", str(e1_only))
    # a finished workflow without running it: --touch records every job's metadata (params
    # included), then stand-in outputs, all equally new (no job is older than its inputs)
    touched = snakemake(tmp_path, "--touch", configfiles=configs)
    now = time.time()
    files = outputs(touched.stdout + touched.stderr)
    assert any(name.endswith("adam/seed0/final.safetensors") for name in files)
    for name in files:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix:
            path.touch()
        else:  # directory() outputs (checkpoints) have no suffix
            path.mkdir(exist_ok=True)
        os.utime(path, (now, now))

    result = snakemake(tmp_path, "-n", configfiles=(*configs, str(changed)))
    jobs = planned(result.stdout)
    train = [job for job in jobs if job["rule"] == "train"]
    assert [job["wildcards"] for job in train] == ["exp=e1, model=lenet5, run=adam, seed=0"]
    assert train[0]["reason"].startswith("Params have changed since last execution")
    assert "'lr': 0.001" in train[0]["reason"]
    # nothing upstream (data, initial weights); downstream only jobs whose inputs come from
    # planned jobs, i.e. descendants of the rerun run
    others = [job for job in jobs if job["rule"] != "train"]
    assert not {"download", "split", "init_weights"} & {job["rule"] for job in others}
    remade = {name.strip() for job in jobs for name in job["output"].split(",")}
    for job in others:
        prefix = "Input files updated by another job: "
        assert job["reason"].startswith(prefix), job
        assert set(job["reason"].removeprefix(prefix).split(", ")) <= remade, job
