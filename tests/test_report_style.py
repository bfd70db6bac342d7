"""One color per run label, the same in every figure and every process."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import zlib

from matplotlib.colors import to_rgb

from minima.report import style
from tests.workflow_helpers import REPO


def test_fixed_optimizers_keep_their_color_whatever_else_is_drawn():
    labels = list(style.OPTIMIZER_COLORS)
    alone = {label: style.colors_for([label])[label] for label in labels}
    together = style.colors_for([*labels, "sgd_from_adahessian", "adahessian_std1e-4"])
    for label in labels:
        assert alone[label] == together[label] == style.OPTIMIZER_COLORS[label]


def test_colors_are_distinct_and_fallbacks_never_reuse_a_fixed_color():
    fixed = [to_rgb(c) for c in style.OPTIMIZER_COLORS.values()]
    fallback = [to_rgb(c) for c in style.FALLBACK_COLORS]
    assert len(set(fixed)) == len(fixed)
    assert len(set(fallback)) == len(fallback)
    assert not set(fixed) & set(fallback)


def test_fallback_is_the_crc32_pick_and_is_the_same_in_another_process():
    labels = ["sgd_from_adahessian", "adahessian_std1e3", "my_new_optimizer"]
    for label in labels:
        expected = style.FALLBACK_COLORS[zlib.crc32(label.encode()) % len(style.FALLBACK_COLORS)]
        assert style.color_for(label) == expected
    code = f"from minima.report.style import color_for; print([color_for(x) for x in {labels!r}])"
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # str hashes differ; colors must not
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.stdout.strip() == str([style.color_for(label) for label in labels])


def test_one_figure_gives_distinct_colors_independent_of_label_order():
    labels = [f"variant_{i}" for i in range(len(style.FALLBACK_COLORS))] + ["sgd", "adam"]
    reference = style.colors_for(labels)
    assert len(set(reference.values())) == len(labels)
    for order in itertools.islice(itertools.permutations(labels), 0, 50, 7):
        assert style.colors_for(order) == reference


def test_config_overrides_win_and_names_fall_back_to_the_label():
    assert style.color_for("sgd", {"sgd": "#123456"}) == "#123456"
    assert style.colors_for(["sgd", "adam"], {"adam": "red"}) == {
        "sgd": style.OPTIMIZER_COLORS["sgd"],
        "adam": "red",
    }
    assert style.display_name("sgd_momentum") == "SGD+momentum"
    assert style.display_name("sgd_momentum", {"sgd_momentum": "SGD-m"}) == "SGD-m"
    assert style.display_name("unlisted_run") == "unlisted_run"
    assert style.model_name("resnet18") == "ResNet18"
