"""Job resources per rule family and experiment; runtime per attempt, capped by partitions."""

from __future__ import annotations

import math

import pytest
import yaml

from minima import cluster_resources as cr
from tests.workflow_helpers import REPO

RESOURCES = {
    "data": {"threads": 1, "mem_mb": 4000, "runtime": 30, "gpu": 0},
    "train": {"threads": 4, "mem_mb": 16000, "runtime": 720, "gpu": 1},
    "analysis": {"threads": 4, "mem_mb": 32000, "runtime": 240, "gpu": 1},
    "paper": {"threads": 1, "mem_mb": 4000, "runtime": 30, "gpu": 0},
    "experiments": {"e1": {"analysis": {"mem_mb": 4000, "runtime": 30, "gpu": 0}}},
}


@pytest.mark.parametrize(
    ("limit", "minutes"),
    [
        (4320, 4320),
        ("90", 90),
        ("30:00", 30),
        ("01:30:00", 90),
        ("2-00:00:00", 2880),
        ("1-12", 2160),
        ("1-00:30", 1470),
        ("UNLIMITED", math.inf),
    ],
)
def test_slurm_time_formats(limit, minutes):
    assert cr.parse_minutes(limit) == minutes


def test_bad_time_limit_is_an_error():
    with pytest.raises(ValueError, match="not a SLURM time limit"):
        cr.parse_minutes("two days")


def test_overrides_replace_only_the_keys_they_name():
    assert cr.family_resources(RESOURCES, "analysis", "e1") == {
        "threads": 4,
        "mem_mb": 4000,
        "runtime": 30,
        "gpu": 0,
    }
    assert cr.family_resources(RESOURCES, "analysis", "e4") == RESOURCES["analysis"]
    assert cr.family_resources(RESOURCES, "train", "e1") == RESOURCES["train"]
    assert cr.family_resources(RESOURCES, "paper", None) == RESOURCES["paper"]


def test_partition_cap_depends_on_whether_the_job_needs_a_gpu(tmp_path):
    path = tmp_path / "partitions.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "partitions": {
                    "cpu": {"max_runtime": "3-00:00:00", "max_threads": 64},
                    "gpu": {"max_runtime": 1440, "max_gpu": 4},
                    "gpu_short": {"max_runtime": "04:00:00", "max_gpu": 8},
                }
            }
        )
    )
    assert cr.partition_max_runtime(path, gpu=1) == 1440  # only partitions with GPUs
    assert cr.partition_max_runtime(path, gpu=0) == 4320
    assert cr.partition_max_runtime(None, gpu=1) is None
    # the repository's example: the GPU partition's 4,320 min is the longest either way
    example = REPO / "profiles" / "slurm" / "partitions.example.yaml"
    assert cr.partition_max_runtime(example, gpu=1) == 4320
    assert cr.partition_max_runtime(example, gpu=0) == 4320


def test_runtime_grows_with_attempt_up_to_the_cap(tmp_path):
    path = tmp_path / "partitions.yaml"
    path.write_text("partitions:\n  gpu: {max_runtime: '1-00:00:00', max_gpu: 1}\n")
    e4 = {**RESOURCES, "experiments": {"e4": {"train": {"runtime": 600}}}}
    minutes = [
        cr.job_resource(e4, "train", "runtime", "e4", attempt, path) for attempt in (1, 2, 3)
    ]
    assert minutes == [600, 1200, 1440]  # the third try is capped at the partition's day
    assert cr.job_resource(e4, "train", "runtime", "e1", 2, None) == 1440  # 2 x 720, no cap
    assert cr.job_resource(e4, "train", "mem_mb", "e4", 3, path) == 16000  # memory stays


def test_unknown_family_or_key_names_the_allowed_ones():
    with pytest.raises(KeyError, match="data, train, analysis, paper"):
        cr.family_resources(RESOURCES, "gpu", None)
    with pytest.raises(KeyError, match="threads, mem_mb, runtime, gpu"):
        cr.job_resource(RESOURCES, "train", "memory", None)


def test_rule_families_match_the_rules():
    """RULE_FAMILIES (benchmark summary) names each rule's family as its resources do."""
    text = "".join(smk.read_text() for smk in sorted((REPO / "rules").glob("*.smk")))
    for rule, family in cr.RULE_FAMILIES.items():
        body = text.split(f"\nrule {rule}:\n", 1)[1].split("\nrule ", 1)[0]
        assert f'mem_mb=resource("{family}", "mem_mb")' in body, rule
        assert "    benchmark:\n" in body, rule


def test_gpu_slots_of_a_job():
    """Slots of one GPU a job takes: 0 without a GPU, its gpu_slots, at most slots_per_gpu."""
    assert cr.gpu_slots({"gpu": 0, "gpu_slots": 1}, 4) == 0
    assert cr.gpu_slots({"gpu": 1, "gpu_slots": 1}, 4) == 1  # a quarter of a GPU
    assert cr.gpu_slots({"gpu": 1}, 4) == 4  # default: the GPU to itself
    assert cr.gpu_slots({"gpu": 1, "gpu_slots": 3}, 2) == 2  # capped at the GPU's slots
    assert cr.gpu_slots({"gpu": 2, "gpu_slots": 1}, 4) == 8  # several GPUs: whole ones
    config = {**RESOURCES, "slots_per_gpu": 4}
    config["experiments"] = {"e1": {"train": {"gpu_slots": 1}}}
    assert cr.job_resource(config, "train", "gpu_slots", "e1") == 1
    assert cr.job_resource(config, "train", "gpu_slots", "e4") == 4
    assert cr.job_resource(config, "data", "gpu_slots", "e1") == 0
