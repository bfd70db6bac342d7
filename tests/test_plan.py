"""Run resolution from config: what the DAG and the jobs agree a run is."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from minima import plan

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_paper_config_defines_every_run_of_the_spec(config):
    plan.check_plan(config)
    keys = plan.run_keys(config)
    count = {exp: sum(k.experiment == exp for k in keys) for exp in config["experiments"]}
    # E1: 4 optimizers x 3 seeds; E2: 5 x 10; E3: 5 runs x 1; E4: 4 x 2 models x 3 seeds.
    assert count["e1"] == 12
    assert count["e2"] == 50
    assert count["e3"] == 5
    assert count["e4"] == 24
    assert plan.RunKey("e2", "resnet18", "hybrid", 9) in keys


def test_run_inherits_defaults_and_overrides(config):
    run = plan.resolve_run(config, plan.RunKey("e3", "resnet18", "adahessian_std_rgb", 0))
    assert run["batch_size"] == 256  # from the experiment's defaults
    assert run["epochs"] == 160  # from the run
    assert run["data"]["std_scale"] == [1e-4, 1.0, 1e3]  # run overrides one data key
    assert run["data"]["val_size"] == 5000  # the rest of the experiment's data section
    assert run["schedule"]["name"] == "multistep"


def test_cross_initialization_source(config):
    key = plan.RunKey("e3", "resnet18", "sgd_from_adahessian", 0)
    assert plan.init_source(config, key) == plan.RunKey("e3", "resnet18", "adahessian", 0)
    assert plan.init_source(config, plan.RunKey("e3", "resnet18", "sgd", 0)) is None


def test_deep_merge_leaves_inputs_alone():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = plan.deep_merge(base, {"a": {"c": 3}})
    assert merged == {"a": {"b": 1, "c": 3}, "d": [1]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c["experiments"]["e3"]["runs"]["sgd"].update(init_from="nope"), "init_from"),
        (
            lambda c: c["experiments"]["e1"]["runs"]["sgd"]["optimizer"].update(momentm=0.9),
            "momentm",
        ),
        (lambda c: c["experiments"]["e1"]["models"][0].update(activation="gelu"), "activation"),
        (lambda c: c["experiments"]["e1"]["runs"]["sgd"].update(data={"val_size": 3}), "std_scale"),
        (lambda c: c.update(build_experiments=["e9"]), "build_experiments"),
        (
            lambda c: c["experiments"]["e1"]["runs"].update(
                init={"optimizer": {"name": "sgd", "lr": 0.1}}
            ),
            "reserved",
        ),
    ],
)
def test_bad_config_names_the_key(config, edit, message):
    bad = copy.deepcopy(config)
    edit(bad)
    with pytest.raises(plan.ConfigError, match=message):
        plan.check_plan(bad)


def test_init_cycle_is_reported(config):
    bad = copy.deepcopy(config)
    runs = bad["experiments"]["e3"]["runs"]
    runs["sgd"]["init_from"] = "adahessian_from_sgd"
    with pytest.raises(plan.ConfigError, match="cycle"):
        plan.check_plan(bad)


def test_missing_epochs_names_both_places(config):
    bad = copy.deepcopy(config)
    del bad["experiments"]["e1"]["defaults"]["epochs"]
    with pytest.raises(plan.ConfigError, match=r"experiments\.e1\.defaults"):
        plan.check_plan(bad)
