"""Figures: the lines drawn are the seed means, in the run's color; files written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from matplotlib.colors import to_hex

from minima.report import figures, kinds, spec, style
from tests.test_report_aggregate import synthetic_runs
from tests.workflow_helpers import REPO


@pytest.fixture
def frame() -> pd.DataFrame:
    tables = synthetic_runs(np.random.default_rng(0))
    data = pd.concat(tables.values(), ignore_index=True)
    switched = (data.run == "adam") & (data.epoch == 2) & (data.seed == 0)
    data.loc[switched, "optimizer_switch"] = "sgd->adahessian"
    return data


def mean_lines(ax):
    """(color, y data) of the lines with data (the means; bands are polygons)."""
    return [
        (to_hex(line.get_color()), line.get_ydata())
        for line in ax.get_lines()
        if not str(line.get_gid()).startswith("switch:")
    ]


def test_curves_draw_the_seed_mean_per_run_in_its_color(frame):
    entry = {"kind": "curves", "panels": [{"metrics": ["test_acc"]}], "runs": ["sgd", "adam"]}
    fig = figures.training_figure(frame, entry)
    (ax,) = fig.axes
    lines = mean_lines(ax)
    assert [color for color, _ in lines] == [
        style.OPTIMIZER_COLORS["sgd"].lower(),
        style.OPTIMIZER_COLORS["adam"].lower(),
    ]
    for (_, ydata), run in zip(lines, ["sgd", "adam"], strict=True):
        expected = frame[frame.run == run].groupby("epoch").test_acc.mean().to_numpy() * 100
        np.testing.assert_allclose(ydata, expected, rtol=1e-12)
    assert ax.get_ylabel() == "test accuracy (%)" and ax.get_xlabel() == "epoch"
    assert ax.get_yscale() == "linear"
    assert len(ax.collections) == 2  # one +-std band per run (3 seeds)


def test_curves_mark_the_switch_epoch_in_the_runs_color(frame):
    entry = {"kind": "curves", "panels": [{"metrics": ["val_loss"]}], "runs": ["sgd", "adam"]}
    (ax,) = figures.training_figure(frame, entry).axes
    switches = [line for line in ax.get_lines() if str(line.get_gid()).startswith("switch:")]
    assert [line.get_gid() for line in switches] == ["switch:adam:2"]  # only the run that switched
    assert list(switches[0].get_xdata()) == [2, 2] and switches[0].get_linestyle() == ":"
    assert to_hex(switches[0].get_color()) == style.OPTIMIZER_COLORS["adam"].lower()


def test_panels_log_scale_line_styles_and_run_subset(frame):
    entry = {
        "kind": "curves",
        "runs": ["adam"],
        "panels": [
            {"metrics": ["train_loss", "val_loss"], "log_y": True},
            {"metrics": ["grad_norm"]},
        ],
    }
    fig = figures.training_figure(frame, entry)
    loss_ax, grad_ax = fig.axes
    assert loss_ax.get_yscale() == "log" and grad_ax.get_yscale() == "linear"
    means = [line for line in loss_ax.get_lines() if not str(line.get_gid()).startswith("switch")]
    assert [line.get_linestyle() for line in means] == ["-", "--"]
    assert {to_hex(line.get_color()) for line in loss_ax.get_lines()} == {
        style.OPTIMIZER_COLORS["adam"].lower()
    }
    legend_text = [t.get_text() for t in loss_ax.get_legend().get_texts()]
    assert legend_text == ["train loss", "val. loss"]
    assert loss_ax.get_ylabel() == "loss (cross-entropy)"


def test_run_grid_has_a_row_per_run_and_marks_the_switch(frame):
    entry = {
        "kind": "run_grid",
        "runs": ["sgd", "adam"],
        "panels": [{"metrics": ["train_loss", "val_loss"]}, {"metrics": ["grad_norm"]}],
    }
    fig = figures.training_figure(frame, entry, figures.Look(labels={"adam": "ADAM"}))
    assert len(fig.axes) == 4
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == ["SGD", "SGD", "ADAM", "ADAM"]
    adam_ax = fig.axes[2]
    verticals = [line for line in adam_ax.get_lines() if line.get_linestyle() == ":"]
    assert [line.get_xdata()[0] for line in verticals] == [2]
    assert not [line for line in fig.axes[0].get_lines() if line.get_linestyle() == ":"]


def test_rows_per_model_and_unknown_kind(frame):
    two = pd.concat([frame, frame.assign(model="other")], ignore_index=True)
    fig = figures.training_figure(two, {"kind": "curves", "panels": [{"metrics": ["val_acc"]}]})
    assert [ax.get_title() for ax in fig.axes] == ["tiny", "other"]
    with pytest.raises(KeyError, match="known"):
        figures.training_figure(frame, {"kind": "pie", "panels": []})


def test_save_writes_pdf_and_png_and_nothing_else(frame, tmp_path):
    fig = figures.training_figure(frame, {"kind": "curves", "panels": [{"metrics": ["val_loss"]}]})
    figures.save_figure(fig, tmp_path / "f.pdf", tmp_path / "f.png")
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pdf", "f.png"]
    width, height = fig.get_size_inches()
    assert width <= style.TEXT_WIDTH and height <= style.MAX_HEIGHT  # fits the page unscaled


def test_kind_names_agree_between_library_checks_and_schema():
    schema = yaml.safe_load(Path(REPO, "schemas/config.schema.yaml").read_text())
    assert set(figures.FIGURE_KINDS) == set(spec.TRAINING_FIGURE_KINDS)
    assert set(schema["definitions"]["figure"]["properties"]["kind"]["enum"]) >= set(
        figures.FIGURE_KINDS
    )
    assert set(schema["definitions"]["figure"]["properties"]["kind"]["enum"]) == set(
        spec.TRAINING_FIGURE_KINDS
    ) | set(kinds.FIGURE_KINDS)
    assert set(schema["definitions"]["table"]["properties"]["kind"]["enum"]) == set(
        spec.TRAINING_TABLE_KINDS
    ) | set(kinds.TABLE_KINDS)
    for name in kinds.FIGURE_KINDS:  # every registered kind imports and is a Kind
        assert isinstance(kinds.figure_kind(name), kinds.Kind)
    for name in kinds.TABLE_KINDS:
        assert isinstance(kinds.table_kind(name), kinds.Kind)
