"""The SLURM profile: its job groups in a dry run, and the workflow through the SLURM executor
on a real, throwaway one-node SLURM cluster.

For the latter, tests/slurm/setup_slurm.sh installs SLURM and munge (apt-get) and writes the
cluster's config; this module starts munged, slurmctld and slurmd, runs the tiny workflow's E1
with ``--profile profiles/slurm`` (training jobs ask for a GPU but train on the CPU), checks
what each job asked SLURM for, and stops every daemon it started, by pid. Skipped, saying why,
where that cannot be done: not root, no apt-get, or a SLURM set-up of this machine's own.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from minima import plan
from tests.workflow_helpers import REPO, snakemake

SETUP = REPO / "tests" / "slurm" / "setup_slurm.sh"
MARKER = "# minima throwaway test cluster"  # first line of the config files setup_slurm.sh writes
RUNS = ("sgd", "adagrad", "adam", "adahessian")  # E1 of tests/configs/tiny.yaml
# E1 only (E2's ResNet18 runs would double the time), training jobs asking for one GPU each.
OVERRIDES = """\
build_experiments: [e1]
resources:
  data: {threads: 1, mem_mb: 500, runtime: 5, gpu: 0}
  train: {threads: 1, mem_mb: 1000, runtime: 5, gpu: 1}
  analysis: {threads: 1, mem_mb: 1000, runtime: 5, gpu: 0}
"""


def _ok(command: list[str], **kwargs) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=20, **kwargs).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _munge_works() -> bool:
    encoded = subprocess.run(["munge", "-n"], capture_output=True, timeout=20)
    return encoded.returncode == 0 and _ok(["unmunge"], input=encoded.stdout)


def _wait_for(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not come up within {timeout} s")
        time.sleep(0.5)


def _node_idle() -> bool:
    out = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.strip() == "idle"


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node cluster (config from setup_slurm.sh); its daemons stopped at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root: installs SLURM and munge with apt-get and writes /etc/slurm")
    if shutil.which("slurmctld") is None and shutil.which("apt-get") is None:
        pytest.skip("SLURM is not installed and there is no apt-get to install it")
    if shutil.which("scontrol") and _ok(["scontrol", "ping"]):
        pytest.skip("a SLURM controller already runs here; the test will not disturb it")
    state = tmp_path_factory.mktemp("slurm")
    setup = subprocess.run(
        ["bash", str(SETUP), str(state)], capture_output=True, text=True, timeout=900
    )
    if setup.returncode in (2, 3):  # cannot install here / this machine's own slurm.conf
        pytest.skip(f"setup_slurm.sh: {setup.stderr.strip()}")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    daemons: list[subprocess.Popen] = []
    logs = open(state / "daemons.out", "w")  # noqa: SIM115 - closed in the finally below
    try:
        if not _munge_works():
            daemons.append(subprocess.Popen(["munged", "-F", "--force"], stdout=logs, stderr=logs))
            _wait_for(_munge_works, "munged")
        for command in (["slurmctld", "-D", "-i"], ["slurmd", "-D", "-N", "localhost"]):
            daemons.append(subprocess.Popen(command, stdout=logs, stderr=logs, cwd=state))
        _wait_for(_node_idle, "the SLURM node")
        yield state
    finally:
        if daemons:
            queued = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True)
            if queued.stdout.split():
                subprocess.run(["scancel", *queued.stdout.split()], capture_output=True)
        for process in reversed(daemons):
            _stop(process)
        logs.close()
        for name in ("slurm.conf", "gres.conf"):  # ours only (setup_slurm.sh's first line)
            path = Path("/etc/slurm") / name
            if path.is_file() and path.read_text().startswith(MARKER):
                path.unlink()


def _slurm_jobs(name: str) -> list[dict[str, str]]:
    """Every job of one Snakemake run (its jobs share the run's SLURM job name)."""
    out = subprocess.run(
        ["scontrol", "-o", "show", "job"], capture_output=True, text=True, check=True
    ).stdout
    jobs = [dict(re.findall(r"(\S+?)=(\S*)", line)) for line in out.splitlines() if line]
    return [job for job in jobs if job.get("JobName") == name]


def gpus_asked(job: dict[str, str]) -> int:
    """GPUs a job asked for, from scontrol's TresPerJob: SLURM 22.05 writes `gres:gpu:1`,
    later versions `gres/gpu:1` (with a type: `gres/gpu:a100:1`); none: 0."""
    found = re.findall(r"gres[:/]gpu(?::[A-Za-z0-9_.-]+)?[:=](\d+)", job.get("TresPerJob", ""))
    return sum(int(count) for count in found)


def test_gpu_count_reads_both_gres_spellings():
    assert gpus_asked({"TresPerJob": "gres:gpu:1"}) == 1  # SLURM 22.05
    assert gpus_asked({"TresPerJob": "gres/gpu:2"}) == 2  # SLURM 23.02 and later
    assert gpus_asked({"TresPerJob": "gres/gpu:a100:4"}) == 4
    assert gpus_asked({"TresPerJob": "gres/gpu=3"}) == 3
    assert gpus_asked({"TresPerJob": ""}) == gpus_asked({}) == 0


def test_every_rule_declares_threads_memory_time_and_gpu_from_config():
    """Each rule asks for threads, mem_mb, runtime and gpu; gpu is a config value or 0."""
    rules = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        blocks = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.MULTILINE)
        rules.update(zip(blocks[1::2], blocks[2::2], strict=True))
    assert {"download", "split", "init_weights", "train"} <= set(rules)
    family = r'resource\("\w+", "{}"\)'
    for name, body in rules.items():
        body = re.split(r"^\S", body, maxsplit=1, flags=re.MULTILINE)[0]
        assert re.search(r"^    threads: (\d+|" + family.format("threads") + ")$", body, re.M), name
        for key in ("mem_mb", "runtime"):
            assert re.search(rf"^        {key}={family.format(key)},$", body, re.M), (name, key)
        gpu = re.search(r"^        gpu=(.*),$", body, re.MULTILINE)
        assert gpu and re.fullmatch(f"0|{family.format('gpu')}", gpu.group(1)), name


