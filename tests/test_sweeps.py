"""Hyper-parameter sweeps: points, resolution, config checks, the winner, feeding a run."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from minima import plan, sweeps
from minima.plan import ConfigError
from minima.report.figures import Look
from minima.report.kinds import figure_kind, table_kind
from minima.report.spec import check_paper, with_order

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_grid_points_are_the_cartesian_product_in_order(config):
    points = sweeps.points(config, "e2", "grid", "sgd_momentum")
    assert len(points) == 25
    assert points[0] == {"optimizer.lr": 0.001, "optimizer.momentum": 0.5}
    assert points[1] == {"optimizer.lr": 0.001, "optimizer.momentum": 0.8}
    assert points[-1] == {"optimizer.lr": 0.02, "optimizer.momentum": 0.99}
    # E2's grid search: 5 values per hyper-parameter of each optimizer x 5 repeats, the
    # count config.yaml's comment states
    keys = sweeps.sweep_keys(config, "e2", "grid")
    assert len(keys) == (5 + 25 + 5 + 125 + 125) * 5 == 1425
    assert {k.seed for k in keys} == {0, 1, 2, 3, 4}
    assert config["experiments"]["e2"]["sweeps"]["grid"]["build"] is False


def test_list_entries_are_swept_by_index(config):
    point = sweeps.resolve_point(
        config, sweeps.SweepKey("e2", "grid", "resnet18", "adahessian", 7, 0)
    )
    # point 7 = (lr index 0, beta1 index 1, beta2 index 2) in product order
    assert point["optimizer"]["lr"] == 0.01 and point["optimizer"]["betas"] == [0.85, 0.999]
    assert point["sweep"]["values"] == {
        "optimizer.lr": 0.01, "optimizer.betas.0": 0.85, "optimizer.betas.1": 0.999
    }  # fmt: skip
    hybrid = sweeps.resolve_point(
        config, sweeps.SweepKey("e2", "grid", "resnet18", "hybrid", 124, 0)
    )
    assert hybrid["optimizer"]["tl"] == 2.0 and hybrid["optimizer"]["sgd"]["lr"] == 0.02
    assert hybrid["optimizer"]["adahessian"]["lr"] == 0.01
    assert hybrid["optimizer"]["adahessian"]["betas"] == [0.9, 0.999]  # not swept: the run's
    run = plan.resolve_run(config, plan.RunKey("e2", "resnet18", "adahessian", 0))
    assert run["optimizer"]["betas"] == [0.9, 0.999]  # the run itself is left alone
    cfg = copy.deepcopy(config)
    cfg["experiments"]["e2"]["sweeps"]["grid"]["grid"]["adam"] = {"optimizer.betas.2": [0.5]}
    with pytest.raises(ConfigError, match=r"'optimizer.betas.2' is not a setting.*betas.1"):
        plan.check_plan(cfg)


def test_quick_profile_runs_a_two_value_grid(config):
    quick = plan.deep_merge(config, yaml.safe_load((REPO / "config/quick.yaml").read_text()))
    plan.check_plan(quick)
    section = quick["experiments"]["e2"]["sweeps"]["grid"]
    assert section["build"] is True  # the path is built by the quick profile
    full = config["experiments"]["e2"]["sweeps"]["grid"]["grid"]
    for run, grid in section["grid"].items():
        assert set(grid) == set(full[run])  # every key the study's grid searches
        assert all(len(v) <= 2 for v in grid.values()) and max(map(len, grid.values())) == 2


def test_a_point_is_its_run_with_the_swept_values(config):
    key = sweeps.SweepKey("e2", "grid", "resnet18", "sgd_momentum", 7, 3)
    point = sweeps.resolve_point(config, key)
    run = plan.resolve_run(config, key.run_key)
    assert point["optimizer"] == {**run["optimizer"], "lr": 0.0025, "momentum": 0.9}
    assert point["sweep"] == {
        "name": "grid",
        "point": 7,
        "values": {"optimizer.lr": 0.0025, "optimizer.momentum": 0.9},
    }
    rest = {k: v for k, v in point.items() if k not in ("optimizer", "sweep")}
    assert rest == {k: v for k, v in run.items() if k != "optimizer"}
    assert key.path == "e2/grid/resnet18/sgd_momentum/p7/seed3"


def test_sweep_epochs_override_the_run(config):
    cfg = copy.deepcopy(config)
    cfg["experiments"]["e1"]["sweeps"]["lr"]["epochs"] = 2
    point = sweeps.resolve_point(cfg, sweeps.SweepKey("e1", "lr", "lenet5", "adam", 0, 0))
    assert point["epochs"] == 2 and point["optimizer"]["lr"] == pytest.approx(1e-4)
    assert point["optimizer"]["betas"] == [0.675, 0.999]  # the run's other settings stay


def test_hybrid_nested_settings_can_be_swept(config):
    cfg = copy.deepcopy(config)
    cfg["experiments"]["e2"]["sweeps"]["grid"]["grid"]["hybrid"] = {"optimizer.sgd.lr": [0.1]}
    plan.check_plan(cfg)
    point = sweeps.resolve_point(cfg, sweeps.SweepKey("e2", "grid", "resnet18", "hybrid", 0, 0))
    assert point["optimizer"]["sgd"]["lr"] == 0.1


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda g: g.update(nope={"optimizer.lr": [0.1]}), "names run 'nope'; allowed"),
        (lambda g: g.update(sgd={"optimizer.lrr": [0.1]}), "'optimizer.lrr' is not a setting"),
        (
            lambda g: g.update(sgd={"optimizer.name": ["nosuch"]}),
            r"grid.sgd at \{'optimizer.name': 'nosuch'\}.optimizer: ",
        ),
    ],
)
def test_bad_grids_fail_naming_the_key(config, edit, message):
    cfg = copy.deepcopy(config)
    edit(cfg["experiments"]["e2"]["sweeps"]["grid"]["grid"])
    with pytest.raises(ConfigError, match=message):
        plan.check_plan(cfg)


def test_a_cross_initialized_run_cannot_be_swept(config):
    cfg = copy.deepcopy(config)
    cfg["experiments"]["e3"]["sweeps"] = {
        "x": {
            "build": False,
            "seeds": [0],
            "select": "val_acc",
            "feed": False,
            "grid": {"sgd_from_adahessian": {"optimizer.lr": [0.1]}},
        }
    }
    with pytest.raises(ConfigError, match="does not start from the shared initial weights"):
        plan.check_plan(cfg)


def _finals(rows):
    columns = ["model", "run", "point", "seed", "status", "value:optimizer.lr"]
    frame = pd.DataFrame([dict(zip(columns, r[:6], strict=True)) for r in rows])
    for i, q in enumerate(sweeps.SUMMARISED):
        frame[q] = [r[6] + i for r in rows]  # val_acc etc.: distinct, known values
    return frame


def test_summary_means_over_completed_seeds_and_winner():
    # val_acc column = r[6] + 3 (SUMMARISED index of val_acc)
    rows = [
        ("m", "sgd", 0, 0, "completed", 0.01, 0.50),
        ("m", "sgd", 0, 1, "completed", 0.01, 0.70),  # mean 0.60 (+3)
        ("m", "sgd", 1, 0, "completed", 0.1, 0.90),
        ("m", "sgd", 1, 1, "diverged", 0.1, float("nan")),  # lost: mean over 1 seed
        ("m", "sgd", 2, 0, "diverged", 1.0, float("nan")),  # no completed seed: cannot win
        ("m", "sgd", 2, 1, "diverged", 1.0, float("nan")),
    ]
    summary, winners = sweeps.summarise(_finals(rows), "val_acc")
    assert list(summary["point"]) == [0, 1, 2]
    assert summary["val_acc_mean"].iloc[0] == pytest.approx(3.60)
    assert summary["val_acc_std"].iloc[0] == pytest.approx(math.sqrt(0.02))
    assert list(summary["val_acc_n"]) == [2, 1, 0]
    assert list(summary["seeds"]) == [2, 2, 2]
    assert winners["m"]["sgd"] == {
        "point": 1,
        "values": {"optimizer.lr": 0.1},
        "select": "val_acc",
        "mean": pytest.approx(3.90),
        "std": None,
        "n": 1,
    }
    assert list(summary["best"]) == [False, True, False]
    # a loss is minimised
    _, by_loss = sweeps.summarise(_finals(rows), "train_loss")
    assert by_loss["m"]["sgd"]["point"] == 0


def test_feeding_a_run_applies_the_winner_and_records_it(config):
    run = plan.resolve_run(config, plan.RunKey("e1", "lenet5", "adam", 0))
    best = {"winners": {"lenet5": {"adam": {"point": 3, "values": {"optimizer.lr": 0.003}}}}}
    tuned = sweeps.apply_winner(run, best, "best.json")
    assert tuned["optimizer"]["lr"] == 0.003 and tuned["optimizer"]["betas"] == [0.675, 0.999]
    assert tuned["tuned_by"]["file"] == "best.json" and tuned["tuned_by"]["point"] == 3
    with pytest.raises(ValueError, match="no winner for lenet5/sgd"):
        sweeps.apply_winner(
            plan.resolve_run(config, plan.RunKey("e1", "lenet5", "sgd", 0)), best, "b"
        )


def _summary_file(tmp_path):
    rows = [
        ("lenet5", run, p, s, "completed", lr, base + p * 0.1 + s * 0.01)
        for run, base in (("sgd", 0.2), ("adam", 0.1))
        for p, lr in enumerate((0.01, 0.1, 1.0))
        for s in (0, 1)
    ]
    summary, winners = sweeps.summarise(_finals(rows), "val_acc")
    path = tmp_path / "summary.parquet"
    summary.to_parquet(path)
    best = tmp_path / "best.json"
    best.write_text(f'{{"select": "val_acc", "winners": {__import__("json").dumps(winners)}}}')
    return summary, {"summary": [str(path)], "best": [str(best)]}


def test_sweep_figure_draws_each_runs_means_against_its_values(config, tmp_path):
    summary, inputs = _summary_file(tmp_path)
    spec = with_order(config, "e1", config["experiments"]["e1"]["figures"]["lr_sweep_acc"])
    fig = figure_kind("sweep").draw(spec, inputs, Look())
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    lines = [line for line in ax.get_lines() if line.get_linestyle() != "None"]
    assert len(lines) == 2  # sgd and adam, in config order
    for line, run in zip(lines, ("sgd", "adam"), strict=True):
        rows = summary[summary.run == run].sort_values("value:optimizer.lr")
        assert list(line.get_xdata()) == [0.01, 0.1, 1.0]
        assert line.get_ydata() == pytest.approx(rows["val_acc_mean"].to_numpy() * 100)


def test_sweep_table_shows_each_winner_and_its_numbers(config, tmp_path):
    summary, inputs = _summary_file(tmp_path)
    spec = with_order(config, "e1", config["experiments"]["e1"]["tables"]["lr_sweep"])
    table = table_kind("sweep").draw(spec, inputs, Look())
    body = table.tex.split("\\midrule")[1]
    assert "SGD & lr=1 & 3" in body and "Adam & lr=1 & 3" in body
    winner = summary[(summary.run == "sgd") & summary.best].iloc[0]
    row = table.numbers[(table.numbers.run == "sgd") & (table.numbers.metric == "val_acc")]
    assert row["mean"].iloc[0] == pytest.approx(winner["val_acc_mean"])
    assert f"{winner['val_acc_mean'] * 100:.2f}" in body


def test_sweep_entries_are_checked(config):
    cfg = copy.deepcopy(config)
    cfg["experiments"]["e1"]["figures"]["lr_sweep_acc"]["sweep"] = "nope"
    with pytest.raises(ConfigError, match=r"lr_sweep_acc.sweep is 'nope'; allowed: \['lr'\]"):
        check_paper(cfg)
    cfg = copy.deepcopy(config)
    cfg["experiments"]["e1"]["figures"]["lr_sweep_acc"]["metric"] = "lr"
    with pytest.raises(ConfigError, match="lr_sweep_acc.metric is 'lr'; allowed"):
        check_paper(cfg)
    cfg = copy.deepcopy(config)
    figure = {"kind": "sweep", "sweep": "grid", "metric": "val_acc"}
    cfg["experiments"]["e2"]["figures"]["grid_fig"] = figure
    with pytest.raises(ConfigError, match="vary several"):
        check_paper(cfg)


def test_sweep_entries_say_how_the_points_were_trained(config):
    cfg = copy.deepcopy(config)
    cfg["experiments"]["e1"]["sweeps"]["lr"]["epochs"] = 1
    spec = with_order(cfg, "e1", cfg["experiments"]["e1"]["tables"]["lr_sweep"])
    spec = table_kind("sweep").job_spec(cfg, "e1", spec)
    assert spec["sweep_note"] == "Each point: 1 seed(s), 1 epoch(s)."
    spec = with_order(config, "e1", config["experiments"]["e1"]["figures"]["lr_sweep_acc"])
    spec = figure_kind("sweep").job_spec(config, "e1", spec)
    assert spec["sweep_note"] == "Each point: 1 seed(s), the runs' own epochs."


def test_sweep_axes_name_the_setting_in_words():
    from minima.report.kinds.sweep import _axis_name

    assert _axis_name("optimizer.lr") == "learning rate"
    assert _axis_name("optimizer.sgd.lr") == "learning rate (sgd)"
    assert _axis_name("optimizer.weight_decay") == "weight_decay"


def test_sweep_table_names_the_diverged_points_it_leaves_out(config, tmp_path):
    rows = [
        ("lenet5", "sgd", 0, 0, "completed", 0.01, 0.5),
        ("lenet5", "sgd", 0, 1, "completed", 0.01, 0.6),
        ("lenet5", "sgd", 1, 0, "completed", 1.0, 0.7),
        ("lenet5", "sgd", 1, 1, "diverged", 1.0, float("nan")),
        ("lenet5", "adam", 0, 0, "diverged", 0.1, float("nan")),
        ("lenet5", "adam", 0, 1, "diverged", 0.1, float("nan")),
        ("lenet5", "adam", 1, 0, "completed", 0.001, 0.4),
        ("lenet5", "adam", 1, 1, "completed", 0.001, 0.4),
    ]
    summary, winners = sweeps.summarise(_finals(rows), "val_acc")
    summary.to_parquet(tmp_path / "summary.parquet")
    (tmp_path / "best.json").write_text(
        __import__("json").dumps({"select": "val_acc", "winners": winners})
    )
    inputs = {"summary": [str(tmp_path / "summary.parquet")], "best": [str(tmp_path / "best.json")]}
    spec = with_order(config, "e1", config["experiments"]["e1"]["tables"]["lr_sweep"])
    table = table_kind("sweep").draw(spec, inputs, Look())
    note = (
        "Did not complete (diverged), left out of the means and the selection: "
        "SGD at lr=1 (1 of 2 seeds); Adam at lr=0.1 (2 of 2 seeds)."
    )
    assert table.notes == [note]
    assert note in table.tex
    # the figure says the same above its panels (its metric, val_acc, lost the same seeds)
    figure_spec = with_order(config, "e1", config["experiments"]["e1"]["figures"]["lr_sweep_acc"])
    fig = figure_kind("sweep").draw(figure_spec, inputs, Look())
    assert fig.get_suptitle() == note
    # with every seed completed there is no such note
    _, clean = _summary_file(tmp_path)
    assert table_kind("sweep").draw(spec, clean, Look()).notes == []
