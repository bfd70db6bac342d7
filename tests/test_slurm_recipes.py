"""Every profile recipe of docs/cluster.md gives the sbatch arguments the page says.

Each recipe is merged into profiles/slurm, Snakemake plans the tiny E1's training run and one
spectrum under it (dry run: the resources each job would get), and the SLURM executor plugin's
own functions, called as its submission does, validate `slurm_extra` and build the sbatch
command line. Only the answers of the cluster's query tools are stand-ins (sacctmgr lists the
user's accounts, sinfo the partitions); no job is submitted.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.test_slurm import planned_resources
from tests.workflow_helpers import REPO, snakemake

slurm = pytest.importorskip("snakemake_executor_plugin_slurm")
from snakemake_executor_plugin_slurm.partitions import read_partition_file  # noqa: E402
from snakemake_executor_plugin_slurm.submit_string import get_submit_command  # noqa: E402
from snakemake_executor_plugin_slurm.utils import set_gres_string  # noqa: E402
from snakemake_executor_plugin_slurm.validation import validate_slurm_extra  # noqa: E402
from snakemake_interface_common.exceptions import WorkflowError  # noqa: E402

DOC = REPO / "docs" / "cluster.md"
PROFILE = REPO / "profiles" / "slurm" / "config.v8+.yaml"
GPU_JOBS = """\
build_experiments: [e1]
resources:
  train: {threads: 2, mem_mb: 1000, runtime: 5, gpu: 1}
  analysis: {threads: 2, mem_mb: 1000, runtime: 5, gpu: 1}
"""
TARGET = "results/analysis/spectrum/e1/lenet5/sgd/seed0/spectrum.json"
# recipe -> arguments it must add to the training job's sbatch call (and to the spectrum's)
EXPECTED = {
    "constraint": ["-C", "a100"],
    "gpu_model": ["--gpus=a100:1"],
    "qos": ["--qos=high"],
    "account": ["-A", "myproject"],
    "partition": ["-p", "gpu"],
    "partition_file": ["-p", "gpu"],
    "shard": ["--gres=shard:1"],
}
ON_SPECTRUM_TOO = {"constraint", "gpu_model", "account", "partition", "partition_file"}


def recipes() -> dict[str, tuple[str, str]]:
    """Name -> (language, text) of each `<!-- recipe: NAME -->` block of docs/cluster.md."""
    found = re.findall(
        r"<!-- recipe: (\w+) -->\n```(\w+)\n(.*?)```", DOC.read_text(), flags=re.DOTALL
    )
    return {name: (language, text) for name, language, text in found}


def _merge(base: dict, extra: dict) -> dict:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _stub_cluster_tools(bin_dir: Path) -> None:
    """What a cluster's sacctmgr, sacct and sinfo would answer (the plugin queries them)."""
    bin_dir.mkdir()
    answers = {
        "sacctmgr": "myproject\nother",
        "sacct": "other",
        "sinfo": "PARTITION\ndebug*\ngpu\ncpu",
    }
    for name, text in answers.items():
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\nprintf '%s\\n' {shlex.quote(text)}\n")
        tool.chmod(0o755)


class _Resources(dict):
    """The job resources as the plugin reads them: `.get(name)` and `.name`."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _typed(value: str):
    return int(value) if re.fullmatch(r"\d+", value) else value


def sbatch_arguments(rule: str, threads: int, resources: dict, partitions) -> list[str]:
    """The sbatch call of one job, built as the plugin's run_job builds it."""
    res = _Resources({k: _typed(v) for k, v in resources.items() if v != "<TBD>"})
    job = SimpleNamespace(resources=res, threads=threads, name=rule, is_group=lambda: False)
    validate_slurm_extra(job)
    executor = SimpleNamespace(
        logger=logging.getLogger("slurm-recipes"),
        _partitions=partitions,
        _fallback_partition=None,
        _fallback_account_arg=None,
    )
    params = {
        "run_uuid": "recipe-test",
        "slurm_logfile": "slurm.log",
        "comment_str": f"rule_{rule}",
        "account": next(slurm.Executor.get_account_arg(executor, job)),
        "partition": slurm.Executor.get_partition_arg(executor, job),
        "workdir": "",
    }
    call = get_submit_command(job, params) + set_gres_string(job)
    return shlex.split(call)


def _contains(arguments: list[str], expected: list[str]) -> bool:
    n = len(expected)
    return any(arguments[i : i + n] == expected for i in range(len(arguments) - n + 1))


def test_every_documented_recipe_is_tested():
    assert set(recipes()) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recipe_gives_its_sbatch_arguments(name, tmp_path, monkeypatch):
    language, text = recipes()[name]
    profile = yaml.safe_load(PROFILE.read_text())
    env = {"MINIMA_SLURM_ACCOUNT": "", "MINIMA_SLURM_PARTITION": ""}
    if language == "yaml":
        profile = _merge(profile, yaml.safe_load(text))
    else:  # `export NAME=VALUE` lines, run from the repository's root
        for key, value in re.findall(r"^export (\w+)=(\S+)$", text, flags=re.MULTILINE):
            env[key] = value.replace("$PWD", str(REPO))
    (tmp_path / "profile").mkdir()
    (tmp_path / "profile" / "config.v8+.yaml").write_text(yaml.safe_dump(profile))
    (tmp_path / "gpu_jobs.yaml").write_text(GPU_JOBS)
    _stub_cluster_tools(tmp_path / "bin")
    for key, value in {
        **env,
        "PATH": f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}",
    }.items():
        monkeypatch.setenv(key, value)
    work = tmp_path / "work"
    work.mkdir()
    plan = snakemake(
        work,
        "-n",
        "--profile",
        str(tmp_path / "profile"),
        TARGET,
        configfiles=("tests/configs/tiny.yaml", str(tmp_path / "gpu_jobs.yaml")),
    ).stdout
    partition_file = os.environ.get("SNAKEMAKE_SLURM_PARTITIONS")
    partitions = read_partition_file(Path(partition_file)) if partition_file else None
    calls = {
        rule: sbatch_arguments(rule, 2, resources, partitions)
        for rule, _, resources in planned_resources(plan)
        if rule in ("train", "spectrum", "split")
    }
    assert _contains(calls["train"], EXPECTED[name]), calls["train"]
    assert _contains(calls["spectrum"], EXPECTED[name]) == (name in ON_SPECTRUM_TOO)
    gpus = [arg for arg in calls["train"] if arg.startswith("--gpus")]
    assert gpus == {"gpu_model": ["--gpus=a100:1"], "shard": []}.get(name, ["--gpus=1"])
    # CPU jobs never ask for a GPU, whatever the recipe; from a partition file they go to cpu
    assert not any(arg.startswith(("--gpus", "--gres")) for arg in calls["split"])
    if name == "partition_file":
        assert _contains(calls["split"], ["-p", "cpu"])


def test_constraint_through_slurm_extra_is_refused():
    """The old recipe: plugin 2.8 rejects node constraints in slurm_extra (use `constraint`)."""
    job = SimpleNamespace(resources=_Resources(slurm_extra="'--constraint=a100'"))
    with pytest.raises(WorkflowError, match="node-constraints"):
        validate_slurm_extra(job)