def group_jobs(output: str) -> list[tuple[str, list[str]]]:
    """The group jobs of a dry run: group name and the wildcards of each member job."""
    groups: list[tuple[str, list[str]]] = []
    inside = False
    for line in output.splitlines():
        header = re.search(r"Group job (\S+) \(jobs in", line)
        if header:
            groups.append((header.group(1), []))
            inside = True
        elif inside and re.match(r"^(\[|rule |localrule )", line):  # next top-level job
            inside = False
        elif inside and line.startswith("        wildcards: "):
            groups[-1][1].append(line.split(": ", 1)[1])
    return groups


@pytest.fixture(scope="module")
def paper_dry_run(tmp_path_factory) -> str:
    """Dry run of the whole paper (rule all and the PDF) under profiles/slurm."""
    work = tmp_path_factory.mktemp("paper_dry_run")
    profile = str(REPO / "profiles" / "slurm")
    return snakemake(work, "-n", "--profile", profile, "all", "results/paper/paper.pdf").stdout


def local_rules() -> set[str]:
    """The rules named in the workflow's `localrules:` (rules/cluster.smk)."""
    text = (REPO / "rules" / "cluster.smk").read_text()
    block = re.search(r"^localrules:\n((?:    \w+,\n)+)", text, re.MULTILINE).group(1)
    return set(re.findall(r"\w+", block))


def submissions(output: str, local: set[str]) -> Counter:
    """SLURM jobs a dry run would submit: one per group job, one per ungrouped job of a rule
    that is neither local nor action-less (rule all), counted by group or rule name."""
    counts: Counter = Counter()
    for line in output.splitlines():
        group = re.search(r"Group job (\S+) \(jobs in", line)
        if group:
            counts[f"group {group.group(1)}"] += 1
        rule = re.match(r"^rule (\w+):$", line)  # top level: not inside a group job
        if rule and rule.group(1) not in local | {"all"}:
            counts[rule.group(1)] += 1
    return counts


