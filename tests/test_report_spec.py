"""The config's paper entries: the repository's config passes, mistakes name their key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from minima.plan import ConfigError
from minima.report import spec, style
from tests.workflow_helpers import REPO


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(Path(REPO, "config.yaml").read_text())


def test_repository_config_passes_and_lists_training_figures(config):
    spec.check_paper(config)
    assert {"val_loss", "per_optimizer", "normalization"} <= (spec.training_figure_names(config))
    assert spec.paper_experiments(config) == list(config["experiments"])


def test_run_colors_are_one_per_label_across_the_whole_config(config):
    colors = spec.run_colors(config)
    labels = {run for entry in config["experiments"].values() for run in entry["runs"]}
    assert set(colors) == labels
    assert len(set(colors.values())) == len(labels)  # colliding fallbacks were moved apart
    for label in set(style.OPTIMIZER_COLORS) & labels:
        assert colors[label] == style.OPTIMIZER_COLORS[label]
    # a figure showing any subset gets exactly these colors
    subset = ["sgd_pretrained", "adahessian"]
    assert style.colors_for(subset, colors) == {k: colors[k] for k in subset}


def test_runs_and_models_default_to_config_order(config):
    entry = spec.with_order(config, "e2", {"kind": "curves", "panels": []})
    assert entry["runs"] == list(config["experiments"]["e2"]["runs"])
    assert entry["models"] == ["resnet18"]
    chosen = spec.with_order(config, "e4", {"kind": "curves", "models": ["vgg16"]})
    assert chosen["models"] == ["vgg16"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda c: c["experiments"]["e2"]["figures"]["val_loss"]["panels"][0].update(
                metrics=["val_los"]
            ),
            r"e2\.figures\.val_loss\.panels\[0\]\.metrics names \['val_los'\]",
        ),
        (
            lambda c: c["experiments"]["e3"]["figures"]["normalization"].update(runs=["sgdd"]),
            r"e3\.figures\.normalization\.runs names \['sgdd'\]",
        ),
        (
            lambda c: c["experiments"]["e4"]["tables"]["test_acc"].update(
                metrics=["test_acc", "train_acc"]
            ),
            r"e4\.tables\.test_acc: a by_model table",
        ),
        (lambda c: c["paper"].update(experiments=["e9"]), r"paper\.experiments names \['e9'\]"),
        (lambda c: c["paper"].update(colors={"sgd": "not-a-color"}), r"paper\.colors"),
        (
            lambda c: c["experiments"]["e2"]["figures"]["val_loss"].pop("panels"),
            r"e2\.figures\.val_loss: a curves figure needs `panels`",
        ),
    ],
)
def test_mistakes_name_the_key(config, edit, message):
    broken = copy.deepcopy(config)
    edit(broken)
    with pytest.raises(ConfigError, match=message):
        spec.check_paper(broken)


def test_default_captions_name_the_quantities():
    assert spec.default_caption({"kind": "curves", "panels": [{"metrics": ["val_loss"]}]}) == (
        "Validation loss per epoch."
    )
    assert spec.default_caption({"kind": "summary", "metrics": ["test_acc"]}) == (
        "Final test accuracy."
    )
    assert spec.default_caption({"kind": "summary", "metrics": [], "caption": "X."}) == "X."


def test_entry_of_an_unlisted_name_says_what_is_listed(config):
    assert spec.entry(config, "e2", "figures", "val_loss")["runs"][0] == "sgd"
    with pytest.raises(ConfigError, match=r"experiments\.e5\.figures has no 'grad_norm'"):
        spec.entry(config, "e5", "figures", "grad_norm")