def test_small_jobs_never_become_slurm_jobs_of_their_own(paper_dry_run):
    """The full paper under profiles/slurm: 127 submissions (257 before localrules and the
    prep/analysis groups). Data, figures, tables and the PDF run on the login node; splits
    and initial weights share one job; E1's and E5's analyses share a few."""
    local = local_rules()
    rules = set(
        re.findall(
            r"^rule (\w+):",
            "".join(smk.read_text() for smk in (REPO / "rules").glob("*.smk")),
            re.MULTILINE,
        )
    )
    assert local <= rules
    assert {"download", "figure", "table", "analysis_figure", "paper_section", "paper"} <= local
    counts = submissions(paper_dry_run, local)
    # only GPU work is submitted, and the two cross-initialized E3 runs outside any group
    assert {name for name in counts if not name.startswith("group ")} == {"train"}
    assert counts["train"] == 2
    assert counts["group prep"] == 1  # 22 initial weights, 6 splits, 2 pretrained heads
    # E1's 36 LeNet-5 spectra, landscapes and sharpness analyses (minutes each), 12 a job
    assert counts["group analysis_e1"] == 3 and counts["group analysis_e5"] == 1
    assert counts["group analysis_e4"] == 48  # hours each: one per job
    # E3: 4 networks (the pretrained pair skipped): 6 pairs + 4 self-comparisons x 3 measures
    assert counts["group analysis_e3"] == 30
    assert sum(counts.values()) == 127


def test_slurm_profile_packs_short_runs_into_shared_jobs(paper_dry_run):
    """Dry run of the whole paper with profiles/slurm: E1 and E2 runs share SLURM jobs."""
    groups = group_jobs(paper_dry_run)
    by_name: dict[str, list[list[str]]] = {}
    for name, members in groups:
        by_name.setdefault(name, []).append(members)
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    for exp, size in (("e1", 4), ("e2", 10)):  # group-components of the profile
        runs = plan.run_keys(config, [exp])
        jobs = by_name[f"train_{exp}"]
        assert len(jobs) == -(-len(runs) // size)  # 12 E1 runs -> 3 jobs, 50 E2 runs -> 5
        assert all(len(members) <= size for members in jobs)
        members = sorted(m for job in jobs for m in job)
        assert members == sorted(
            f"exp={k.experiment}, model={k.model}, run={k.run}, seed={k.seed}" for k in runs
        )
    # E3's day-long runs are not packed: one run per SLURM job; cross-initialized runs are in
    # no group (else each would share a job with its source run)
    assert by_name["train_e3"] and all(len(members) == 1 for members in by_name["train_e3"])
    grouped = {member for _, members in groups for member in members}
    chained = [k for k in plan.run_keys(config) if plan.init_source(config, k) is not None]
    assert chained and not any(f"run={k.run}," in m for k in chained for m in grouped)
    # the lr sweep's 36 short runs (E1, in rule all) share 4 jobs of at most 9
    sweep_jobs = by_name["sweep_e1"]
    assert len(sweep_jobs) == 4 and all(len(members) <= 9 for members in sweep_jobs)
    kinds = ("train", "sweep", "analysis")
    names = {f"{kind}_{exp}" for exp in config["experiments"] for kind in kinds} | {"prep"}
    assert {name for name, _ in groups} <= names


@pytest.mark.slow
def test_tiny_workflow_runs_through_slurm(slurm_cluster, tmp_path, monkeypatch):
    overrides = tmp_path / "slurm_test.yaml"
    overrides.write_text(OVERRIDES)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setenv("MINIMA_SLURM_PARTITION", "debug")  # read by the profile
    result = snakemake(
        work,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        # test-cluster settings: one thread per training run, two runs per SLURM job; no
        # accounting database, so job states come from squeue; short waits
        "--cores",
        "1",
        "--group-components",
        "train_e1=2",
        "prep=10",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--latency-wait",
        "5",
        # the runs themselves (data, initial weights, training), not the figures made of them
        *(f"results/runs/e1/lenet5/{run}/seed0/final.json" for run in RUNS),
        configfiles=("tests/configs/tiny.yaml", str(overrides)),
        timeout=1800,  # minutes on a quiet 2-core machine; far longer on a loaded one
    )
    run_id = re.search(r"SLURM run ID: (\S+)", result.stdout + result.stderr).group(1)

    for run in RUNS:
        folder = work / "results" / "runs" / "e1" / "lenet5" / run / "seed0"
        meta = json.loads((folder / "final.json").read_text())
        assert meta["status"] == "completed" and meta["hardware"]["device"] == "cpu"
        assert (folder / "metrics.parquet").exists() and (folder / "final.safetensors").exists()

    jobs = _slurm_jobs(run_id)
    assert all(job["JobState"] == "COMPLETED" for job in jobs)
    assert {job["Partition"] for job in jobs} == {"debug"}
    train = [job for job in jobs if job["Comment"].startswith("rule_train")]
    other = [job for job in jobs if not job["Comment"].startswith("rule_train")]
    # four runs, two per SLURM job, each job asking for one GPU and both runs' time limits
    # (30 min per E1 run: config resources.experiments): the group's runs go one after
    # another on that GPU
    assert len(train) == 2
    for job in train:
        assert gpus_asked(job) == 1, job
        assert job["TimeLimit"] == "01:00:00"
    # the download ran on the submitting machine (localrules); split and initial weights
    # shared one CPU job (group prep), which asked for no GPU
    # (the plugin names a group job's comment after the group and its rules)
    comments = [re.sub(r"_wildcards.*", "", job["Comment"]) for job in other]
    assert comments == ["rule_prep_init_weights_split"]
    assert gpus_asked(other[0]) == 0

    # each run used the GPU SLURM gave its job (CUDA_VISIBLE_DEVICES), found in its own log
    train_ids = {job["JobId"] for job in train}
    held = []
    for run in RUNS:
        log = (work / "logs" / "train" / "e1" / "lenet5" / run / "seed0.log").read_text()
        match = re.search(r"GPU: GPU (\d+) of \1 \(slurm; lock \S+/slurm-(\d+)/", log)
        assert match, log
        held.append(match.group(2))
    assert set(held) == train_ids and sorted(held).count(held[0]) == 2


def planned_resources(output: str) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """Rule, wildcards and resources of every job of a dry run (grouped or not)."""
    jobs: list[tuple[str, dict[str, str], dict[str, str]]] = []
    for line in output.splitlines():
        rule = re.match(r"^\s*rule (\w+):$", line)
        if rule:
            jobs.append((rule.group(1), {}, {}))
        elif jobs and re.match(r"^\s+(wildcards|resources): ", line):
            kind, values = line.strip().split(": ", 1)
            target = jobs[-1][1] if kind == "wildcards" else jobs[-1][2]
            target.update(item.split("=", 1) for item in values.split(", ") if "=" in item)
    return jobs


def test_resources_follow_the_experiment(paper_dry_run):
    """config resources.experiments: E1's LeNet analyses ask minutes and 4 GB, E4's hours."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())["resources"]
    seen = set()
    for rule, wildcards, resources in planned_resources(paper_dry_run):
        family = {"train": "train", "spectrum": "analysis", "sharpness": "analysis"}.get(rule)
        if family is None:
            continue
        exp = wildcards["exp"]
        want = {**config[family], **config["experiments"].get(exp, {}).get(family, {})}
        assert int(resources["runtime"]) == want["runtime"], (rule, exp)
        assert int(resources["mem_mb"]) == want["mem_mb"], (rule, exp)
        assert int(resources["gpu"]) == want["gpu"], (rule, exp)
        seen.add((rule, exp, int(resources["runtime"]), int(resources["mem_mb"])))
    assert ("spectrum", "e1", 30, 4000) in seen and ("spectrum", "e4", 480, 32000) in seen
    assert ("train", "e1", 30, 16000) in seen and ("train", "e4", 1440, 16000) in seen


# A run longer than its time limit: E1's SGD run on 4,000 images for many epochs (a few
# minutes on one core), with a one-minute limit on its first try.
TIMEOUT_OVERRIDES = """\
build_experiments: [e1]
training: {resume_every_epochs: 1}
resources:
  data: {threads: 1, mem_mb: 500, runtime: 5, gpu: 0}
  train: {threads: 1, mem_mb: 1500, runtime: 1, gpu: 0}
  analysis: {threads: 1, mem_mb: 1000, runtime: 5, gpu: 0}
  experiments: {e1: {train: {runtime: 1}}}
experiments:
  e1:
    data: {train_size: 4000}
    defaults: {epochs: 60}
"""
TIMEOUT_RUN = "results/runs/e1/lenet5/sgd/seed0"


@pytest.mark.slow
@pytest.mark.long  # SLURM time limits of 1, 2, 3 ... minutes: a quarter of an hour in all
def test_timed_out_run_is_retried_with_more_time_and_resumes_to_identical_weights(
    slurm_cluster, tmp_path, monkeypatch
):
    """SLURM kills the run at its 1-minute limit; Snakemake resubmits it with 2 minutes (then
    3, ...), it resumes from its last save, and its final weights equal an uninterrupted run's."""
    overrides = tmp_path / "timeout.yaml"
    overrides.write_text(TIMEOUT_OVERRIDES)
    configs = ("tests/configs/tiny.yaml", str(overrides))
    work = tmp_path / "slurm"
    work.mkdir()
    monkeypatch.setenv("MINIMA_SLURM_PARTITION", "debug")
    result = snakemake(
        work,
        "--profile",
        str(REPO / "profiles" / "slurm"),
        "--cores",
        "1",
        "--retries",
        "4",  # the profile's 1, and more for a loaded test machine: each try gets a minute more
        "--group-components",
        "prep=10",
        "--slurm-status-command",
        "squeue",
        "--slurm-init-seconds-before-status-checks",
        "1",
        "--latency-wait",
        "5",
        f"{TIMEOUT_RUN}/final.json",
        configfiles=configs,
        timeout=2400,
    )
    run_id = re.search(r"SLURM run ID: (\S+)", result.stdout + result.stderr).group(1)
    train = [job for job in _slurm_jobs(run_id) if job["Comment"].startswith("rule_train")]
    train.sort(key=lambda job: int(job["JobId"]))
    states = [job["JobState"] for job in train]
    limits = [job["TimeLimit"] for job in train]
    # killed at the limit at least once, then done; each try with one more minute
    assert states[0] == "TIMEOUT" and states[-1] == "COMPLETED", states
    assert set(states[:-1]) == {"TIMEOUT"}
    assert limits == [f"00:{minutes:02d}:00" for minutes in range(1, len(train) + 1)], limits
    log = (work / "logs" / "train" / "e1" / "lenet5" / "sgd" / "seed0.log").read_text()
    assert re.search(r"resuming at epoch (\d+)", log), log  # the last try resumed

    reference = tmp_path / "uninterrupted"
    reference.mkdir()
    snakemake(reference, "--cores", "1", f"{TIMEOUT_RUN}/final.json", configfiles=configs,
              timeout=1200)  # fmt: skip
    resumed = (work / TIMEOUT_RUN / "final.safetensors").read_bytes()
    assert resumed == (reference / TIMEOUT_RUN / "final.safetensors").read_bytes()
    meta = json.loads((work / TIMEOUT_RUN / "final.json").read_text())
    assert meta["status"] == "completed"
